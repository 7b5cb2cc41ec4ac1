"""OPO Fig. 3 from ``saturation.csv``: |dL/dz| against p, linear and log (p >= 0.5) panels, and its claims."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geobench.report.claims import Outcome, evaluate_each, read_claims, rule, verdict_of
from geobench.report.style import add_caption, fit, style

_ORDER = ("sft", "dpo", "grpo", "dapo", "gspo", "opo")
# Curves that coincide exactly and would hide one another: GSPO equals GRPO when T = 1,
# and DPO with beta = 1 has SFT's gradient 1 - p. Draw the second of each pair dashed.
_DASHED = {"gspo", "dpo"}
_READING_TITLE = {
    "anchored-logit": "anchored-logit reading: Delta = z - z_ref",
    "exact": "exact reading: Delta = log pi - log pi_ref",
}


def saturation_figure(frame: pd.DataFrame, log_floor: float, caption: str = "") -> Figure:
    """Two panels per coordinate reading: (a) |grad| vs p, (b) p >= 0.5, log scale.

    Exact zeros (gradients switched off by a clip) are drawn at ``log_floor`` on the log
    panel, marked by a dotted line; the caption says so.
    """
    present = set(frame["coordinates"].unique())
    readings = [r for r in _READING_TITLE if r in present]
    fig = Figure(figsize=(11, 3.6 * len(readings) + 0.6))
    axes = fig.subplots(len(readings), 2, squeeze=False)
    names = set(frame["variant"].unique())
    variants = [v for v in _ORDER if v in names] + sorted(names - set(_ORDER))
    for row, reading in zip(axes, readings, strict=True):
        part = frame[(frame["coordinates"] == reading) & (frame["metric"] == "grad_abs")]
        for variant in variants:
            curve = part[part["variant"] == variant].sort_values("p")
            kw = style(variant)
            kw.pop("marker")
            dashed = variant in _DASHED
            row[0].plot(curve["p"], curve["value"], lw=1.6, ls="--" if dashed else "-", **kw)
            high = curve[curve["p"] >= 0.5]
            row[1].plot(high["p"], np.maximum(high["value"], log_floor), lw=1.6, ls="--" if dashed else "-", **kw)
        row[0].set(
            xlabel="confidence p = sigmoid(z)", ylabel="|dL/dz| (per context)", title=f"(a) {_READING_TITLE[reading]}"
        )
        row[1].set(yscale="log", xlabel="confidence p = sigmoid(z)", ylabel="|dL/dz| (log)", title="(b) zoom p >= 0.5")
        row[1].axhline(log_floor, color="0.6", lw=0.8, ls=":")
        row[0].grid(alpha=0.3)
        row[1].grid(alpha=0.3, which="both")
    axes[0][0].legend(ncols=3, fontsize=8, loc="upper center")  # "best" scans every point: slow
    if caption:
        add_caption(fig, caption)
    fit(fig)  # one pass of tight layout; constrained layout would cost more than the drawing
    return fig


@dataclass(frozen=True)
class Reading:
    """What OPO Fig. 3's claims are judged on: the saturation rows of one coordinate reading."""

    frame: pd.DataFrame
    reading: str

    def grad(self, variant: str, p_from: str) -> pd.DataFrame:
        part = self.frame
        return part[(part["variant"] == variant) & (part["p"] >= float(p_from))].sort_values("p")


@rule("grows_past")
def grows_past(run: Reading, subject: str, p_from: str, threshold: str) -> Outcome | None:
    """|dL/dz| at the largest p is at least ``threshold`` and above its value at ``p_from``."""
    grad = run.grad(subject, p_from)
    if not len(grad):
        return None
    low, high = grad["value"].iloc[0], grad["value"].iloc[-1]
    return Outcome(
        f"|dL/dz| {low:.3g} at p = {p_from} -> {high:.3g} at p = {grad['p'].iloc[-1]:g}",
        verdict_of(high >= float(threshold) and high > low),
        {"reading": run.reading},
    )


@rule("vanishes")
def vanishes(run: Reading, subject: str, p_from: str, threshold: str) -> Outcome | None:
    """The largest |dL/dz| over p >= ``p_from`` of the ``subject`` algorithms is at most ``threshold``."""
    present = [v for v in subject.split() if len(run.grad(v, p_from))]
    if not present:
        return None
    worst = max(run.grad(v, p_from)["value"].max() for v in present)
    return Outcome(
        f"max |dL/dz| over p >= {p_from}: {worst:.3g}", verdict_of(worst <= float(threshold)), {"reading": run.reading}
    )


@rule("log_slope_within")
def log_slope_within(run: Reading, subject: str, z_from: str, z_to: str, lower: str, upper: str) -> Outcome | None:
    """The slope of log|dL/dz| in z over [z_from, z_to] lies in [lower, upper] (exp(-z) decay: -1)."""
    part = run.frame
    fit = part[(part["variant"] == subject) & (part["z"].between(float(z_from), float(z_to))) & (part["value"] > 0)]
    if len(fit) <= 2:
        return None
    slope = float(np.polyfit(fit["z"], np.log(fit["value"]), 1)[0])
    return Outcome(
        f"d log|dL/dz| / dz = {slope:.3f} over z in [{z_from}, {z_to}]",
        verdict_of(float(lower) <= slope <= float(upper)),
        {"reading": run.reading},
    )


def claims(frame: pd.DataFrame) -> pd.DataFrame:
    """OPO Sec. 8.3's statements about Fig. 3 (``experiments/paper/opo_fig3_claims.csv``), per reading;
    the toy is exact, so no CIs."""
    frame = frame[frame["metric"] == "grad_abs"]
    readings = sorted(frame["coordinates"].unique())
    return evaluate_each(
        read_claims("opo_fig3_claims"), (Reading(frame[frame["coordinates"] == r], r) for r in readings)
    )
