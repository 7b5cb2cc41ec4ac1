"""An objective's report card: ``results/battery/<name>/CARD.md``, its figures and ``verdicts.csv``,
from CSVs only.

Per experiment: the objective's numbers with 95% bootstrap CIs over seeds beside every
baseline's, its rank, the differences from each baseline that the CIs resolve, and the
experiment's own diagnostics (the saturation curve in the toy, the regime check on the LLM).
Every number is computed here from the run folders the battery wrote or reused. The card's
verdicts, one row per experiment, also go to ``verdicts.csv`` (columns:
:data:`geobench.report.cards.VERDICT_COLUMNS`), which is what REPORT.md reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from geobench.battery.plan import BY_NAME, BatteryConfig, Plan
from geobench.objectives import REGISTRY, get_objective
from geobench.objectives.plugins import plugin_names
from geobench.report import bandits_report, llm_regime, mujoco_report, save_figure
from geobench.report.cards import CARD, VERDICT_COLUMNS, VERDICTS, verdict_lines
from geobench.report.llm_artifacts import samples_table
from geobench.report.llm_regime import final_means
from geobench.report.llm_report import curve_figure, variant_values
from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_diff_ci, ci_text, sign_verdict
from geobench.report.taxonomy import geometry_frame
from geobench.report.toy_figure import saturation_figure
from geobench.results import atomic_write_text, read_run, write_csv

TOY_P = (0.5, 0.9, 0.99, 0.999)
SATURATED = 1e-2  # |dL/dz| at the largest p below 1% of its value at p = 0.5: the gradient has vanished
LLM_FINAL_STEPS = 20  # OPO Table 1's "final 20 training steps"


def write_card(
    objective: str,
    config: BatteryConfig,
    plans: list[Plan],
    skipped: Mapping[str, str],
    ledger: pd.DataFrame,
    folder: Path,
) -> Path:
    """Write ``folder/CARD.md`` (and its PNG/PDF figures) and ``folder/verdicts.csv``; returns the card's path."""
    sections, rows = [], []  # rows: (experiment, title, status, verdict)
    for step in plans:
        baselines, _ = read_run(step.baseline_out)
        if step.among_baselines:
            frame = baselines
        else:
            mine, _ = read_run(step.out)
            frame = pd.concat([baselines[baselines["variant"] != objective], mine], ignore_index=True)
        text, verdict = SECTIONS[step.experiment.name](frame, objective, folder, step)
        sections.append(f"## {step.experiment.title}\n\n{text}")
        rows.append((step.experiment.name, step.experiment.title, "run", verdict))
    for name, why in skipped.items():
        sections.append(f"## {BY_NAME[name].title}\n\nNot run: {why}.\n")
        rows.append((name, BY_NAME[name].title, "not run", why))
    verdicts = pd.DataFrame([(objective, config.budget, *row) for row in rows], columns=VERDICT_COLUMNS)
    write_csv(verdicts, folder / VERDICTS)
    summary = f"## Verdicts\n\n{verdict_lines(verdicts)}\n"
    path = folder / CARD
    atomic_write_text(path, "\n".join([_header(objective, config, plans, ledger), summary, *sections]))
    return path


