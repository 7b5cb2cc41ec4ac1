"""Objectives that reshape PPO's clip (issue 22): ASPO's flipped weights for positive tokens with a soft dual
clip, and BAPO's clip bounds chosen per batch. Neither has a reference in TRL 1.16 or verl 0.9.1; both are
checked in closed form and against their authors' recipes restated in ``tests/test_zoo_parity_clipping.py``.

Shapes: B contexts, G samples, T tokens; r = pi / pi_old per token, A the (B, G) advantage broadcast over T.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geobench.objectives.aggregation import aggregate, masked_mean
from geobench.objectives.batch import GroupBatch
from geobench.objectives.policy_gradient import clipped_surrogate, policy_gradient_metrics
from geobench.objectives.registry import BOUNDS, POSITIVE, Range, objective
from geobench.objectives.zoo_sampled import per_token, sampled_geometry, token_ratio

# The ranges of the hyperparameters this module introduces (the registry checks them by name).
_NEW_BOUNDS = {
    "rho_target": Range(0.0, 1.0, low_open=True),
    "ratio_low_start": Range(0.0, 1.0, low_open=True),
    "ratio_low_max": Range(0.0, 1.0, low_open=True),
    "ratio_high_start": Range(1.0),
    "ratio_high_max": Range(1.0),
    "ratio_low_step": POSITIVE,
    "ratio_high_step": POSITIVE,
}
assert not set(_NEW_BOUNDS) & set(BOUNDS), "a zoo hyperparameter would change an existing objective's range"
BOUNDS.update(_NEW_BOUNDS)


@objective(
    "aspo",
    geometry=sampled_geometry(
        "KL curvature (ratio clip, soft dual clip at c)",
        "Ratio pi / pi_old where A < 0; flipped pi_old / pi where A > 0",
        "Positive tokens weighted by the inverse ratio, extreme weights capped at c with their gradient kept",
    ),
    feedback="sampled",
    paper="Wang et al. 2025 (ASPO, arXiv:2510.06062), the flipped IS ratio of positive tokens and the soft dual "
    "clip; the authors' verl loss (Archer2.0, compute_policy_loss_archer); no TRL or verl reference",
)
def aspo(
    batch: GroupBatch,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float = 3.0,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """ASPO: -A sg(w) pi / sg(pi) on the tokens the clip keeps, -A w (a constant) on the rest, aggregated by ``agg``.

    The gradient is -A w grad log pi with the weight (c = dual_clip)

        A > 0:  w = min(1 / r, c)   where r < 1 + clip_high (flipped ratio; soft dual clip below r = 1/c)
        A < 0:  w = min(r, c)       where r > 1 - clip_low  (PPO's ratio; soft dual clip above r = c)

    and 0 where the clip cuts: a positive token whose probability already rose is pushed less, one whose
    probability fell is pushed more, at most c times. Unlike PPO's dual clip, which zeroes the gradient past
    c, the soft dual clip keeps it at weight c. The value -A w is continuous in r; the authors' code writes
    the dual-clip branch as -A c log pi, a theta-constant away in gradient. Defaults: the authors'
    training scripts (clip 0.2 / 0.2, c = 3.0, token-mean); their entropy-dependent clip widths (Archer's
    0.2 / 0.4 by token-entropy quantile, off in their ASPO runs) are not reproduced.

    Shapes: batch (B, G, T); advantages (B, G); r, w (B, G, T).
    """
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    token_adv = per_token(adv, ratio)
    positive = token_adv > 0
    upper = ratio.clamp(max=1.0 + clip_high)
    lower = ratio.clamp(min=1.0 - clip_low)
    weight = torch.where(positive, upper.reciprocal(), lower).clamp(max=dual_clip).detach()
    kept = torch.where(positive, ratio < 1.0 + clip_high, ratio > 1.0 - clip_low)
    # pi / sg(pi) = exp(log pi - sg(log pi)): value 1, gradient grad log pi where kept, 0 where cut
    carrier = (kept.to(ratio.dtype) * (batch.logp - batch.logp.detach())).exp()
    loss = -token_adv * weight * carrier
    metrics = policy_gradient_metrics(batch, ratio, ~kept, adv)
    dual = kept & (weight == dual_clip)
    metrics["dual_clip_frac"] = masked_mean(dual.to(ratio.dtype), batch.fmask).detach()
    return aggregate(loss, batch.mask, agg, totals=batch.totals), metrics


def _walk(start: float, stop: float, step: float) -> list[float]:
    """start, start + step, ... while <= stop: the steps counted, not accumulated, so that rounding never drops
    the last one (1.2 + 36 * 0.05 = 3.0)."""
    return [start + k * step for k in range(max(0, math.floor((stop - start) / step + 1e-9)) + 1)]


def bapo_bounds(
    ratio: Tensor,
    token_adv: Tensor,
    mask: Tensor,
    *,
    rho_target: float,
    ratio_low_start: float,
    ratio_low_max: float,
    ratio_high_start: float,
    ratio_high_max: float,
    ratio_low_step: float,
    ratio_high_step: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """BAPO Algorithm 1's clip bounds for one batch: (c_low, c_high, rho), 0-dim and detached.

    From (c_low, c_high) = (ratio_low_start, ratio_high_start), while rho < rho_target and c_low + delta_2 <=
    ratio_low_max: raise c_high by delta_1 while it stays <= ratio_high_max, else c_low by delta_2. rho is
    Eq. 8's positive share of the clipped surrogate, summed over the batch's real tokens (the sampled estimate
    of its expectation under pi_rollout = pi_old):

        rho = sum_{A>0} A min(r, c_high) / (sum_{A>0} A min(r, c_high) + sum_{A<0} |A| max(r, c_low))

    (Eq. 8 writes |sum_{A>0} .| / |sum_t .|; read as a share of magnitudes, as the authors' recipe computes it,
    whose positive / negative >= 1 is rho >= 0.5; 1 when no token has A != 0). Raising c_low adds to the
    negative sum, so it only lowers rho: once the walk reaches c_low it runs to ratio_low_max. Every state of
    the walk is evaluated at once with fixed shapes, so the search runs under vmap; the first state meeting
    rho_target, else the last, is taken.

    Shapes: ratio, token_adv, mask (B, G, T).
    """
    ratio, token_adv, mask = ratio.detach(), token_adv.detach(), mask.to(ratio.dtype)
    pos_adv, neg_adv = token_adv.clamp(min=0.0) * mask, (-token_adv).clamp(min=0.0) * mask
    highs = _walk(ratio_high_start, ratio_high_max, ratio_high_step)
    lows = _walk(ratio_low_start, ratio_low_max, ratio_low_step)
    if len(lows) == 1:  # the loop's guard is on c_low: without a c_low step it never runs
        highs = highs[:1]
    pos = torch.stack([(pos_adv * ratio.clamp(max=h)).sum() for h in highs])  # (len(highs),)
    neg = torch.stack([(neg_adv * ratio.clamp(min=c)).sum() for c in lows])  # (len(lows),)
    # the walk: c_high rises to its last value with c_low at its start, then c_low rises
    path_pos = torch.cat([pos, pos[-1:].expand(len(lows) - 1)])
    path_neg = torch.cat([neg[:1].expand(len(highs)), neg[1:]])
    path_low = torch.tensor([lows[0]] * len(highs) + lows[1:], dtype=ratio.dtype, device=ratio.device)
    path_high = torch.tensor(highs + [highs[-1]] * (len(lows) - 1), dtype=ratio.dtype, device=ratio.device)
    total = path_pos + path_neg
    rho = torch.where(total > 0, path_pos / total.clamp(min=torch.finfo(ratio.dtype).tiny), 1.0)
    met = rho >= rho_target
    index = torch.where(met.any(), met.to(torch.int64).argmax(), len(path_low) - 1)
    return path_low[index], path_high[index], rho[index]


@objective(
    "bapo",
    geometry=sampled_geometry(
        "KL curvature (ratio clip, bounds adapted per batch)",
        "Ratio pi / pi_old",
        "PPO clip whose bounds widen until positive tokens hold rho_0 of the loss",
    ),
    feedback="sampled",
    paper="Xi et al. 2025 (BAPO, arXiv:2510.18927), Eq. 8 and Algorithm 1, constants of Sec. 5; the authors' "
    "verl recipe (WooooDyy/BAPO); no TRL or verl reference",
)
def bapo(
    batch: GroupBatch,
    *,
    rho_target: float = 0.4,
    ratio_low_start: float = 0.6,
    ratio_low_max: float = 0.9,
    ratio_high_start: float = 1.2,
    ratio_high_max: float = 3.0,
    ratio_low_step: float = 0.02,
    ratio_high_step: float = 0.05,
    dual_clip: float | None = None,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """BAPO: max(-A r, -A clip(r, c_low, c_high)) per token, with (c_low, c_high) from :func:`bapo_bounds`.

    The bounds are explicit ratio bounds, not 1 -+ eps. Defaults are the paper's (Sec. 5: rho_0 = 0.4,
    [a-, b-] = [0.6, 0.9], [a+, b+] = [1.2, 3.0], delta_1 = 0.05, delta_2 = 0.02; the README quotes rho_0 =
    0.5); GRPO's z-scored advantages ("we leverage GRPO as the basis"). token-mean is our choice (Algorithm 1
    writes a token sum with no normaliser; the recipe uses verl's token-mean). dual_clip None: the paper has
    none; the recipe inherits verl's c = 3. The recipe also walks in another order (c_low first, then
    c_high); we follow Algorithm 1. The bounds are a statistic of the batch passed in (the recipe
    all-reduces its sums over data-parallel ranks).

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T; c_low, c_high, rho 0-dim.
    """
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    token_adv = per_token(adv, ratio)
    c_low, c_high, rho = bapo_bounds(
        ratio,
        token_adv,
        batch.mask,
        rho_target=rho_target,
        ratio_low_start=ratio_low_start,
        ratio_low_max=ratio_low_max,
        ratio_high_start=ratio_high_start,
        ratio_high_max=ratio_high_max,
        ratio_low_step=ratio_low_step,
        ratio_high_step=ratio_high_step,
    )
    loss, active = clipped_surrogate(ratio, token_adv, 1.0 - c_low, c_high - 1.0, dual_clip)
    metrics = policy_gradient_metrics(batch, ratio, active, adv)
    metrics.update(clip_low_bound=c_low, clip_high_bound=c_high, positive_share=rho)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), metrics
