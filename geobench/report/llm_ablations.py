"""LLM ablations of ours: OPO's three forms side by side, and the stress run where collapse can happen.

Pure functions of the runs' ``metrics.csv`` frames; the stress run's claims are rows of
``experiments/paper/llm_stress_claims.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geobench.report.claims import Outcome, evaluate, read_claims, rule
from geobench.report.llm_report import GUARDS, LLMRun, paired_values, per_seed, variant_values, variants
from geobench.report.llm_tables import ablation_table
from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_mean_ci, paired_diff_ci, sign_verdict
from geobench.report.style import label

OPO_FORMS = (
    ("Eq. 7 as printed (escort with the pi_ref^-(1-alpha) factor)", "llm"),
    ("App. A.3 Step 2 (no pi_ref factor)", "llm-opo-escort-no-ref"),
    (
        "authors' code (their verl fork: 1/alpha drive, p over clipped length-normalised log-ratios / tau)",
        "llm-opo-code",
    ),
)


def opo_forms_table(runs: dict[str, pd.DataFrame]) -> str:
    """OPO under each form (setting name -> that run's frame): reward, held-out accuracy, entropy, grad norm."""
    return ablation_table(runs, "opo")


def grad_norm_extremes(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Per seed of ``variant``: the largest and the median pre-clip gradient norm over its steps, and the
    share of its steps whose norm is exactly 0 (a collapsed seed: no signal left in any group)."""
    rows = frame[(frame["metric"] == "grad_norm") & (frame["variant"] == variant) & (frame["step"] >= 1)]
    grouped = rows.groupby("seed")["value"]
    return pd.DataFrame(
        {"largest": grouped.max(), "median": grouped.median(), "zero": grouped.agg(lambda v: float((v == 0).mean()))}
    )


def _medians_text(extremes: pd.DataFrame) -> str:
    """Each seed's median grad norm; a zero median says the seed collapsed, never a ratio over it."""
    parts = [
        f"0 (seed {seed}: exactly 0 on {zero:.0%} of steps, the seed collapsed)" if median == 0 else f"{median:.2f}"
        for seed, median, zero in zip(extremes.index, extremes["median"], extremes["zero"], strict=True)
    ]
    return ", ".join(parts) or "-"


def stress_table(frame: pd.DataFrame) -> str:
    """Per algorithm of the stress run: peak and final reward, final held-out accuracy, grad norm, and the
    largest and each seed's median pre-clip grad norm over the run."""
    peak, final = per_seed(frame, "reward_mean", "peak"), per_seed(frame, "reward_mean")
    grad = per_seed(frame, "grad_norm")
    rows = []
    for variant in variants(frame, tuple(sorted(set(frame["variant"]), key=str))):

        def pick(stats: pd.DataFrame, variant: str = variant) -> np.ndarray:
            return stats.loc[stats["variant"] == variant, "value"].to_numpy(float)

        heldout = frame[(frame["variant"] == variant) & (frame["metric"] == "heldout_accuracy")]
        last = heldout[heldout["step"] == heldout["step"].max()]["value"].to_numpy(float)
        extremes = grad_norm_extremes(frame, variant)
        rows.append(
            {
                "algorithm": label(variant),
                "peak reward (5-step mean)": _ci(pick(peak)),
                "final reward (last 20)": _ci(pick(final)),
                "final held-out accuracy": _ci(last),
                "grad norm (last 20, pre-clip)": _ci(pick(grad), "{:.2f}"),
                "largest grad norm (any seed, any step)": f"{extremes['largest'].max():.2f}" if len(extremes) else "-",
                "median grad norm (each seed)": _medians_text(extremes),
            }
        )
    return markdown_table(pd.DataFrame(rows))


def _ci(values: np.ndarray, fmt: str = "{:.3f}") -> str:
    if not len(values):
        return "-"
    mean, low, high = bootstrap_mean_ci(values)
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


@rule("large_not_exploding")
def large_not_exploding(
    run: LLMRun, subject: str, versus: str, metric: str, statistic: str, threshold: str
) -> Outcome | None:
    """``subject``'s gradient norm above ``versus``'s (a paired CI over seeds above 0), and no seed's largest
    pre-clip norm above ``threshold`` times its median: large, but not exploding. A seed whose median is 0
    (it collapsed) has no such ratio: it cannot show the claim holds, only another seed can refute it."""
    grad = per_seed(run.frame, metric, statistic)
    if not len(variant_values(grad, subject)) or not len(variant_values(grad, versus)):
        return None
    mean, low, high = paired_diff_ci(*paired_values(grad, subject, versus))
    extremes = grad_norm_extremes(run.frame, subject)
    alive = extremes[extremes["median"] > 0]
    spikes = (alive["largest"] / alive["median"]).to_numpy(float)
    large = sign_verdict(low, high, 1)
    if large != "reproduced":
        verdict = large
    elif len(spikes) and spikes.max() >= float(threshold):
        verdict = "not reproduced"
    else:
        verdict = "inconclusive" if len(alive) < len(extremes) else "reproduced"
    dead = [str(seed) for seed in extremes.index.difference(alive.index)]
    ratio = f"max/median {spikes.max():.1f}" if len(spikes) else "max/median -"
    if dead:
        ratio += f" (seeds with median > 0; median 0 on seed {', '.join(dead)}: it collapsed)"
    return Outcome(
        f"{label(subject)} - {label(versus)} grad norm {mean:+.2f} [{low:+.2f}, {high:+.2f}]; {ratio}", verdict
    )


def stress_claims(run: LLMRun) -> pd.DataFrame:
    """The claims ``experiments/paper/llm_stress_claims.csv`` judges on the stress run (collapse, exploding
    gradients)."""
    return evaluate(read_claims("llm_stress_claims"), run, GUARDS)