def _header(objective: str, config: BatteryConfig, plans: list[Plan], ledger: pd.DataFrame) -> str:
    entry = get_objective(objective)
    source = _shown(plugin_names().get(objective, "built-in (geobench.objectives)"))
    given = dict(config.hparams.get(objective, {}))
    hparams = ", ".join(f"{k}={v!r}" + (" (set)" if k in given else "") for k, v in entry.validate(given).items())
    compared = {v for p in plans for v in getattr(p.baseline_config, p.experiment.methods_field)}
    names = [objective] + sorted(compared & set(REGISTRY) - {objective})
    fields = {f.name: f.name.replace("_", " ") for f in dataclasses.fields(entry.geometry)}
    geometry = geometry_frame(names, fields)
    geometry.insert(1, "feedback", [REGISTRY[n].feedback for n in names])
    cells = ledger.groupby("role")[["cells", "computed", "reused"]].sum()
    return (
        f"# Report card: `{objective}`\n\n"
        f"- Source: {entry.paper}\n- Registered by: {source}\n- Feedback: {entry.feedback}\n"
        f"- Hyperparameters: {hparams or 'none'}\n- Budget: `{config.budget}` (experiments/battery.toml)\n\n"
        "Every number below is computed from the run folders in the ledger; CIs are 95% percentile "
        "bootstraps over seeds. A difference is *resolved* when its CI excludes 0.\n\n"
        f"### Cells\n\n{markdown_table(ledger)}\n"
        f"Computed {int(ledger['computed'].sum())} cells, reused {int(ledger['reused'].sum())} "
        f"(baselines: {_role(cells, 'baselines')}; {objective}: {_role(cells, 'objective')}).\n\n"
        f"### Geometry (the taxonomy columns of OPO Table 2 and ADPO Tables 1 and 3)\n\n{markdown_table(geometry)}"
    )


def _shown(spec: str) -> str:
    """A plugin file under the working folder as a relative path (the card is read on other machines)."""
    path = Path(spec)
    return str(path.relative_to(Path.cwd())) if path.is_absolute() and path.is_relative_to(Path.cwd()) else spec


def _role(cells: pd.DataFrame, role: str) -> str:
    if role not in cells.index:
        return "none"
    row = cells.loc[role]
    return f"{int(row['computed'])} computed, {int(row['reused'])} reused"


def _versus(values: Callable[[str], np.ndarray], objective: str, others: list[str], fmt: str = "{:+.3f}") -> list[dict]:
    """One row per baseline: objective - baseline with its CI and which side it resolves to."""
    rows = []
    mine = values(objective)
    for other in others:
        theirs = values(other)
        if len(mine) < 2 or len(theirs) < 2:
            rows.append({"baseline": other, "difference": "-", "resolved": "too few seeds"})
            continue
        mean, low, high = bootstrap_diff_ci(mine, theirs)
        verdict = {"reproduced": "higher", "not reproduced": "lower", "inconclusive": "not resolved"}
        rows.append(
            {
                "baseline": other,
                "difference": f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]",
                "resolved": verdict[sign_verdict(low, high, +1)],
            }
        )
    return rows


def _sides(versus: list[dict]) -> str:
    """'higher than a, b; lower than c; not resolved against d' from :func:`_versus` rows."""
    parts = []
    for side, words in (("higher", "higher than"), ("lower", "lower than"), ("not resolved", "not resolved against")):
        names = [r["baseline"] for r in versus if r["resolved"] == side]
        if names:
            parts.append(f"{words} {', '.join(names)}")
    return "; ".join(parts) or "no baselines"


def _rank(means: Mapping[str, float], objective: str, higher_is_better: bool = True) -> str:
    order = sorted(means, key=lambda k: -means[k] if higher_is_better else means[k])
    return f"{order.index(objective) + 1} of {len(order)}"


def _figure(fig, folder: Path, stem: str) -> str:
    save_figure(fig, folder, stem)
    return f"![{stem}]({stem}.png)\n\n"


