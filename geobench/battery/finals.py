"""What the leaderboard reads from the battery's run folders: every objective's final per-seed values
(``finals.csv``) and the objectives whose rows coincide in an experiment (``identities.csv``).

Both are tidy tables written once by ``geobench leaderboard``; its tables and heat map are drawn
from them alone (:mod:`geobench.report.leaderboard`).

``finals.csv`` (:data:`FINALS_COLUMNS`): one row per (experiment, column, metric, objective, seed).
A *column* is one reading of an experiment, one column of the heat map:

- toy-saturation, one per coordinate reading: ``grad_ratio``, |dL/dz| at the largest p over its
  value at p = 0.5 (a vanishing gradient gives 0), and ``anchor_grad``, dL/dz at p = 0.5 (every
  objective prefers the outcome y, so a descent step should raise it: < 0; > 0 is a sign error).
  The toy is exact: one "seed".
- bandits, ``<noise>/<level>`` at the main width and ``width <h>`` at the scaling scenario: the
  final WinMass per seed.
- mujoco, one per environment: the student's final return per seed.
- llm, ``final reward`` (the mean of the last :data:`LLM_FINAL_STEPS` steps) and ``held-out accuracy``
  (the last evaluation), per seed.

The starting level of a column, where the run records one, is the row of the pseudo-objective
:data:`START` (registry names never hold ``@``): the bandits' pretrained reference policy, the LLM's
warm start (its step-1 batch reward and its step-0 held-out accuracy).

``identities.csv`` (:data:`IDENTITY_COLUMNS`): a row per ordered pair (objective, same_as) that
coincides in an experiment, with the evidence: every row of the two objectives' runs equal within
:data:`SAME_RTOL` (deterministic cells draw their random numbers from key and seed, not from the
method, so equal updates give equal rows), or, on the LLM, the per-pair update check's verdict
(:func:`geobench.report.llm_pairs.pair_verdict`: cosine >= 0.99 at every checked update).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from geobench.report import bandits_report, mujoco_report
from geobench.report.llm_pairs import COINCIDE, pair_verdict
from geobench.report.llm_regime import final_means
from geobench.report.stats import last_logged

FINALS_COLUMNS = ("experiment", "column", "metric", "objective", "seed", "value")
IDENTITY_COLUMNS = ("experiment", "objective", "same_as", "evidence")
START = "@start"
LLM_FINAL_STEPS = 20  # OPO Table 1's "final 20 training steps"
SAME_RTOL = 1e-6  # rows equal within this (and 1e-9 absolute): the float noise of one computation order
ANCHOR_P = 0.5  # the toy's anchor, z = z_ref = 0


def finals(experiment: str, frame: pd.DataFrame, config) -> pd.DataFrame:
    """``experiment``'s final values, in :data:`FINALS_COLUMNS`, from the rows of every objective's run
    (``frame``, the ``variant`` column naming the objective) and the run's config."""
    rows = _FINALS[experiment](frame, config)
    return rows.assign(experiment=experiment)[list(FINALS_COLUMNS)] if len(rows) else _empty(FINALS_COLUMNS)


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def at_anchor(curve: pd.DataFrame) -> float:
    """A toy curve's value at the grid point nearest p = 0.5, the anchor (rows of one variant and reading)."""
    return float(curve["value"].iloc[int(np.abs(curve["p"].to_numpy() - ANCHOR_P).argmin())])


def saturation_ratio(curve: pd.DataFrame) -> float:
    """|dL/dz| at the largest p over its value at the anchor, from one curve's ``grad_abs`` rows sorted by p."""
    with np.errstate(over="ignore"):  # a gradient that grows past float range has an infinite ratio
        return float(curve["value"].iloc[-1] / max(at_anchor(curve), np.finfo(float).tiny))


def _toy(frame: pd.DataFrame, config) -> pd.DataFrame:
    rows = []
    for (reading, objective), part in frame.groupby(["coordinates", "variant"]):
        size = part[part["metric"] == "grad_abs"].sort_values("p")
        rows.append((reading, "grad_ratio", objective, 0, saturation_ratio(size)))
        signed = part[part["metric"] == "grad"].sort_values("p")
        if len(signed):  # toy cells written before the signed gradient was recorded have none
            rows.append((reading, "anchor_grad", objective, 0, at_anchor(signed)))
    return pd.DataFrame(rows, columns=["column", "metric", "objective", "seed", "value"])


