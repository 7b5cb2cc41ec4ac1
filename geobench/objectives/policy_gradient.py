"""Ratio-based policy-gradient objectives: PPO/GRPO, DAPO, GSPO and the TRPO surrogate.

All take a :class:`GroupBatch` whose ``old_logp`` is the sampling policy and return
``(loss, metrics)``; metrics are detached 0-dim tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geobench.objectives.aggregation import aggregate, masked_mean
from geobench.objectives.batch import GroupBatch
from geobench.objectives.registry import Geometry, Recipe, objective

# verl clamps the token log-ratio to +-20 before exp; GSPO's sequence log-ratio to <= 10.
LOG_RATIO_CLAMP = 20.0
_SEQ_LOG_RATIO_MAX = 10.0

_PG_GEOMETRY = Geometry(
    sampling="implicit KL",
    optimization="KL curvature (ratio clip)",
    coordinates="Ratio pi / pi_old",
    target="Advantage-weighted samples",
    behavior="Pushing sampled answers by their advantage",
)


def clipped_surrogate(
    ratio: Tensor, adv: Tensor, clip_low: float, clip_high: float, dual_clip: float | None
) -> tuple[Tensor, Tensor]:
    """PPO's pessimistic clipped loss per token (Schulman et al. 2017, Eq. 7), with dual clip.

    loss = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high)); with ``dual_clip`` = c > 1
    and A < 0 it is further capped at -A c (Ye et al. 2020), as in verl.

    Args:
        ratio: (B, G, T) importance ratios.
        adv: (B, G, T) advantages (broadcast from (B, G, 1) is fine).

    Returns:
        (per-token loss (B, G, T), bool mask of tokens where the clip was active).
    """
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    active = clipped > unclipped
    if dual_clip is not None:
        capped = torch.minimum(loss, -adv * dual_clip)
        active = active | ((loss > -adv * dual_clip) & (adv < 0))
        loss = torch.where(adv < 0, capped, loss)
    return loss, active


def clip_mass(ratio: Tensor, active: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
    """The share of the unclipped surrogate's gradient weight that the clip zeroes, detached: ().

    The unclipped surrogate -A r has per-token gradient -A r grad log pi, of weight |A_t r_t|; the
    clip zeroes it on the ``active`` tokens. clip_mass = sum_active |A r| / sum |A r| over the mask
    (0 when no token carries weight). A token clip fraction of 1 % can hold most of the weight when
    a few tokens carry large |A r| (issue 24).

    Shapes: ratio, active, mask (B, G, T); adv (B, G).
    """
    weight = (adv.unsqueeze(-1) * ratio).abs().detach() * mask
    total = weight.sum()
    clipped = (weight * active.to(weight.dtype)).sum()
    return torch.where(total > 0, clipped / total.clamp(min=torch.finfo(weight.dtype).tiny), 0.0)


def policy_gradient_metrics(batch: GroupBatch, ratio: Tensor, active: Tensor, adv: Tensor) -> dict[str, Tensor]:
    """The ratio objectives' shared metrics: clip fraction (``active`` (B, G, T) marks clipped tokens) and
    the share of gradient weight the clip takes (:func:`clip_mass`), mean ratio, approximate
    KL(pi_old || pi) and the advantage range; all detached."""
    mask = batch.fmask
    return {
        "clip_frac": masked_mean(active.to(mask.dtype), mask).detach(),
        "clip_mass": clip_mass(ratio, active, adv, mask),
        "ratio_mean": masked_mean(ratio, mask).detach(),
        "approx_kl": masked_mean(batch.old - batch.logp, mask).detach(),
        "adv_range": (adv.max() - adv.min()).detach(),
    }


@objective(
    "ppo",
    geometry=_PG_GEOMETRY,
    feedback="sampled",
    paper="Schulman et al. 2017, Eq. 7 (clipped surrogate); ADPO Sec. 6.1 baseline",
    advantage="mean",
)
@objective(
    "grpo",
    geometry=_PG_GEOMETRY,
    feedback="sampled",
    paper="Shao et al. 2024 (DeepSeekMath); ADPO App. F Eq. 27; OPO Sec. 9.1 baseline",
)
@objective(
    "dapo",
    geometry=Geometry(
        sampling="implicit KL (dynamic sampling)",
        optimization="KL curvature (decoupled clip)",
        coordinates="Ratio pi / pi_old",
        target="Advantage-weighted samples",
        behavior="Clip-higher, token-level policy gradient",
    ),
    feedback="sampled",
    paper="Yu et al. 2025 (DAPO), Eq. 8-10; OPO Sec. 9.1 baseline",
    recipe=Recipe(filter_groups=True, overlong=True),  # dynamic sampling (Eq. 11), overlong handling (Sec. 3.4)
    clip_high=0.28,
)
def ppo_clip(
    batch: GroupBatch,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Token-level clipped surrogate with group advantages.

    ``grpo``: z-scored group advantages, symmetric clip 0.2, token-mean (the authors'
    verl baseline; ADPO Eq. 27 writes the seq-mean-token-mean form, ``agg`` selects it).
    ``dapo``: clip-higher 0.2 / 0.28 and token-mean (DAPO Eq. 10); its dynamic sampling and
    overlong shaping act on the batch and rewards (``informative_groups``,
    ``overlong_penalty``). ``ppo``: baseline-subtracted (mean) advantages, no critic.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantage(advantage)
    log_ratio = (batch.logp - batch.old).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = log_ratio.exp()
    token_adv = adv.unsqueeze(-1).expand_as(ratio)
    loss, active = clipped_surrogate(ratio, token_adv, clip_low, clip_high, dual_clip)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), policy_gradient_metrics(batch, ratio, active, adv)


@objective(
    "gspo",
    geometry=Geometry(
        sampling="implicit KL",
        optimization="KL curvature (sequence ratio clip)",
        coordinates="Length-normalised sequence ratio",
        target="Advantage-weighted samples",
        behavior="Clipping whole sequences",
    ),
    feedback="sampled",
    paper="Zheng et al. 2025 (GSPO); ADPO App. F Eq. 28-29, 34",
)
def gspo(
    batch: GroupBatch,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    advantage: str = "zscore",
    agg: str = "seq-mean-token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO: the clipped surrogate on the length-normalised sequence ratio.

    rho_i = exp(mean_t log(pi / pi_old)) (Eq. 28), broadcast to every token through the
    straight-through form log pi - sg(log pi) + sg(log rho_i) (Eq. 34), so each token's
    gradient carries the sequence ratio. With T = 1 it equals GRPO.

    Shapes: batch (B, G, T); rho (B, G).
    """
    adv = batch.advantage(advantage)
    mask = batch.fmask
    seq_log_ratio = ((batch.logp - batch.old) * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # (B, G)
    token_log_ratio = batch.logp - batch.logp.detach() + seq_log_ratio.detach().unsqueeze(-1)
    ratio = token_log_ratio.clamp(max=_SEQ_LOG_RATIO_MAX).exp()
    token_adv = adv.unsqueeze(-1).expand_as(ratio)
    loss, active = clipped_surrogate(ratio, token_adv, clip_low, clip_high, None)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), policy_gradient_metrics(batch, ratio, active, adv)


