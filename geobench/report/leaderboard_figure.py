"""The leaderboard's heat map: objectives x experiment columns, coloured by the resolved difference from
each objective's reference baseline; a pure function of the scores table
(:func:`geobench.report.leaderboard.scores`, itself computed from ``finals.csv`` and ``identities.csv``).

Colour: the difference where its CI excludes 0, divided by the 90th percentile of such |differences| in
its column (columns have different units: WinMass, return, reward; an outlier would wash out the rest)
and clipped, so each column reads from -1 (blue, lower) to +1 (red, higher); white where the CI
straddles 0. A cell marked ``R`` is the reference itself, ``=``
an objective that coincides with another there (same as X: its difference is not evidence), ``x`` one
that failed there (a non-finite loss or a diverged run); grey a cell the objective could not run
(its feedback) or lacks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from geobench.report.style import add_caption

_SKIP_METRICS = ("anchor_grad",)  # a sign, read in the toy's table, not a score
_CELL_IN = 0.24  # inches per heat-map cell
_SCALE_QUANTILE = 0.9
_LABEL_IN = 0.045  # inches per character of a 6 pt row label (DejaVu Sans, on the safe side)


def heat_columns(scored: pd.DataFrame, experiments: list[str]) -> list[tuple[str, str, str]]:
    """(experiment, column, metric) of every heat-map column, experiments in order, each one's columns
    in the order its finals give them (the bandits' headline mean is left to the table)."""
    out = []
    for experiment in experiments:
        part = scored[(scored["experiment"] == experiment) & ~scored["metric"].isin(_SKIP_METRICS)]
        part = part[part["column"] != "all scenarios"]
        out += [(experiment, c, m) for c, m in dict.fromkeys(zip(part["column"], part["metric"], strict=True))]
    return out


def heat_values(scored: pd.DataFrame, experiments: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(colour values, cell marks), objectives x heat columns: see the module docstring."""
    columns = heat_columns(scored, experiments)
    objectives = sorted(scored["objective"].unique(), key=lambda o: (_feedback(scored, o), o))
    values = pd.DataFrame(np.nan, index=objectives, columns=range(len(columns)))
    marks = pd.DataFrame("", index=objectives, columns=range(len(columns)))
    for j, (experiment, column, metric) in enumerate(columns):
        part = scored[
            (scored["experiment"] == experiment) & (scored["column"] == column) & (scored["metric"] == metric)
        ]
        resolved = part["side"].isin(["higher", "lower"])
        finite = part.loc[resolved, "diff"].abs()
        finite = finite[np.isfinite(finite) & (finite > 0)]
        # The 90th percentile of the resolved |differences|, not their largest: one outlier (a gradient
        # ratio of 1e16 in the toy) would wash out the column; beyond it, and an infinite one, read +-1.
        scale = float(np.quantile(finite, _SCALE_QUANTILE)) if len(finite) else 1.0
        for row in part.itertuples(index=False):
            if row.side == "failed":
                marks.loc[row.objective, j] = "x"
            elif row.side == "reference":
                values.loc[row.objective, j], marks.loc[row.objective, j] = 0.0, "R"
            elif row.same_as:
                values.loc[row.objective, j], marks.loc[row.objective, j] = 0.0, "="
            elif row.side in ("higher", "lower"):
                values.loc[row.objective, j] = float(np.clip(row.diff / scale, -1.0, 1.0))
            elif row.side in ("not resolved", "equal"):
                values.loc[row.objective, j] = 0.0
    shown = values.notna().any(axis=1) | (marks != "").any(axis=1)  # a row with nothing to show is left out
    return values[shown], marks[shown]


def _feedback(scored: pd.DataFrame, objective: str) -> str:
    return str(scored.loc[scored["objective"] == objective, "feedback"].iloc[0])


def heatmap(scored: pd.DataFrame, experiments: list[str], caption: str) -> Figure:
    """The heat map as a figure (see the module docstring)."""
    columns = heat_columns(scored, experiments)
    values, marks = heat_values(scored, experiments)
    rows, cols = values.shape
    names = [f"{o} ({_feedback(scored, o)[0]})" for o in values.index]
    left = 0.3 + _LABEL_IN * max(map(len, names), default=4)  # inches of the longest row label
    bottom = 0.3 + _LABEL_IN * max((len(c) for _, c, _ in columns), default=4)  # column labels, upright
    width, height = left + 1.4 + _CELL_IN * max(cols, 4), 1.5 + bottom + _CELL_IN * max(rows, 4)
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 1.3 / width, top=1 - 1.5 / height, bottom=bottom / height)
    ax = fig.add_subplot()
    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.85")
    image = ax.imshow(data, cmap=cmap, norm=TwoSlopeNorm(0.0, -1.0, 1.0), aspect="auto")
    for (i, j), mark in np.ndenumerate(marks.to_numpy()):
        if mark:
            ax.text(j, i, mark, ha="center", va="center", fontsize=6, color="0.2")
    ax.set_yticks(range(rows), names, fontsize=6)
    ax.set_xticks(range(cols), [c for _, c, _ in columns], fontsize=6, rotation=90)  # upright boxes: no overlap
    edges = [j for j in range(1, cols) if columns[j][0] != columns[j - 1][0]]
    for j in edges:
        ax.axvline(j - 0.5, color="black", linewidth=0.8)
    for j, experiment in _experiment_labels(columns):
        ax.text(j, -0.8, experiment, ha="center", va="bottom", fontsize=7)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("resolved difference / column's 90th percentile (+: higher than the reference)", fontsize=6)
    bar.ax.tick_params(labelsize=6)
    key = "R: the reference, =: same as another objective here, x: failed (non-finite loss or diverged), grey: not run"
    add_caption(fig, f"{caption}; {key}")
    return fig


def _experiment_labels(columns: list[tuple[str, str, str]]) -> list[tuple[float, str]]:
    """(x centre, experiment) of each experiment's block of columns."""
    spans: dict[str, list[int]] = {}
    for j, (experiment, _, _) in enumerate(columns):
        spans.setdefault(experiment, []).append(j)
    return [((js[0] + js[-1]) / 2, experiment) for experiment, js in spans.items()]