def _bandits(frame: pd.DataFrame, config) -> pd.DataFrame:
    final = bandits_report.final_values(frame)
    main = final[final["hidden"] == config.hidden[0]]
    scenarios = main.assign(column=main["scenario"] + "/" + main["level"])
    parts = [scenarios]
    if config.scaling:
        at = final[(final["scenario"] == config.scaling_noise) & (final["level"] == config.scaling_level)]
        parts.append(at.assign(column="width " + at["hidden"].astype(str)))
    start = last_logged(frame[(frame["variant"] == "reference") & (frame["metric"] == "winmass")], ["hidden"])
    main_start = start[start["hidden"] == config.hidden[0]]
    for column in scenarios["column"].unique():  # the reference policy is evaluated once, on clean contexts
        parts.append(main_start.assign(column=column, variant=START))
    if config.scaling:
        parts.append(start.assign(column="width " + start["hidden"].astype(str), variant=START))
    rows = pd.concat(parts, ignore_index=True)
    return rows.assign(metric="winmass", objective=rows["variant"])


def _mujoco(frame: pd.DataFrame, config) -> pd.DataFrame:
    final = mujoco_report.final(frame)
    final = final[final["metric"] == "return"]
    return final.assign(column=final["env"], objective=final["variant"])


def _llm(frame: pd.DataFrame, config) -> pd.DataFrame:
    parts = []
    for column, metric, steps in (
        ("final reward", "reward_mean", LLM_FINAL_STEPS),
        ("held-out accuracy", "heldout_accuracy", 1),
    ):
        part = final_means(frame, metric, steps)
        parts.append(part.assign(column=column, metric=metric, objective=part["variant"]))
        first = frame[(frame["metric"] == metric)].sort_values("step")
        first = first[first["step"] == first["step"].min()]  # every cell starts from the same warm start
        one = first[first["variant"] == first["variant"].iloc[0]] if len(first) else first
        parts.append(one.assign(column=column, objective=START)[["seed", "value", "column", "metric", "objective"]])
    return pd.concat(parts, ignore_index=True)


_FINALS = {"toy-saturation": _toy, "bandits": _bandits, "mujoco": _mujoco, "llm": _llm}

# The columns that key a row of each experiment's run besides (variant, seed, step, metric), and the
# metrics compared: what training produced, not what an objective reports of itself (its loss value,
# its clip fraction), which can differ between objectives that make the same update.
_KEYS = {
    "toy-saturation": ["coordinates", "p"],
    "bandits": ["scenario", "level", "hidden"],
    "mujoco": ["env"],
    "llm": [],
}
_OUTCOMES = {
    "toy-saturation": ("grad_abs", "grad"),
    "bandits": ("winmass", "top_prob"),
    "mujoco": ("return", "ndcg", "kl"),
    "llm": ("reward_mean", "heldout_accuracy", "entropy", "completion_length"),
}


def identities(experiment: str, frame: pd.DataFrame, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every ordered pair of objectives of ``frame`` (one experiment's rows) that coincide there, in
    :data:`IDENTITY_COLUMNS`; ``pairs``: the LLM's per-pair check rows (``pairs.csv``) of the runs."""
    keys = [*_KEYS[experiment], "seed", "step", "metric"]
    present = [k for k in keys if k in frame.columns]
    rows = frame[(frame["variant"] != "reference") & frame["metric"].isin(_OUTCOMES[experiment])]
    rows = rows.sort_values(present)
    series = {v: part.set_index(present)["value"] for v, part in rows.groupby("variant")}
    found = []
    for a, b in itertools.combinations(sorted(series), 2):
        evidence = _same_rows(series[a], series[b])
        if evidence is None and pairs is not None and pair_verdict(pairs, a, b) == "coincide":
            evidence = f"per-pair update check: cosine >= {COINCIDE:g} at every checked update"
        if evidence:
            found += [(experiment, a, b, evidence), (experiment, b, a, evidence)]
    return pd.DataFrame(found, columns=list(IDENTITY_COLUMNS)) if found else _empty(IDENTITY_COLUMNS)


def _same_rows(a: pd.Series, b: pd.Series) -> str | None:
    """'identical rows ...' when ``a`` and ``b`` have the same index and values within :data:`SAME_RTOL`."""
    if len(a) != len(b) or not a.index.equals(b.index):
        return None
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    if not np.allclose(x, y, rtol=SAME_RTOL, atol=1e-9, equal_nan=True):
        return None
    gap = np.nanmax(np.abs(x - y)) if len(x) else 0.0
    return f"identical rows: {len(x)} values, largest difference {gap:.1e}"
