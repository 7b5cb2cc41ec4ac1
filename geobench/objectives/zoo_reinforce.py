"""The field's REINFORCE-family sampled objectives (issue 22): losses on log pi with their own
baselines or weights (GPG, RLOO, REINFORCE++-baseline, DRO, Kimi k1.5, VESPO), each checked against its
reference in ``tests/test_zoo_parity_sampled.py``.

Shapes: B contexts, G samples, T tokens; r = pi / pi_old per token.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geobench.objectives.aggregation import aggregate, masked_mean
from geobench.objectives.batch import GroupBatch
from geobench.objectives.policy_gradient import LOG_RATIO_CLAMP, clipped_surrogate, policy_gradient_metrics
from geobench.objectives.registry import BOUNDS, POSITIVE, Geometry, Range, objective
from geobench.objectives.zoo_sampled import per_token, sampled_geometry, token_ratio

# The ranges of the hyperparameters this module introduces (the registry checks them by name).
_NEW_BOUNDS = {
    "f_norm": POSITIVE,
    "k_pos": Range(0.0),
    "k_neg": Range(0.0),
    "lambda_pos": POSITIVE,
    "lambda_neg": POSITIVE,
}
assert not set(_NEW_BOUNDS) & set(BOUNDS), "a zoo hyperparameter would change an existing objective's range"
BOUNDS.update(_NEW_BOUNDS)


def gpg_advantages(rewards: Tensor, f_norm: float = 1.0) -> Tensor:
    """GPG's advantages alpha (R - mean_g R) / f_norm, alpha = N / #{R != 0} over the batch: (B, G) -> (B, G).

    As verl's ``compute_gpg_outcome_advantage`` (a group of one keeps R); alpha is a statistic of
    the batch passed in, so a micro-batch computes its own.
    """
    alpha = rewards.numel() / torch.count_nonzero(rewards).clamp(min=1)
    mean = rewards.mean(-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(rewards)
    return (alpha * (rewards - mean) / f_norm).detach()


@objective(
    "gpg",
    geometry=sampled_geometry(
        "none (no ratio, no clip)", "Log-prob", "Plain policy gradient with a rescaled group baseline"
    ),
    feedback="sampled",
    paper="Chu et al. 2025 (GPG, arXiv:2504.02546), Eq. 6-7; verl policy loss and advantage estimator 'gpg'",
)
def gpg(batch: GroupBatch, *, f_norm: float = 1.0, agg: str = "token-mean") -> tuple[Tensor, dict[str, Tensor]]:
    """GPG: -A log pi per token, aggregated by ``agg``, with :func:`gpg_advantages` (or the batch's own).

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantages.detach() if batch.advantages is not None else gpg_advantages(batch.rewards, f_norm)
    ratio = token_ratio(batch)
    metrics = policy_gradient_metrics(batch, ratio, torch.zeros_like(ratio, dtype=torch.bool), adv)
    return aggregate(-per_token(adv, ratio) * batch.logp, batch.mask, agg, totals=batch.totals), metrics


def loo_advantages(rewards: Tensor) -> Tensor:
    """RLOO's leave-one-out advantages R_i - (1/(G-1)) sum_{j != i} R_j = G/(G-1) (R_i - mean_g R): (B, G).

    Kool et al. 2019; TRL RLOOTrainer and verl ``compute_rloo_outcome_advantage``; 0 for G = 1.
    """
    g = rewards.shape[-1]
    if g < 2:
        return torch.zeros_like(rewards)
    return ((rewards - rewards.mean(-1, keepdim=True)) * g / (g - 1)).detach()


@objective(
    "rloo",
    geometry=sampled_geometry(
        "KL curvature (sequence ratio clip)",
        "Sequence ratio pi(y) / pi_old(y)",
        "PPO clip on whole sequences, leave-one-out baseline",
    ),
    feedback="sampled",
    paper="Ahmadian et al. 2024 (Back to Basics, arXiv:2402.14740), Eq. 5-6; TRL RLOOTrainer",
)
def rloo(batch: GroupBatch, *, clip_low: float = 0.2, clip_high: float = 0.2) -> tuple[Tensor, dict[str, Tensor]]:
    """RLOO as TRL's RLOOTrainer: (1/N) sum_i max(-A_i rho_i, -A_i clip(rho_i)), rho_i = exp(sum_t log r_it).

    A_i from :func:`loo_advantages` (or the batch's own). The ratio is the *summed* sequence
    ratio, not GSPO's mean. TRL's default beta = 0.05 KL shaping of the reward is left out (beta = 0:
    the experiments' rewards are used as given); its normalize_advantages (off by default) too.
    The sequence log-ratio is clamped at +-20 (TRL does not clamp).

    Shapes: batch (B, G, T); advantages and rho (B, G).
    """
    adv = batch.advantages.detach() if batch.advantages is not None else loo_advantages(batch.rewards)
    seq_log_ratio = ((batch.logp - batch.old) * batch.fmask).sum(-1)
    rho = seq_log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()
    loss, active = clipped_surrogate(rho, adv, clip_low, clip_high, None)
    metrics = {
        "clip_frac": active.to(rho.dtype).mean().detach(),
        "ratio_mean": rho.mean().detach(),
        "adv_range": (adv.max() - adv.min()).detach(),
    }
    return batch.candidate_mean(loss), metrics


def reinforce_pp_baseline_advantages(rewards: Tensor, mask: Tensor) -> Tensor:
    """REINFORCE++-baseline's advantages: (B, G) rewards centred per group, then whitened over the batch's tokens.

    c_i = R_i - mean_g R (R_i for a group of one); A = (c - m) / sqrt(v + 1e-8) with m and the
    unbiased v taken over every real token (each sequence weighted by its length), as verl's
    ``compute_reinforce_plus_plus_baseline_outcome_advantage``. mask: (B, G, T).
    """
    mean = rewards.mean(-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(rewards)
    centred = rewards - mean
    weight = mask.to(rewards.dtype).sum(-1)  # tokens per sequence
    n = weight.sum()
    m = (centred * weight).sum() / (n + 1e-8)
    var = ((centred - m).square() * weight).sum() / (n + 1e-8) * n / (n - 1).clamp(min=1.0)
    return ((centred - m) * torch.rsqrt(var + 1e-8)).detach()


@objective(
    "reinforce-pp",
    geometry=sampled_geometry(
        "KL curvature (ratio clip)", "Ratio pi / pi_old", "PPO clip with a group baseline and batch-whitened advantages"
    ),
    feedback="sampled",
    paper="Hu et al. 2025 (REINFORCE++, arXiv:2501.03262), baseline variant; verl advantage estimator "
    "'reinforce_plus_plus_baseline' with the vanilla policy loss",
)
def reinforce_pp(
    batch: GroupBatch, *, clip_low: float = 0.2, clip_high: float = 0.2, agg: str = "token-mean"
) -> tuple[Tensor, dict[str, Tensor]]:
    """REINFORCE++-baseline: PPO's clipped loss (Eq. 7 of Schulman et al.) with
    :func:`reinforce_pp_baseline_advantages` (or the batch's own). The paper's k3 KL term is a
    separate loss in verl (use_kl_loss) and is left out here. The whitening is over the batch
    passed in.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    if batch.advantages is not None:
        adv = batch.advantages.detach()
    else:
        adv = reinforce_pp_baseline_advantages(batch.rewards, batch.mask)
    ratio = token_ratio(batch)
    loss, active = clipped_surrogate(ratio, per_token(adv, ratio), clip_low, clip_high, None)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), policy_gradient_metrics(batch, ratio, active, adv)


@objective(
    "dro",
    geometry=Geometry(
        sampling="implicit KL",
        optimization="chi^2 curvature (constant beta I, per token)",
        coordinates="Log-ratio log pi / pi_old",
        target="Advantage-weighted samples",
        behavior="Advantage drive with a quadratic log-ratio penalty",
    ),
    feedback="sampled",
    paper="verl policy loss 'dro' (quadratic log-ratio penalty); Richemond et al. 2024 (DRO, "
    "arXiv:2405.19107) for the squared-regression family",
)
def dro(
    batch: GroupBatch, *, beta: float = 1.0, advantage: str = "zscore", agg: str = "token-mean"
) -> tuple[Tensor, dict[str, Tensor]]:
    """verl's DRO: -(A log pi - (beta / 2) (log pi - log pi_old)^2) per token, aggregated by ``agg``.

    beta = 1.0 is our choice (verl requires one and has no default; it equals OPO's mu = 1.0). On
    one-token batches with pi_ref = pi_old its gradient is OPO's with the advantage drive
    (``opo`` with drive="advantage", mu = beta): (beta Delta - A) grad log pi.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantage(advantage)
    log_ratio = batch.logp - batch.old
    loss = -(per_token(adv, log_ratio) * batch.logp - 0.5 * beta * log_ratio.square())
    metrics = {
        "approx_kl": masked_mean(-log_ratio, batch.fmask).detach(),
        "adv_range": (adv.max() - adv.min()).detach(),
    }
    return aggregate(loss, batch.mask, agg, totals=batch.totals), metrics


@objective(
    "kimi-kl",
    geometry=Geometry(
        sampling="KL (mirror descent to pi_old)",
        optimization="chi^2 curvature (squared regression on the sequence log-ratio)",
        coordinates="Sequence log-ratio log pi(y) / pi_old(y)",
        target="Advantage-weighted samples",
        behavior="Regressing tau log r onto the advantage",
    ),
    feedback="sampled",
    paper="Kimi Team 2025 (Kimi k1.5, arXiv:2501.12599), Sec. 2.3.2, Eq. 3 and its gradient; no public reference",
)
def kimi_kl(batch: GroupBatch, *, tau: float = 1.0, advantage: str = "mean") -> tuple[Tensor, dict[str, Tensor]]:
    """Kimi k1.5's squared loss (1/N) sum_i (A_i - tau log r_i)^2 / (2 tau), log r_i = sum_t log(pi / pi_old).

    A = R - mean_g R (the paper's r - r-bar, approximating tau log Z by the group mean). The
    1/(2 tau) scale makes the gradient exactly the paper's update, -(A_i - tau log r_i) grad log pi(y_i).
    tau = 1.0 is our choice; the paper does not state it.

    Shapes: batch (B, G, T); advantages and log r (B, G).
    """
    adv = batch.advantage(advantage)
    seq_log_ratio = ((batch.logp - batch.old) * batch.fmask).sum(-1)
    loss = batch.candidate_mean((adv - tau * seq_log_ratio).square() / (2.0 * tau))
    metrics = {"delta_mean": seq_log_ratio.mean().detach(), "adv_range": (adv.max() - adv.min()).detach()}
    return loss, metrics


def vespo_weights(
    adv: Tensor, seq_log_ratio: Tensor, k_pos: float, lambda_pos: float, k_neg: float, lambda_neg: float
) -> Tensor:
    """VESPO's gamma weight phi(w) = exp(lambda + k log w - lambda w), phi(1) = 1: (B, G), detached.

    w = exp(clamp(sum_t log r, log 1e-8, 20)); (k, lambda) = (k_pos, lambda_pos) where A >= 0,
    else the negative pair (lambda floored at 1e-4), as TRL's ``get_gamma_weights``.
    """
    log_w = seq_log_ratio.clamp(math.log(1e-8), 20.0)
    nonneg = adv >= 0
    k = torch.where(nonneg, k_pos, k_neg).to(log_w.dtype)
    lam = torch.where(nonneg, lambda_pos, lambda_neg).to(log_w.dtype).clamp(min=1e-4)
    return (lam + k * log_w - lam * log_w.exp()).exp().nan_to_num(0.0, 0.0, 0.0).detach()


@objective(
    "vespo",
    geometry=sampled_geometry(
        "soft trust region (gamma-shaped sequence weight)",
        "Log-prob, weighted by phi(sequence ratio)",
        "REINFORCE with a variational sequence-level weight",
    ),
    feedback="sampled",
    paper="VESPO (arXiv:2602.10693) as TRL loss_type='vespo' (get_gamma_weights, token-mean)",
)
def vespo(
    batch: GroupBatch,
    *,
    k_pos: float = 2.0,
    lambda_pos: float = 3.0,
    k_neg: float = 3.0,
    lambda_neg: float = 2.0,
    advantage: str = "zscore",
) -> tuple[Tensor, dict[str, Tensor]]:
    """VESPO: -phi(w_i) A_i log pi per token, summed over the batch's tokens / their count (TRL's 'dapo' normaliser).

    w_i = exp(sum_t log r_it): the *summed* sequence ratio (each token log-ratio clamped at
    +-20), not GSPO's length-normalised one; phi from :func:`vespo_weights`, defaults TRL's.

    Shapes: batch (B, G, T); advantages, w and phi (B, G).
    """
    adv = batch.advantage(advantage)
    mask = batch.fmask
    log_ratio = (batch.logp - batch.old).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    phi = vespo_weights(adv, (log_ratio * mask).sum(-1), k_pos, lambda_pos, k_neg, lambda_neg)
    loss = -(phi * adv).unsqueeze(-1) * batch.logp
    metrics = {"phi_mean": phi.mean().detach(), "adv_range": (adv.max() - adv.min()).detach()}
    return aggregate(loss, batch.mask, "token-mean", totals=batch.totals), metrics
