"""What an LLM cell logs: one schema for both engines, and the two quantities derived from the update.

Rows are tidy (seed, step, metric, value), one per metric and RL step; an engine writes only
names declared here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

EVAL_METRICS = ("heldout_accuracy",)  # greedy decoding on held-out prompts, at step 0 and every eval_every
# Measured on the step's own rollouts (its prompts_per_step prompts, before any filtering or
# refill), before the update.
ROLLOUT_METRICS = (
    "reward_mean",
    "accuracy",
    "completion_length",
    "completion_length_std",  # population std over the step's B*G completions
    "truncated_frac",
    "reward_levels",  # distinct rewards the objective sees
    "adv_range",  # of the z-scored group advantages
    # Only where a recipe filters groups (DAPO's dynamic sampling): the groups the update
    # trains on (prompts_per_step unless max_gen_batches ran out) and the generation rounds used.
    "groups_kept",
    "gen_rounds",
    # Only where ADPO Eq. 12's guard sets a temperature: its c_t and p_t (tau = tau_max -
    # (tau_max - tau_min) c_t p_t; tau itself is an update metric).
    "guard_confidence",
    "guard_improvement",
)
# Of the update's metrics (the objective's, averaged over the updates, and the optimizer's), the
# ones that get rows; the rest stay in the objective. ratio_one_frac, with reward_levels,
# truncated_frac and completion_length_std above, feeds the report's regime check.
UPDATE_METRICS = (
    "entropy",
    "loss",
    "grad_norm",
    "clip_frac",
    "clip_mass",  # share of |A r| gradient weight on clipped tokens (objectives with a ratio clip only)
    "tau",
    "signal_range",
    "response_efficiency",
    "approx_kl",
    "w_range",
    "ratio_one_frac",
)
# Wall-clock measurements go to their own CSV (``DIR/timing/timing.csv``) so that
# ``metrics.csv`` is a deterministic function of the config and seed (tested).
TIMING_METRICS = ("update_time_s", "rollout_tokens_per_s", "step_time_s", "pair_check_time_s")
METRICS = (*EVAL_METRICS, *ROLLOUT_METRICS, *UPDATE_METRICS, *TIMING_METRICS)
# What a diverged run shows first; response_efficiency is NaN by design when the signal is 0.
MUST_BE_FINITE = ("loss", "grad_norm", "entropy", "reward_mean", "tau", "heldout_accuracy")


def signal_range(metrics: Mapping[str, float], fallback: float) -> float:
    """The range of what drives the update: the objective's drive ``w_range`` where it has one, else
    its advantage range ``adv_range``, else ``fallback``."""
    return metrics.get("w_range", metrics.get("adv_range", fallback))


def response_efficiency(grad_norm: float, signal: float) -> float:
    """||grad|| / (0.5 x signal range): gradient norm per unit of signal; NaN when there is no signal."""
    return grad_norm / (0.5 * signal) if signal > 0 else math.nan
