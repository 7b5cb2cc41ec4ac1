"""OPO v5 Experiment 2 (out of distribution) from ``metrics.csv``: a pure function, with binomial intervals.

The validation accuracy is a count of problems solved out of ``n``, so its uncertainty is binomial:
the Wilson score interval (Wilson 1927), which stays inside [0, 1] and does not collapse to a point
at 0 or n solved, as the normal approximation does. Ours pools the final evaluation of every seed
(each seed draws its own ``n`` problems), so it covers the sampling of problems at fixed trained
policies, not the seed-to-seed spread of training, which the per-seed range beside it shows.
"""

from __future__ import annotations

import math

import pandas as pd

from geobench.report.llm_report import per_seed, variant_values, variants
from geobench.report.markdown import markdown_table
from geobench.report.stats import ci_text
from geobench.report.style import label

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(solved: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion ``solved / n`` (95% at the default ``z``)."""
    if n <= 0:
        raise ValueError("a binomial interval needs n >= 1")
    p, z2 = solved / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at 0 or n solved the bound is exactly 0 or 1; the formula gets there up to rounding
    return (0.0 if solved == 0 else centre - half), (1.0 if solved == n else centre + half)


def accuracy_text(solved: int, n: int) -> str:
    """'0.480 [0.385, 0.577] (48/100)': the proportion, its Wilson 95% interval and the count."""
    low, high = wilson_interval(solved, n)
    return f"{solved / n:.3f} [{low:.3f}, {high:.3f}] ({solved}/{n})"


def _final_accuracy(frame: pd.DataFrame, variant: str) -> pd.Series:
    """Per seed, the held-out accuracy at the seed's last evaluation."""
    rows = frame[(frame["variant"] == variant) & (frame["metric"] == "heldout_accuracy")]
    last = rows[rows["step"] == rows.groupby("seed")["step"].transform("max")]
    return last.set_index("seed")["value"].sort_index()


def ood_table(frame: pd.DataFrame, paper: pd.DataFrame, eval_prompts: int) -> str:
    """Per algorithm: validation accuracy at the last evaluation, ours (``eval_prompts`` problems per seed,
    pooled over seeds, Wilson 95%) beside the paper's (one seed, its ``val_problems``, Wilson 95%); the
    per-seed range and the accuracy at step 0; and the final-20-step reward, grad norm and entropy (mean
    [95% bootstrap CI] over seeds) beside the paper's."""
    reward, grad, entropy = (per_seed(frame, m) for m in ("reward_mean", "grad_norm", "entropy"))
    rows = []
    for variant in variants(frame):
        final = _final_accuracy(frame, variant)
        start = frame[(frame["variant"] == variant) & (frame["metric"] == "heldout_accuracy") & (frame["step"] == 0)]
        solved = int(round(float((final * eval_prompts).sum())))
        p = paper[paper["variant"] == variant]
        rows.append(
            {
                "algorithm": label(variant),
                "val. accuracy, ours": accuracy_text(solved, eval_prompts * len(final)) if len(final) else "-",
                "per seed": ", ".join(f"{v:.3f}" for v in final) or "-",
                "at step 0": f"{start['value'].mean():.3f}" if len(start) else "-",
                "val. accuracy, paper": (
                    accuracy_text(int(p["val_solved"].iloc[0]), int(p["val_problems"].iloc[0])) if len(p) else "-"
                ),
                "reward, ours": ci_text(variant_values(reward, variant)),
                "reward, paper": f"{p['reward'].iloc[0]:.3f}" if len(p) else "-",
                "grad norm, ours": ci_text(variant_values(grad, variant), "{:.2f}"),
                "grad norm, paper": f"{p['grad_norm'].iloc[0]:.3f}" if len(p) else "-",
                "entropy, ours": ci_text(variant_values(entropy, variant)),
                "entropy, paper": f"{p['entropy'].iloc[0]:.3f}" if len(p) else "-",
            }
        )
    return markdown_table(pd.DataFrame(rows))
