"""``results/leaderboard/LEADERBOARD.md``: every objective beside its reference baseline, experiment by
experiment, from the leaderboard's CSVs alone.

Inputs (written by ``geobench leaderboard``, see :mod:`geobench.battery.finals`): ``finals.csv``
(per-seed final values per experiment column), ``identities.csv`` (objectives that coincide in an
experiment), ``objectives.csv`` (each objective's feedback, source and geometry row), ``cells.csv``
(the battery's ledger) and ``leaderboard.json`` (budget, references, wall time).

Per (experiment, column), :func:`scores` gives each objective's mean with a 95% bootstrap CI over
seeds and its difference from the reference baseline of its feedback (``experiments/references.toml``)
with a *paired* CI (seed k of one with seed k of the other: the experiments draw their random numbers
from key and seed, so both arms of seed k see the same contexts, prompts and initialisation), read as
higher / lower / not resolved. An objective that coincides with another there reads "same as X"
instead of a rank: its differences would be the other's, or noise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from geobench.report.files import save_figure
from geobench.report.leaderboard_figure import heatmap
from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_mean_ci, paired_diff_ci
from geobench.results import atomic_write_text

LEADERBOARD = "LEADERBOARD.md"
FILES = ("finals.csv", "identities.csv", "objectives.csv", "cells.csv", "failures.csv", "leaderboard.json")
FAILURE_COLUMNS = ("objective", "experiment", "error")
START = "@start"  # geobench.battery.finals.START: the starting level's rows
ALL_SCENARIOS = "all scenarios"  # the bandits' headline column: per seed, the mean over its noise scenarios
HEADLINE = {  # the column each experiment's table ranks by
    "toy-saturation": "exact",
    "bandits": ALL_SCENARIOS,
    "mujoco": None,  # every environment, each ranked
    "llm": "final reward",
}
EXACT_RTOL = 1e-9  # the toy is exact: a difference beyond this is resolved
SCORE_COLUMNS = (
    "experiment", "column", "metric", "objective", "feedback", "seeds", "mean", "low", "high",
    "reference", "diff", "diff_low", "diff_high", "side", "same_as", "rank",
)  # fmt: skip


def read_inputs(folder: Path) -> dict:
    """The leaderboard's CSVs and its JSON, by file name."""
    folder = Path(folder)
    found = {name: pd.read_csv(folder / name) for name in FILES if name.endswith(".csv")}
    found["leaderboard.json"] = json.loads((folder / "leaderboard.json").read_text())
    return found


def with_all_scenarios(finals: pd.DataFrame) -> pd.DataFrame:
    """``finals`` plus the bandits' :data:`ALL_SCENARIOS` column: per (objective, seed), the mean final
    WinMass over the ``<noise>/<level>`` columns (the width columns are the scaling study)."""
    bandits = finals[(finals["experiment"] == "bandits") & finals["column"].str.contains("/")]
    if not len(bandits):
        return finals
    mean = bandits.groupby(["experiment", "metric", "objective", "seed"], as_index=False)["value"].mean()
    return pd.concat([finals, mean.assign(column=ALL_SCENARIOS)], ignore_index=True)


def same_as(identities: pd.DataFrame, references: dict[str, dict[str, str]]) -> dict[tuple[str, str], str]:
    """{(experiment, objective): the objective it is shown as} for every objective that coincides with
    another in an experiment: each group of coinciding objectives is represented by its reference if it
    holds one, else by its first name; the others are "same as" it."""
    shown = {}
    for experiment, part in identities.groupby("experiment"):
        groups: dict[str, set[str]] = {}
        for a, b in zip(part["objective"], part["same_as"], strict=True):
            group = groups.get(a, {a}) | groups.get(b, {b})
            for name in group:
                groups[name] = group
        refs = set(references.get(experiment, {}).values())
        for name, group in groups.items():
            rep = min(group & refs) if group & refs else min(group)
            if name != rep:
                shown[(experiment, name)] = rep
    return shown


