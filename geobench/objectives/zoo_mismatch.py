"""Rollout/training mismatch corrections (issue 22): TIS and IcePop, GRPO's clipped surrogate weighted per token
by k = pi_old / pi_rollout, the ratio between the training engine's and the rollout engine's probabilities
of the same sampled token under the same weights.

A caller whose rollout engine is not the trained model (vLLM beside FSDP) passes its log-probs in a
:class:`RolloutBatch`. geobench's experiments sample with the policy being trained, so they build plain
:class:`GroupBatch`\\ es: pi_rollout = pi_old, k = 1, and ``tis`` and ``icepop`` *are* ``grpo`` on every one
of them, loss and gradient (``tests/test_zoo_parity_mismatch.py`` checks both the identity and the
correction against verl's ``rollout_is`` weights).

The rollout log-probs are data of the batch, not a hyperparameter: a (B, G, T) tensor belongs where the
micro-batch slicing, the shape checks and the config files already treat tensors as data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geobench.errors import ConfigError
from geobench.objectives.aggregation import aggregate, masked_mean
from geobench.objectives.batch import GroupBatch
from geobench.objectives.policy_gradient import LOG_RATIO_CLAMP, clipped_surrogate, policy_gradient_metrics
from geobench.objectives.registry import BOUNDS, Range, objective
from geobench.objectives.zoo_sampled import per_token, sampled_geometry, token_ratio

# The ranges of the hyperparameters this module introduces. Every range holds k = 1, so that a batch
# without rollout log-probs gets weight exactly 1 (a cap below 1 would scale GRPO, a window without 1 mask it).
_NEW_BOUNDS = {
    "is_cap": Range(1.0),
    "icepop_low": Range(0.0, 1.0, low_open=True),
    "icepop_high": Range(1.0),
}
assert not set(_NEW_BOUNDS) & set(BOUNDS), "a zoo hyperparameter would change an existing objective's range"
BOUNDS.update(_NEW_BOUNDS)


@dataclass(frozen=True)
class RolloutBatch(GroupBatch):
    """A :class:`GroupBatch` that also carries the rollout engine's log-probs.

    Attributes:
        rollout_logp: (B, G, T) log-probs of the sampled tokens under the rollout engine (no graph); None
            means the batch was sampled by the trained model itself (pi_rollout = pi_old).
    """

    rollout_logp: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rollout_logp is not None and self.rollout_logp.shape != self.logp.shape:
            shape, expected = tuple(self.rollout_logp.shape), tuple(self.logp.shape)
            raise ConfigError(f"RolloutBatch.rollout_logp has shape {shape}, expected {expected}")


def mismatch_ratio(batch: GroupBatch) -> Tensor:
    """(B, G, T) k = pi_old / pi_rollout = exp(clamp(log pi_old - log pi_rollout, +-20)), detached; exactly 1
    for a batch without rollout log-probs (any plain :class:`GroupBatch`)."""
    rollout = getattr(batch, "rollout_logp", None)
    log_k = torch.zeros_like(batch.old) if rollout is None else batch.old - rollout.detach()
    return log_k.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()


def _weighted_grpo(
    batch: GroupBatch,
    weight: Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
    advantage: str,
    agg: str,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO's per-token clipped loss times ``weight`` (B, G, T), aggregated by ``agg``; weight 1 is ``grpo``."""
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    loss, active = clipped_surrogate(ratio, per_token(adv, ratio), clip_low, clip_high, dual_clip)
    metrics = policy_gradient_metrics(batch, ratio, active, adv)
    metrics["mismatch_weight_mean"] = masked_mean(weight, batch.fmask).detach()
    return aggregate(loss * weight, batch.mask, agg, totals=batch.totals), metrics


@objective(
    "tis",
    geometry=sampled_geometry(
        "KL curvature (ratio clip)",
        "Ratio pi / pi_old, times a truncated pi_old / pi_rollout",
        "GRPO with a truncated rollout-mismatch weight; GRPO itself here, where pi_rollout = pi_old",
    ),
    feedback="sampled",
    paper="Yao et al. 2025 (Your Efficient RL Framework Secretly Brings You Off-Policy RL Training, "
    "fengyao.notion.site/off-policy-rl), truncated IS; verl rollout_is='token' with a float threshold; TRL "
    "vllm_importance_sampling_mode='token_truncate'. Coincides with grpo on every geobench experiment",
)
def tis(
    batch: GroupBatch,
    *,
    is_cap: float = 2.0,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """TIS: min(k, C) max(-A r, -A clip(r)) per token, k = pi_old / pi_rollout (:func:`mismatch_ratio`), C = is_cap.

    The blog's truncated-IS policy gradient (its formula is unnumbered) on GRPO's surrogate. C = 2.0 is verl's
    ``rollout_is_threshold`` default and the blog's; TRL's token_truncate caps at 3.0. Without rollout
    log-probs k = 1 and this is ``grpo`` exactly. Token-level weights only (verl's and TRL's sequence-level
    products are not registered).

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T; k (B, G, T).
    """
    k = mismatch_ratio(batch)
    loss, metrics = _weighted_grpo(batch, k.clamp(max=is_cap), clip_low, clip_high, dual_clip, advantage, agg)
    metrics["mismatch_truncated_frac"] = masked_mean((k > is_cap).to(k.dtype), batch.fmask).detach()
    return loss, metrics


@objective(
    "icepop",
    geometry=sampled_geometry(
        "KL curvature (ratio clip)",
        "Ratio pi / pi_old, times pi_old / pi_rollout inside [alpha, beta]",
        "GRPO dropping tokens whose engines disagree; GRPO itself here, where pi_rollout = pi_old",
    ),
    feedback="sampled",
    paper="Ling Team 2025 (IcePop: 'Small Leak Can Sink a Great Ship', Ring-1T, arXiv:2510.18855), masked IS; "
    "verl rollout_is='token' with threshold 'alpha_beta'; TRL vllm_importance_sampling_mode='token_mask'. "
    "Coincides with grpo on every geobench experiment",
)
def icepop(
    batch: GroupBatch,
    *,
    icepop_low: float = 0.5,
    icepop_high: float = 5.0,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """IcePop: M(k) max(-A r, -A clip(r)) per token, M(k) = k where alpha <= k <= beta, else 0.

    k = pi_old / pi_rollout (:func:`mismatch_ratio`); a token outside [alpha, beta] gets no gradient. alpha
    = 0.5 and beta = 5.0 are the blog's values and verl's ``decoupled_token_icepop`` defaults. Without rollout
    log-probs k = 1 and this is ``grpo`` exactly.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T; k (B, G, T).
    """
    k = mismatch_ratio(batch)
    kept = (k >= icepop_low) & (k <= icepop_high)
    loss, metrics = _weighted_grpo(batch, torch.where(kept, k, 0.0), clip_low, clip_high, dual_clip, advantage, agg)
    metrics["mismatch_masked_frac"] = masked_mean((~kept).to(k.dtype), batch.fmask).detach()
    return loss, metrics
