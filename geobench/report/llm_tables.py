"""OPO Table 1, ADPO Table 4 and the one-algorithm ablation table from ``metrics.csv``: pure functions.

Per-seed statistics of :mod:`~geobench.report.llm_report` with a 95% bootstrap CI over seeds; the
ADPO speedup is a paired ratio (seed k of ADPO with seed k of the other: they share prompts).
"""

from __future__ import annotations

import pandas as pd

from geobench.report.llm_report import interleaved_pairs, paired_values, per_seed, variant_values, variants
from geobench.report.markdown import markdown_table
from geobench.report.stats import ci_text, paired_ratio_ci
from geobench.report.style import label


def table1(frame: pd.DataFrame, paper: pd.DataFrame) -> str:
    """OPO Table 1: reward and grad norm over the final 20 steps, ours (CI over seeds) and the paper's."""
    reward, grad = per_seed(frame, "reward_mean"), per_seed(frame, "grad_norm")
    rows = []
    for variant in variants(frame):
        p = paper[paper["variant"] == variant]
        rows.append(
            {
                "algorithm": label(variant),
                "mean reward, ours": ci_text(variant_values(reward, variant)),
                "mean reward, paper": f"{p['reward'].iloc[0]:.3f}" if len(p) else "-",
                "grad norm, ours": ci_text(variant_values(grad, variant), "{:.2f}"),
                "grad norm, paper": f"{p['grad_norm'].iloc[0]:.2f}" if len(p) else "-",
                "held-out accuracy, start -> end (ours)": _heldout_text(frame, variant),
            }
        )
    return markdown_table(pd.DataFrame(rows))


def _heldout_text(frame: pd.DataFrame, variant: str) -> str:
    rows = frame[(frame["variant"] == variant) & (frame["metric"] == "heldout_accuracy")]
    if rows.empty:
        return "-"
    first, last = rows[rows["step"] == rows["step"].min()], rows[rows["step"] == rows["step"].max()]
    return f"{first['value'].mean():.3f} -> {ci_text(last['value'].to_numpy(dtype=float))}"


def table4(frame: pd.DataFrame, paper: pd.DataFrame, micro_batch: str, interleaved: pd.DataFrame | None = None) -> str:
    """ADPO Table 4 like for like: actor update time per step at one micro-batch for all, from the
    sweep's cells; and, where the interleaved benchmark ran an algorithm (``interleaved``: its
    ``update_time_s`` rows, one step per repetition), its time over ADPO's, paired by repetition."""
    times = per_seed(frame, "update_time_s", how="mean")
    rows = []
    for variant in variants(frame):
        p = paper[paper["variant"] == variant]
        adpo, other = paired_values(times, "adpo", variant)
        speed = paired_ratio_ci(adpo, other) if len(adpo) else None
        rows.append(
            {
                "algorithm": label(variant),
                "micro-batch, ours": micro_batch,
                "update time (s/step), ours": ci_text(variant_values(times, variant), "{:.4f}"),
                "ADPO speedup, cells": f"{1 / (speed[0] + 1):.2f}x" if speed else "-",
                "ADPO speedup, interleaved": _interleaved_speedup(interleaved, variant),
                "micro-batch, paper": str(int(p["micro_batch"].iloc[0])) if len(p) else "-",
                "update time (s), paper": f"{p['update_time_s'].iloc[0]:.1f}" if len(p) else "-",
            }
        )
    return markdown_table(pd.DataFrame(rows))


def _interleaved_speedup(times: pd.DataFrame | None, variant: str) -> str:
    """``variant``'s update time over ADPO's in the interleaved benchmark, mean [95% CI] paired by
    repetition; '-' where the benchmark did not run it."""
    if variant == "adpo":  # ADPO over itself, where the benchmark ran it
        ran = times is not None and "adpo" in set(times.loc[times["metric"] == "update_time_s", "variant"])
        return "1.00x" if ran else "-"
    wide = interleaved_pairs(times, variant, "adpo")
    if wide is None or len(wide) < 2:
        return "-"
    ratio, low, high = paired_ratio_ci(wide[variant].to_numpy(float), wide["adpo"].to_numpy(float))
    return f"{ratio + 1:.2f}x [{low + 1:.2f}, {high + 1:.2f}]"


def ablation_table(runs: dict[str, pd.DataFrame], variant: str) -> str:
    """One algorithm under several settings: final-20 reward, final held-out accuracy, entropy, grad norm."""
    rows = []
    for name, frame in runs.items():
        part = frame[frame["variant"] == variant]
        heldout = part[part["metric"] == "heldout_accuracy"]
        last = heldout[heldout["step"] == heldout["step"].max()]["value"].to_numpy(dtype=float)
        rows.append(
            {
                "setting": name,
                "final reward": ci_text(variant_values(per_seed(part, "reward_mean"), variant)),
                "final held-out accuracy": ci_text(last) if len(last) else "-",
                "entropy (final 20)": ci_text(variant_values(per_seed(part, "entropy"), variant)),
                "grad norm (final 20)": ci_text(variant_values(per_seed(part, "grad_norm"), variant), "{:.2f}"),
            }
        )
    return markdown_table(pd.DataFrame(rows))