def scores(
    finals: pd.DataFrame,
    objectives: pd.DataFrame,
    identities: pd.DataFrame,
    references: dict[str, dict[str, str]],
    failures: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (experiment, column, objective) in :data:`SCORE_COLUMNS` (see the module docstring);
    an objective that failed in an experiment (``failures.csv``) has side "failed" in its columns."""
    finals = with_all_scenarios(finals)
    feedback = dict(zip(objectives["objective"], objectives["feedback"], strict=True))
    shown = same_as(identities, references)
    rows = []
    for (experiment, column, metric), part in finals.groupby(["experiment", "column", "metric"], sort=False):
        by = {o: p.set_index("seed")["value"].astype(float) for o, p in part.groupby("objective")}
        for objective, values in by.items():
            if objective == START:
                continue
            ref = references.get(experiment, {}).get(feedback.get(objective, ""), "")
            row = _score(values, by.get(ref), objective == ref)
            twin = shown.get((experiment, objective), "")
            if twin:
                row["side"] = f"same as {twin}"
            rows.append(
                {
                    "experiment": experiment, "column": column, "metric": metric, "objective": objective,
                    "feedback": feedback.get(objective, ""), "reference": ref, "same_as": twin, **row,
                }
            )  # fmt: skip
        for objective in _failed(failures, experiment):
            rows.append(
                {
                    "experiment": experiment, "column": column, "metric": metric, "objective": objective,
                    "feedback": feedback.get(objective, ""), "reference": "", "same_as": "", "seeds": 0,
                    "mean": np.nan, "low": np.nan, "high": np.nan, "diff": np.nan, "diff_low": np.nan,
                    "diff_high": np.nan, "side": "failed",
                }
            )  # fmt: skip
    frame = pd.DataFrame(rows)
    if not len(frame):
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    ranked = frame["same_as"] == ""
    frame["rank"] = np.nan
    frame.loc[ranked, "rank"] = (
        frame[ranked].groupby(["experiment", "column", "metric"])["mean"].rank(ascending=False, method="min")
    )
    return frame[list(SCORE_COLUMNS)]


def _failed(failures: pd.DataFrame | None, experiment: str) -> list[str]:
    if failures is None or not len(failures):
        return []
    return sorted(failures.loc[failures["experiment"] == experiment, "objective"].unique())


def _score(values: pd.Series, ref: pd.Series | None, is_reference: bool) -> dict:
    """Mean [CI] of ``values`` and its paired difference from ``ref`` on the seeds both have."""
    values = values.dropna()
    mean, low, high = bootstrap_mean_ci(values.to_numpy()) if len(values) else (np.nan,) * 3
    row = {"seeds": len(values), "mean": mean, "low": low, "high": high}
    none = {"diff": np.nan, "diff_low": np.nan, "diff_high": np.nan}
    if is_reference:
        return {**row, **none, "side": "reference"}
    if ref is None:
        return {**row, **none, "side": "no reference"}
    seeds = values.index.intersection(ref.dropna().index).sort_values()
    x, y = values[seeds].to_numpy(), ref[seeds].to_numpy()
    if len(seeds) == 1:  # the exact toy: one value, no CI
        diff = float(x[0] - y[0])
        resolved = abs(diff) > EXACT_RTOL * (1 + abs(float(y[0])))
        side = _side(diff, diff, resolved) if resolved else "equal"
        return {**row, "diff": diff, "diff_low": diff, "diff_high": diff, "side": side}
    if len(seeds) < 2:
        return {**row, **none, "side": "too few seeds"}
    diff, diff_low, diff_high = paired_diff_ci(x, y)
    side = _side(diff_low, diff_high, diff_low > 0 or diff_high < 0)
    return {**row, "diff": diff, "diff_low": diff_low, "diff_high": diff_high, "side": side}


def _side(low: float, high: float, resolved: bool) -> str:
    if not resolved:
        return "not resolved"
    return "higher" if low > 0 else "lower"


def _ci(mean: float, low: float, high: float, fmt: str) -> str:
    if np.isnan(mean):
        return "-"
    if low == high == mean:
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


def _diff(row: pd.Series, fmt: str) -> str:
    if row["side"] in ("reference", "no reference", "too few seeds", "failed") or row["same_as"]:
        return row["side"]
    text = _ci(row["diff"], row["diff_low"], row["diff_high"], "{:+" + fmt[2:])
    return f"{text} {row['side']}"


_FORMATS = {"toy-saturation": "{:.3g}", "bandits": "{:.3f}", "mujoco": "{:.0f}", "llm": "{:.3f}"}
_READS = {  # what a table's numbers are
    "toy-saturation": "The saturation ratio, |dL/dz| at the largest p over its value at p = 0.5, per coordinate "
    "reading (the toy is exact: no CI); higher: the gradient vanishes less as p -> 1",
    "bandits": "Final WinMass: the mean over the noise scenarios at the main width, and at each width of the "
    "scaling scenario",
    "mujoco": "The student's final return per environment",
    "llm": "Final reward (mean of the last 20 steps) and held-out accuracy (last evaluation)",
}


def experiment_table(scored: pd.DataFrame, finals: pd.DataFrame, experiment: str) -> str:
    """One experiment's table: a row per objective, for each table column its mean [CI] and its
    difference from the reference; ranked by the experiment's headline column."""
    part = scored[scored["experiment"] == experiment]
    if not len(part):
        return "No objective of this leaderboard gives the feedback this experiment needs: not run.\n"
    fmt = _FORMATS[experiment]
    columns = _table_columns(part, experiment)
    headline = HEADLINE[experiment] or columns[0][0]
    metric = dict(columns).get(headline, columns[0][1])
    order = part[(part["column"] == headline) & (part["metric"] == metric)]
    order = order.sort_values(["rank", "objective"], na_position="last")
    rows = []
    for objective in order["objective"]:
        mine = part[part["objective"] == objective].set_index(["column", "metric"])
        first = mine.loc[(headline, columns[0][1])] if (headline, columns[0][1]) in mine.index else None
        row = {
            "objective": objective,
            "rank": "-" if first is None or np.isnan(first["rank"]) else int(first["rank"]),
            "feedback": order.loc[order["objective"] == objective, "feedback"].iloc[0],
        }
        for column, metric in columns:
            if (column, metric) not in mine.index:
                row[column] = row[f"vs reference ({column})"] = "-"
                continue
            r = mine.loc[(column, metric)]
            row[column] = _ci(r["mean"], r["low"], r["high"], fmt)
            row[f"vs reference ({column})"] = _diff(r, fmt)
        rows.append(row)
    finals = with_all_scenarios(finals)
    start = finals[(finals["experiment"] == experiment) & (finals["objective"] == START)]
    text = f"{_READS[experiment]}.\n\n" + markdown_table(pd.DataFrame(rows))
    if len(start):
        levels = start.groupby("column")["value"].mean()
        shown = ", ".join(f"{c} {fmt.format(levels[c])}" for c, _ in columns if c in levels.index)
        text += f"\nStarting level (the reference policy / warm start, mean over seeds): {shown or '-'}.\n"
    return text


def _table_columns(part: pd.DataFrame, experiment: str) -> list[tuple[str, str]]:
    """(column, metric) of an experiment's table: the toy's readings, the bandits' headline and widths,
    every environment, the LLM's two metrics."""
    pairs = list(dict.fromkeys(zip(part["column"], part["metric"], strict=True)))
    if experiment == "toy-saturation":
        return [p for p in pairs if p[1] == "grad_ratio"]
    if experiment == "bandits":
        return [p for p in pairs if p[0] == ALL_SCENARIOS] + [p for p in pairs if p[0].startswith("width")]
    return pairs


def headline(scored: pd.DataFrame, experiments: list[str]) -> str:
    """Per experiment, the objectives resolved above and below their reference in its headline column(s)."""
    lines = []
    for experiment in experiments:
        part = scored[scored["experiment"] == experiment]
        if not len(part):
            continue
        columns = [HEADLINE[experiment]] if HEADLINE[experiment] else sorted(part["column"].unique())
        for column in columns:
            cut = part[(part["column"] == column) & (part["metric"] != "anchor_grad")]
            for ref, group in cut.groupby("reference"):
                if not ref or not (group["side"] != "reference").any():
                    continue
                up = sorted(group.loc[group["side"] == "higher", "objective"])
                down = sorted(group.loc[group["side"] == "lower", "objective"])
                same = sorted(group.loc[group["same_as"] != "", "objective"])
                level = len(group[~group["side"].isin(["reference"])])
                lines.append(
                    f"- **{experiment}, {column}** (vs `{ref}`, {level} objectives): higher: "
                    f"{_names(up)}; lower: {len(down)}; coincide with another: {_names(same)}."
                )
    return "\n".join(lines) + "\n"


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) if names else "none"