@objective(
    "trpo",
    geometry=Geometry(
        sampling="implicit KL",
        optimization="Fisher (explicit KL constraint)",
        coordinates="Ratio pi / pi_old",
        target="Advantage-weighted samples",
        behavior="Natural-gradient step inside a KL ball",
        space="Parameter space",
        center="Old policy",
        metric="Param Fisher",
        trust_region="Explicit KL constraint",
    ),
    feedback="sampled",
    paper="Schulman et al. 2015 (TRPO), Eq. 14; ADPO Table 3",
)
def trpo(
    batch: GroupBatch,
    *,
    advantage: str = "mean",
    agg: str = "token-mean",
    kl_estimator: str = "k3",
) -> tuple[Tensor, dict[str, Tensor]]:
    """TRPO's surrogate -E[r A] (Schulman et al. 2015, Eq. 14) as a loss.

    The constraint's KL(pi_old || pi) is :func:`sample_kl`, which
    :func:`geobench.objectives.trpo_step.natural_gradient_step` differentiates twice for
    its Fisher-vector products; its value is reported as ``metrics["kl"]``.

    Shapes: batch (B, G, T); advantages (B, G).
    """
    adv = batch.advantage(advantage)
    ratio = (batch.logp - batch.old).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()
    surrogate = aggregate(ratio * adv.unsqueeze(-1), batch.mask, agg, totals=batch.totals)
    kl = sample_kl(batch, kl_estimator, agg)
    return -surrogate, {"kl": kl.detach(), "adv_range": (adv.max() - adv.min()).detach()}


def sample_kl(batch: GroupBatch, estimator: str = "k3", agg: str = "token-mean") -> Tensor:
    """Sample estimate of KL(pi_old || pi) from tokens drawn by pi_old, graph kept.

    With r = pi / pi_old, ``k1`` = -log r and ``k3`` = r - 1 - log r are both unbiased
    for KL(pi_old || pi); ``k3`` is never negative. Both have the Fisher as their expected
    Hessian at pi = pi_old.
    """
    log_ratio = (batch.logp - batch.old).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    tokens = -log_ratio if estimator == "k1" else log_ratio.exp() - 1.0 - log_ratio
    return aggregate(tokens, batch.mask, agg, totals=batch.totals)
