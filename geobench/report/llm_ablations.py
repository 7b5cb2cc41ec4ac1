"""LLM ablations of ours: OPO's three forms side by side, and the stress run where collapse can happen.

Pure functions of the runs' ``metrics.csv`` frames; the stress run's claims are rows of
``experiments/paper/llm_stress_claims.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geobench.report.claims import Outcome, evaluate, read_claims, rule
from geobench.report.llm_report import GUARDS, LLMRun, ablation_table, per_seed, variant_values, variants
from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_diff_ci, bootstrap_mean_ci, sign_verdict
from geobench.report.style import label

OPO_FORMS = (
    ("Eq. 7 as printed (escort with the pi_ref^-(1-alpha) factor)", "llm"),
    ("App. A.3 Step 2 (no pi_ref factor)", "llm-opo-escort-no-ref"),
    ("authors' code (w = q^alpha p^(1-alpha), per group)", "llm-opo-code"),
)


def opo_forms_table(runs: dict[str, pd.DataFrame]) -> str:
    """OPO under each form (setting name -> that run's frame): reward, held-out accuracy, entropy, grad norm."""
    return ablation_table(runs, "opo")


def _per_seed_max_over_median(frame: pd.DataFrame, variant: str) -> np.ndarray:
    rows = frame[(frame["metric"] == "grad_norm") & (frame["variant"] == variant) & (frame["step"] >= 1)]
    ratios = rows.groupby("seed")["value"].agg(lambda v: v.max() / max(v.median(), 1e-12))
    return ratios.to_numpy(dtype=float)


def stress_table(frame: pd.DataFrame) -> str:
    """Per algorithm of the stress run: peak and final reward, final held-out accuracy, grad norm and its spikes."""
    peak, final = per_seed(frame, "reward_mean", "peak"), per_seed(frame, "reward_mean")
    grad = per_seed(frame, "grad_norm")
    rows = []
    for variant in variants(frame, tuple(sorted(set(frame["variant"]), key=str))):

        def pick(stats: pd.DataFrame, variant: str = variant) -> np.ndarray:
            return stats.loc[stats["variant"] == variant, "value"].to_numpy(float)

        heldout = frame[(frame["variant"] == variant) & (frame["metric"] == "heldout_accuracy")]
        last = heldout[heldout["step"] == heldout["step"].max()]["value"].to_numpy(float)
        spikes = _per_seed_max_over_median(frame, variant)
        rows.append(
            {
                "algorithm": label(variant),
                "peak reward (5-step mean)": _ci(pick(peak)),
                "final reward (last 20)": _ci(pick(final)),
                "final held-out accuracy": _ci(last),
                "grad norm (last 20, pre-clip)": _ci(pick(grad), "{:.2f}"),
                "largest / median grad norm": f"{spikes.max():.3g} (worst seed)" if len(spikes) else "-",
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
    """``subject``'s gradient norm above ``versus``'s (a CI over seeds above 0), and no seed's largest
    pre-clip norm above ``threshold`` times its median: large, but not exploding."""
    grad = per_seed(run.frame, metric, statistic)
    treated, base = variant_values(grad, subject), variant_values(grad, versus)
    if not len(treated) or not len(base):
        return None
    mean, low, high = bootstrap_diff_ci(treated, base)
    spikes = _per_seed_max_over_median(run.frame, subject)
    large = sign_verdict(low, high, 1)
    verdict = large if spikes.max() < float(threshold) or large != "reproduced" else "not reproduced"
    return Outcome(
        f"{label(subject)} - {label(versus)} grad norm {mean:+.2f} [{low:+.2f}, {high:+.2f}]; "
        f"max/median {spikes.max():.1f}",
        verdict,
    )


def stress_claims(frame: pd.DataFrame) -> pd.DataFrame:
    """The claims ``experiments/paper/llm_stress_claims.csv`` judges on the stress run (collapse, exploding
    gradients)."""
    return evaluate(read_claims("llm_stress_claims"), LLMRun(frame), GUARDS)
