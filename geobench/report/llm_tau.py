"""The adaptive temperatures over training: ADPO's tau (Eq. 12) and OPO's (Sec. 9.1), from ``metrics.csv``.

Both are logged as the metric ``tau`` (per step, the value the step's update used). The figure is a
pure function of those rows; the sentence states the range each covered (min-max over seeds and
steps) beside the range its rule may move in (run.json's config), so a temperature that never left
its bound reads as such.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geobench.report.style import label, style

METRIC = "tau"
# Per algorithm: the config fields bounding its adaptive temperature, and whether it adapts at all.
BOUNDS = {"adpo": ("tau_min", "tau_max", "adaptive_tau"), "opo": ("opo_tau_min", "opo_tau_max", "opo_adaptive_tau")}


def tau_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """(variant, seed, step, value) of the logged temperature, training steps with a finite value only."""
    rows = frame[(frame["metric"] == METRIC) & (frame["step"] >= 1)].dropna(subset=["value"])
    return rows[["variant", "seed", "step", "value"]].sort_values(["variant", "seed", "step"])


def tau_variants(frame: pd.DataFrame) -> list[str]:
    """The algorithms that log a temperature, ADPO and OPO first."""
    present = sorted(set(tau_rows(frame)["variant"]), key=str)
    return [v for v in BOUNDS if v in present] + [v for v in present if v not in BOUNDS]


def _bounds(config: Mapping, variant: str) -> tuple[float, float] | None:
    low, high, _ = BOUNDS.get(variant, ("", "", ""))
    return (float(config[low]), float(config[high])) if low in config and high in config else None


def tau_figure(frame: pd.DataFrame, config: Mapping, caption: str) -> Figure:
    """One panel per algorithm that logs tau: each seed's tau over RL steps (thin), their mean (thick), and
    the rule's [low, high] as dashed lines where the config gives them."""
    names = tau_variants(frame) or ["-"]
    fig = Figure(figsize=(5.2 * len(names), 4.2))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.2, top=0.84, wspace=0.3)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    rows = tau_rows(frame)
    for ax, variant in zip(axes, names, strict=True):
        kw = style(variant) if variant != "-" else {"color": "k"}
        wide = rows[rows["variant"] == variant].pivot(index="step", columns="seed", values="value")
        for seed in wide.columns:
            ax.plot(wide.index, wide[seed], color=kw["color"], lw=0.6, alpha=0.35)
        if len(wide):
            ax.plot(wide.index, wide.mean(axis=1), color=kw["color"], lw=1.8, label=f"{label(variant)}, seed mean")
        bounds = _bounds(config, variant)
        if bounds is not None:
            for bound, name in zip(bounds, ("rule's range", None), strict=True):
                ax.axhline(bound, color="0.4", ls="--", lw=0.8, label=name)
        ax.set(xlabel="RL step", ylabel="tau (logged)", title=label(variant) if variant != "-" else "no tau logged")
        ax.grid(alpha=0.3)
        if len(wide):
            ax.legend(fontsize=8)
    fig.suptitle(caption, fontsize=9)
    return fig


def tau_ranges(frame: pd.DataFrame, config: Mapping) -> pd.DataFrame:
    """Per algorithm: the min and max of tau over seeds and steps, and the share of its rule's range covered."""
    rows = tau_rows(frame)
    out = []
    for variant in tau_variants(frame):
        values = rows.loc[rows["variant"] == variant, "value"].to_numpy(dtype=float)
        bounds = _bounds(config, variant)
        share = (values.max() - values.min()) / (bounds[1] - bounds[0]) if bounds and bounds[1] > bounds[0] else np.nan
        out.append(
            {
                "variant": variant,
                "low": values.min(),
                "high": values.max(),
                "bound_low": bounds[0] if bounds else np.nan,
                "bound_high": bounds[1] if bounds else np.nan,
                "share": share,
            }
        )
    return pd.DataFrame(out, columns=["variant", "low", "high", "bound_low", "bound_high", "share"])


def tau_sentence(frame: pd.DataFrame, config: Mapping) -> str:
    """The range tau covered per algorithm, min-max over seeds and steps, beside its rule's range."""
    ranges = tau_ranges(frame, config)
    if ranges.empty:
        return "No algorithm of this run logs a temperature (`tau`)."
    seeds, steps = frame["seed"].nunique(), int(frame.loc[frame["step"] >= 1, "step"].max())
    parts = []
    for row in ranges.itertuples():
        text = f"{label(row.variant)}'s tau stayed in [{row.low:.3f}, {row.high:.3f}]"
        if not np.isnan(row.share):
            adapts = BOUNDS[row.variant][2]
            fixed = " (adaptive tau off in this run)" if config.get(adapts) is False else ""
            text += f", {row.share:.0%} of its rule's range [{row.bound_low:g}, {row.bound_high:g}]{fixed}"
        parts.append(text)
    return f"Over {seeds} seeds x {steps} steps (min-max over both): " + "; ".join(parts) + "."