def toy_signs(finals: pd.DataFrame) -> str:
    """The toy's descent direction at the anchor per objective and reading: a sign error must not read
    as a gradient that does not vanish."""
    signs = finals[(finals["experiment"] == "toy-saturation") & (finals["metric"] == "anchor_grad")]
    if not len(signs):
        return "The toy run records no signed gradient (its cells predate it).\n"
    wrong = signs[signs["value"] > 0]
    zero = signs[signs["value"] == 0]
    text = (
        f"At p = 0.5 (the anchor) dL/dz < 0, descent raising the preferred outcome, for {signs['objective'].nunique()} "
    )
    text += "objectives in both readings." if not len(wrong) and not len(zero) else "objectives except:"
    for label, rows in (("SIGN ERROR (dL/dz > 0)", wrong), ("no gradient (dL/dz = 0)", zero)):
        for (objective, reading), _ in rows.groupby(["objective", "column"]):
            text += f"\n- `{objective}`, {reading}: {label}"
    return text + "\n"


def _scored(inputs: dict) -> pd.DataFrame:
    meta = inputs["leaderboard.json"]
    return scores(
        inputs["finals.csv"], inputs["objectives.csv"], inputs["identities.csv"], meta["references"],
        inputs["failures.csv"],
    )  # fmt: skip


