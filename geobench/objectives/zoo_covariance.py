"""Clip-Cov and KL-Cov (Cui et al. 2025, arXiv:2505.22617, Sec. 4): PPO-family losses that act on the few
tokens whose advantage and log-probability covary most, the entropy-collapse mechanism the paper names.

The selection is written with fixed-shape tensor operations only (a sort and a gather, no boolean
indexing or data-dependent sizes), so that the losses run under ``torch.func.vmap`` as the bandits'
batched seeds require; verl's implementation uses ``nonzero`` and boolean indexing, which vmap refuses.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geobench.objectives.aggregation import aggregate, masked_mean
from geobench.objectives.batch import GroupBatch
from geobench.objectives.policy_gradient import clipped_surrogate, policy_gradient_metrics
from geobench.objectives.registry import BOUNDS, Range, objective
from geobench.objectives.zoo_sampled import per_token, sampled_geometry

_NEW_BOUNDS = {
    "clip_cov_ratio": Range(0.0, 1.0, low_open=True),
    "clip_cov_lb": Range(),
    "clip_cov_ub": Range(),
    "kl_cov_ratio": Range(0.0, 1.0, low_open=True),
    "kl_coef": Range(0.0),
}
assert not set(_NEW_BOUNDS) & set(BOUNDS), "a zoo hyperparameter would change an existing objective's range"
BOUNDS.update(_NEW_BOUNDS)


def cov_scores(adv_tok: Tensor, logp: Tensor, mask: Tensor) -> Tensor:
    """(B, G, T) centred products Cov = (A - mean A)(log pi - mean log pi), means over the real tokens, detached."""
    logp = logp.detach()
    return ((adv_tok - masked_mean(adv_tok, mask)) * (logp - masked_mean(logp, mask))).detach()


def selection_size(mask: Tensor, ratio: float) -> Tensor:
    """k = max(1, floor(ratio n)) over the n real tokens of a (B, G, T) mask: a 0-dim long tensor."""
    return torch.floor(ratio * mask.sum()).clamp(min=1.0).long()


def top_k(scores: Tensor, eligible: Tensor, k: Tensor) -> Tensor:
    """Bool mask, shape of ``scores``, of the k largest ``scores`` among the ``eligible`` entries (all of them
    when fewer than k are eligible). Ties at the k-th value are all kept (random scores have none)."""
    flat = torch.where(eligible, scores, -torch.inf).flatten()
    ranked = flat.sort(descending=True).values
    kth = ranked.gather(0, (k - 1).clamp(0, flat.numel() - 1).reshape(1)).reshape(())
    return eligible & (scores >= kth)


def token_keys(old_logp: Tensor) -> Tensor:
    """(B, G, T) pseudo-random keys in [0, 1), a fixed function of each token's position and pi_old log-prob.

    A hash (frac(sin(.) 43758.5453)), not a generator: the draw is the same on every pass over the
    same batch, the loss stays a pure function, and vmap needs no randomness mode.
    """
    position = torch.arange(old_logp.numel(), device=old_logp.device, dtype=old_logp.dtype).reshape(old_logp.shape)
    return torch.frac(torch.sin(old_logp.detach() * 12.9898 + position * 78.233).abs() * 43758.5453)


@objective(
    "clip-cov",
    geometry=sampled_geometry(
        "KL curvature (ratio clip)", "Ratio pi / pi_old", "PPO clip plus detaching high-covariance tokens"
    ),
    feedback="sampled",
    paper="Cui et al. 2025 (The Entropy Mechanism of RL for Reasoning LMs, arXiv:2505.22617), Eq. 11; "
    "verl policy loss 'clip_cov'",
)
def clip_cov(
    batch: GroupBatch,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_cov_ratio: float = 0.0002,
    clip_cov_lb: float = 1.0,
    clip_cov_ub: float = 5.0,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clip-Cov: PPO's clipped loss with k = max(1, floor(clip_cov_ratio n)) tokens' gradient removed.

    The k tokens are drawn among the real, not already clipped tokens whose Cov (:func:`cov_scores`)
    lies in (clip_cov_lb, clip_cov_ub); their loss is multiplied by 0. verl draws them with torch's
    global generator (``randperm``); here the draw is the k smallest :func:`token_keys`, a fixed hash,
    so the two agree exactly whenever at most k tokens are eligible and otherwise pick different
    (equally many) tokens. Defaults are verl's and the paper's (r = 2e-4, bounds 1 and 5).

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantage(advantage)
    mask = batch.fmask
    ratio = (batch.logp - batch.old).exp()  # verl does not clamp here
    token_adv = per_token(adv, ratio)
    loss, clipped = clipped_surrogate(ratio, token_adv, clip_low, clip_high, None)
    cov = cov_scores(token_adv, batch.logp, mask)
    eligible = (cov > clip_cov_lb) & (cov < clip_cov_ub) & (mask > 0) & ~clipped
    dropped = top_k(-token_keys(batch.old), eligible, selection_size(mask, clip_cov_ratio))
    metrics = policy_gradient_metrics(batch, ratio, clipped | dropped, adv)
    metrics["cov_dropped"] = dropped.to(mask.dtype).sum().detach()
    return aggregate(torch.where(dropped, 0.0, loss), batch.mask, agg, totals=batch.totals), metrics


@objective(
    "kl-cov",
    geometry=sampled_geometry(
        "KL penalty on high-covariance tokens",
        "Ratio pi / pi_old",
        "Unclipped surrogate, abs(log r) penalised on top-Cov tokens",
    ),
    feedback="sampled",
    paper="Cui et al. 2025 (arXiv:2505.22617), Eq. 12; verl policy loss 'kl_cov'",
)
def kl_cov(
    batch: GroupBatch,
    *,
    kl_cov_ratio: float = 0.0002,
    kl_coef: float = 1.0,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """KL-Cov: -A r per token, plus kl_coef |log r| on the k = max(1, floor(kl_cov_ratio n)) real tokens of
    largest Cov (:func:`cov_scores`). No clip. Defaults are verl's and the paper's (k = 2e-4, coefficient 1).

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantage(advantage)
    mask = batch.fmask
    log_ratio = batch.logp - batch.old
    ratio = log_ratio.exp()
    token_adv = per_token(adv, ratio)
    cov = cov_scores(token_adv, batch.logp, mask)
    flags = top_k(cov, mask > 0, selection_size(mask, kl_cov_ratio))
    loss = -token_adv * ratio + torch.where(flags, kl_coef * log_ratio.abs(), 0.0)
    metrics = policy_gradient_metrics(batch, ratio, flags, adv)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), metrics