def toy_section(frame: pd.DataFrame, objective: str, folder: Path, step: Plan) -> tuple[str, str]:
    """|dL/dz| at a few confidences in both readings, and whether the objective's gradient vanishes."""
    rows, verdicts = [], []
    for (reading, variant), part in frame.groupby(["coordinates", "variant"]):
        part = part.sort_values("p")
        at = {f"p={p:g}": part["value"].iloc[int(np.abs(part["p"] - p).argmin())] for p in TOY_P}
        ratio = part["value"].iloc[-1] / max(at["p=0.5"], np.finfo(float).tiny)
        rows.append({"reading": reading, "objective": variant, **{k: f"{v:.3g}" for k, v in at.items()}})
        rows[-1][f"at p={part['p'].iloc[-1]:g} / at p=0.5"] = f"{ratio:.3g}"
        if variant == objective:
            verdicts.append(f"{reading}: {'vanishes' if ratio < SATURATED else 'does not vanish'} ({ratio:.3g})")
    caption = f"{objective} beside the baselines: |dL/dz| vs confidence (OPO Fig. 3's toy)"
    figure = _figure(saturation_figure(frame, step.config.log_floor, caption), Path(folder), "card_toy")
    question = f"Does {objective}'s gradient vanish as p -> 1 (|dL/dz| at the largest p below {SATURATED:g} x its "
    text = f"{figure}{question}value at p = 0.5)? {'; '.join(verdicts)}.\n\n{markdown_table(pd.DataFrame(rows))}"
    return text, f"the gradient as p -> 1 {'; '.join(verdicts)}."


def bandits_section(frame: pd.DataFrame, objective: str, folder: Path, step: Plan) -> tuple[str, str]:
    """Final WinMass per scenario with CIs, the objective's rank, its resolved differences, the scaling rows."""
    final = bandits_report.final_values(frame)
    stats = bandits_report.summary(final)
    hidden = step.config.hidden[0]
    main = stats[stats["hidden"] == hidden]
    rows, tally = [], {}
    for (noise, level), part in main.groupby(["scenario", "level"], sort=False):
        means = dict(zip(part["variant"], part["mean"], strict=True))
        best = max((v for v in means if v != objective), key=means.get)
        values = partial(_winmass, final, _at(noise, level, hidden))
        rows.append(
            {
                "scenario": f"{noise}/{level}",
                objective: ci_text(values(objective)),
                "rank": _rank(means, objective),
                "best baseline": f"{best} {means[best]:.3f}",
            }
        )
        for versus in _versus(values, objective, sorted(set(means) - {objective})):
            tally.setdefault(versus["baseline"], []).append(versus["resolved"])
    pairs = pd.DataFrame(
        [{"baseline": b, **{k: r.count(k) for k in ("higher", "lower", "not resolved")}} for b, r in tally.items()]
    )
    caption = f"{objective} beside the baselines: final WinMass, hidden {hidden} (ADPO Fig. 2a's scenarios)"
    text = _figure(bandits_report.fig2a(stats, hidden, None, caption), Path(folder), "card_bandits")
    text += f"Final WinMass, hidden {hidden}, mean [95% CI] over {final['seed'].nunique()} seeds:\n\n"
    text += markdown_table(pd.DataFrame(rows))
    text += f"\nScenarios in which {objective}'s WinMass is resolved higher / lower than each baseline's:\n\n"
    text += markdown_table(pairs)
    scaling = stats[(stats["scenario"] == step.config.scaling_noise) & (stats["level"] == step.config.scaling_level)]
    if step.config.scaling and scaling["hidden"].nunique() > 1:
        table = scaling.pivot(index="variant", columns="hidden", values="mean").reset_index()
        text += f"\nModel scaling (ADPO Fig. 2b), {step.config.scaling_noise}/{step.config.scaling_level}: "
        text += f"mean final WinMass by hidden width\n\n{markdown_table(table)}"
    ranks = [int(r["rank"].split()[0]) for r in rows]
    tallies = ", ".join(f"{r['baseline']} {r['higher']}/{r['lower']}" for r in pairs.to_dict("records"))
    verdict = (
        f"final WinMass in {len(rows)} scenarios, median rank {int(np.median(ranks))} of {len(means)}; "
        f"scenarios resolved higher/lower than each baseline: {tallies}."
    )
    return text, verdict


def _at(noise: str, level: str, hidden: int) -> dict:
    return {"scenario": noise, "level": level, "hidden": hidden}


def _winmass(final: pd.DataFrame, where: Mapping[str, object], variant: str) -> np.ndarray:
    return bandits_report.seed_values(final, variant, **where)