def write_leaderboard(folder: Path) -> list[Path]:
    """``LEADERBOARD.md`` and its heat map (PNG and PDF) in ``folder`` from the CSVs there."""
    folder = Path(folder)
    inputs = read_inputs(folder)
    meta, scored = inputs["leaderboard.json"], _scored(inputs)
    experiments = list(meta["experiments"])
    written = save_figure(heatmap(scored, experiments, _caption(meta)), folder, "leaderboard_heatmap")
    path = folder / LEADERBOARD
    text = _markdown(meta, scored, inputs["finals.csv"], inputs["identities.csv"], inputs, experiments)
    atomic_write_text(path, text)
    return [*written, path]


def build_leaderboard(results: Path, figures: Path) -> list[Path]:
    """The committed leaderboard's heat map among the report's figures, from ``results/leaderboard``'s CSVs."""
    folder = Path(results) / "leaderboard"
    if not (folder / "leaderboard.json").exists():
        raise FileNotFoundError(f"{folder} has no leaderboard.json: run `make leaderboard`")
    inputs = read_inputs(folder)
    meta = inputs["leaderboard.json"]
    return save_figure(
        heatmap(_scored(inputs), list(meta["experiments"]), _caption(meta)), figures, "leaderboard_heatmap"
    )


def leaderboard_summary(results: Path, report: Path) -> str:
    """REPORT.md's section on the committed leaderboard: its headline, linked; '' without one."""
    folder = Path(results) / "leaderboard"
    if not (folder / "leaderboard.json").exists():
        return ""
    inputs = read_inputs(folder)
    meta, scored = inputs["leaderboard.json"], _scored(inputs)
    link = Path(os.path.relpath((folder / LEADERBOARD).resolve(), Path(report).parent.resolve()))
    return (
        f"## Leaderboard (`geobench leaderboard`, [{LEADERBOARD}]({link}))\n\n"
        f"{len(meta['objectives'])} objectives at the `{meta['budget']}` budget, each against the reference of its "
        "feedback (experiments/references.toml):\n\n" + headline(scored, list(meta["experiments"]))
    )


def _caption(meta: dict) -> str:
    return (
        f"geobench leaderboard, {meta['budget']} budget: each objective's difference from its reference "
        "(experiments/references.toml), where the 95% paired CI excludes 0"
    )


def _markdown(meta, scored, finals, identities, inputs, experiments) -> str:
    cells = inputs["cells.csv"]
    computed, reused = int(cells["computed"].sum()), int(cells["reused"].sum())
    refs = "; ".join(f"{e}: " + ", ".join(f"{f} -> `{r}`" for f, r in m.items()) for e, m in meta["references"].items())
    parts = [
        f"# Leaderboard: every objective at the `{meta['budget']}` budget\n",
        f"{len(meta['objectives'])} objectives through {', '.join(meta['experiments'])} "
        f"(`geobench leaderboard`, experiments/battery.toml). Every number is computed from this folder's CSVs; "
        "CIs are 95% percentile bootstraps over seeds, differences paired by seed. References by feedback: "
        f"{refs}.\n",
        f"Cells: {computed} computed, {reused} reused; wall time {meta['wall_time_s'] / 60:.1f} min "
        f"({meta['threads']} thread(s), {meta['workers']} worker(s)).\n",
        "## Headline\n",
        headline(scored, experiments),
        "![heat map](leaderboard_heatmap.png)\n",
    ]
    for experiment in experiments:
        parts += [f"## {meta['titles'].get(experiment, experiment)}\n", experiment_table(scored, finals, experiment)]
        if experiment == "toy-saturation":
            parts.append(toy_signs(finals))
    parts += ["## Objectives that coincide\n", _identity_text(identities)]
    parts += ["## Objectives that failed\n", _failure_text(inputs["failures.csv"])]
    parts += ["## Geometry (the taxonomy columns of OPO Table 2 and ADPO Tables 1 and 3)\n"]
    parts.append(markdown_table(inputs["objectives.csv"].fillna("-")))
    return "\n".join(parts)


def _failure_text(failures: pd.DataFrame) -> str:
    if not len(failures):
        return "Every objective's loss and run stayed finite in every experiment it ran in.\n"
    return (
        "An experiment stops an objective whose loss is not finite on finite inputs (geobench.objectives.checks) "
        "or whose run diverges (a non-finite loss or metric); it is shown as failed there, not ranked.\n\n"
        + markdown_table(failures)
    )


def _identity_text(identities: pd.DataFrame) -> str:
    if not len(identities):
        return "No two objectives coincide in any experiment.\n"
    rows = identities[identities["objective"] < identities["same_as"]]
    table = rows.rename(columns={"objective": "objective", "same_as": "coincides with"})
    return (
        "Pairs whose rows coincide in an experiment (or, on the LLM, whose updates the per-pair check finds the "
        "same): their differences there are not evidence either way.\n\n" + markdown_table(table)
    )