def mujoco_section(frame: pd.DataFrame, objective: str, folder: Path, step: Plan) -> tuple[str, str]:
    """Student return, NDCG and KL per environment with CIs; the objective's differences in return."""
    fin = mujoco_report.final(frame)
    text, verdicts = "", []
    for env in sorted(fin["env"].unique()):
        variants = sorted(fin[fin["env"] == env]["variant"].unique())
        rows = [
            {
                "method": v,
                **{m: ci_text(mujoco_report.values(fin, env, v, m), "{:.4g}") for m in ("return", "ndcg", "kl")},
            }
            for v in variants
        ]
        means = {v: float(np.mean(mujoco_report.values(fin, env, v, "return"))) for v in variants}
        returns = partial(_returns, fin, env)
        versus = _versus(returns, objective, [v for v in variants if v != objective], "{:+.1f}")
        text += f"### {env}\n\n{markdown_table(pd.DataFrame(rows))}\n"
        text += f"{objective}'s return ranks {_rank(means, objective)}; its difference from each baseline:\n\n"
        text += markdown_table(pd.DataFrame(versus))
        verdicts.append(f"{env} return rank {_rank(means, objective)} ({_sides(versus)})")
    text += "\nThe objective runs at its default hyperparameters, anchored on the frozen initial student.\n"
    return text, "; ".join(verdicts) + "."


def _returns(fin: pd.DataFrame, env: str, variant: str) -> np.ndarray:
    return mujoco_report.values(fin, env, variant, "return")


def llm_section(frame: pd.DataFrame, objective: str, folder: Path, step: Plan) -> tuple[str, str]:
    """The regime check, final reward / held-out accuracy / entropy with CIs, the resolved differences, and a
    few of the objective's completions."""
    regime = llm_regime.regime(frame)  # the regime is the run's: every algorithm shares its prompts and budget
    stats = {
        "final reward": final_means(frame, "reward_mean", LLM_FINAL_STEPS),
        "held-out accuracy": final_means(frame, "heldout_accuracy", 1),
        "final entropy": final_means(frame, "entropy", LLM_FINAL_STEPS),
    }
    variants = sorted(frame["variant"].unique(), key=lambda v: (v != objective, v))
    rows = [{"algorithm": v, **{k: ci_text(variant_values(t, v)) for k, t in stats.items()}} for v in variants]
    means = {v: float(np.nanmean(variant_values(stats["final reward"], v))) for v in variants}
    pairs = []
    for name, table in stats.items():
        for row in _versus(partial(variant_values, table), objective, [v for v in variants if v != objective]):
            pairs.append({"metric": name, **row})
    among = tuple(variants)
    caption = f"{objective} beside the baselines: LLM quick regime (seed mean, 95% band)"
    text = _figure(curve_figure(frame, ["reward_mean", "heldout_accuracy"], among, caption), Path(folder), "card_llm")
    text += f"**Regime check:** {regime.sentence()}\n\n{llm_regime.regime_table(frame)}\n"
    text += f"{markdown_table(pd.DataFrame(rows))}\n{objective}'s final reward ranks {_rank(means, objective)}.\n\n"
    text += markdown_table(pd.DataFrame(pairs))
    text += f"\n### What {objective} writes at the start, middle and end of training\n\n"
    text += samples_table(step.out, (objective,))
    reward = [p for p in pairs if p["metric"] == "final reward"]
    verdict = f"final reward rank {_rank(means, objective)} ({_sides(reward)})."
    if not regime.discriminates:
        text += f"\nThe run does not discriminate, so none of {objective}'s differences above is evidence.\n"
        verdict += " NOT DISCRIMINATING: the objectives coincide in this run."
    return text, verdict


SECTIONS = {
    "toy-saturation": toy_section,
    "bandits": bandits_section,
    "mujoco": mujoco_section,
    "llm": llm_section,
}
