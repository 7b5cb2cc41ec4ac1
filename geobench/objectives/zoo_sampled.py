"""The field's ratio-based sampled-feedback objectives beside GRPO/DAPO/GSPO (issue 22), each checked
against its reference in ``tests/test_zoo_parity_sampled.py``; the log-prob (REINFORCE-family) ones and
their baselines are in :mod:`geobench.objectives.zoo_reinforce`, the covariance-selected ones in
:mod:`geobench.objectives.zoo_covariance`.

Every function reads a :class:`GroupBatch` whose ``old_logp`` is the sampling policy; advantages
are ``batch.advantage(mode)`` (the precomputed ones when given) unless the objective defines its own
estimator. Shapes: B contexts, G samples, T tokens; r = pi / pi_old per token.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geobench.objectives.aggregation import aggregate
from geobench.objectives.batch import GroupBatch
from geobench.objectives.policy_gradient import LOG_RATIO_CLAMP, clipped_surrogate, policy_gradient_metrics
from geobench.objectives.registry import BOUNDS, POSITIVE, Geometry, Range, objective, variant

# The ranges of the hyperparameters this module introduces (the registry checks them by name).
_NEW_BOUNDS = {
    "horizon": Range(1.0),
    "weight_cap": POSITIVE,
    "tau_pos": POSITIVE,
    "tau_neg": POSITIVE,
    "div_low": POSITIVE,
    "div_high": POSITIVE,
}
assert not set(_NEW_BOUNDS) & set(BOUNDS), "a zoo hyperparameter would change an existing objective's range"
BOUNDS.update(_NEW_BOUNDS)


def sampled_geometry(optimization: str, coordinates: str, behavior: str, sampling: str = "implicit KL") -> Geometry:
    """A sampled objective's taxonomy row: its target is always the advantage-weighted samples."""
    return Geometry(sampling, optimization, coordinates, "Advantage-weighted samples", behavior)


def token_ratio(batch: GroupBatch) -> Tensor:
    """(B, G, T) token ratios r = exp(clamp(log pi - log pi_old, +-20)), verl's clamp."""
    return (batch.logp - batch.old).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()


def per_token(adv: Tensor, like: Tensor) -> Tensor:
    """(B, G) advantages broadcast to ``like``'s (B, G, T)."""
    return adv.unsqueeze(-1).expand_as(like)


@objective(
    "dr-grpo",
    geometry=sampled_geometry("KL curvature (ratio clip)", "Ratio pi / pi_old", "GRPO without length or std bias"),
    feedback="sampled",
    paper="Liu et al. 2025 (Dr. GRPO, arXiv:2503.20783), Sec. 3.2; TRL loss_type='dr_grpo'; verl "
    "agg 'seq-mean-token-sum-norm' with loss_scale_factor",
)
def dr_grpo(
    batch: GroupBatch,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    advantage: str = "mean",
    horizon: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Dr. GRPO: (1 / (N L)) sum_i sum_t max(-A_i r_it, -A_i clip(r_it)), A_i = R_i - mean_g R.

    L is a constant horizon, the run's maximum completion length (TRL ``max_completion_length``,
    verl ``loss_scale_factor``), passed as the hyperparameter ``horizon`` (``--set
    dr-grpo.horizon=1280``, or the config's hyperparameter table); None uses the padded width T, which is that
    length only when the rollout pads to it (T = 1 on the one-token experiments, where Dr. GRPO is
    PPO with mean-baseline advantages). N counts the sequences with a token (verl's divisor).

    Shapes: batch (B, G, T); advantages (B, G).
    """
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    loss, active = clipped_surrogate(ratio, per_token(adv, ratio), clip_low, clip_high, None)
    total = aggregate(loss, batch.mask, "seq-mean-token-sum-norm", horizon=horizon, totals=batch.totals)
    return total, policy_gradient_metrics(batch, ratio, active, adv)


variant(
    "bnpo",
    "grpo",
    paper="TRL loss_type='bnpo' (GRPO's clipped surrogate, token-mean over the local batch); not the BNPO "
    "paper's Beta-normalised rewards (Xiao et al. 2025), which TRL does not implement",
    agg="token-mean",
)


variant(
    "luspo",
    "gspo",
    paper="LUSPO (Length-Unbiased Sequence Policy Optimization) as TRL loss_type='luspo': GSPO's sequence-ratio "
    "loss times each sequence's length, mean over sequences (Zheng et al. 2025, GSPO Eq. 5-7)",
    agg="seq-mean-token-sum",
)


@objective(
    "gmpo",
    geometry=sampled_geometry(
        "KL curvature (log-ratio clip)", "Geometric-mean sequence ratio", "Geometric mean of clipped token ratios"
    ),
    feedback="sampled",
    paper="Zhao et al. 2025 (GMPO, arXiv:2507.20673), Eq. 4; verl policy loss 'geo_mean'",
)
def gmpo(
    batch: GroupBatch, *, clip_low: float = 0.4, clip_high: float = 0.4, advantage: str = "zscore"
) -> tuple[Tensor, dict[str, Tensor]]:
    """GMPO: (1/N) sum_i -A_i exp((1/|y_i|) sum_t sgn(A_i) min(sgn(A_i) l_it, sgn(A_i) clip(l_it))).

    l = log r and the clip is in log space, clip(l, -clip_low, clip_high): the ratio is held in
    [e^-0.4, e^0.4] (the paper's (eps1, eps2) = (0.4, 0.4), Sec. 4; verl takes the same numbers
    from clip_ratio_low/high). One aggregation, the mean over all N = B G sequences (verl ignores
    loss_agg_mode). No +-20 clamp, as in verl.

    Shapes: batch (B, G, T); advantages and the sequence ratio (B, G).
    """
    adv = batch.advantage(advantage)
    mask = batch.fmask
    log_ratio = batch.logp - batch.old
    sign = torch.sign(per_token(adv, log_ratio))
    clipped = log_ratio.clamp(-clip_low, clip_high)
    pessimistic = sign * torch.minimum(sign * log_ratio, sign * clipped)  # (B, G, T)
    seq_ratio = ((pessimistic * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).exp()  # (B, G)
    active = log_ratio != clipped
    metrics = policy_gradient_metrics(batch, log_ratio.exp(), active, adv)
    return batch.candidate_mean(-adv * seq_ratio), metrics


@objective(
    "cispo-verl",
    geometry=sampled_geometry(
        "none on the gradient (two-sided IS-weight clip)",
        "Log-prob, weighted by a clipped ratio pi / pi_old",
        "REINFORCE with a two-sided clipped importance weight",
    ),
    feedback="sampled",
    paper="Chen et al. 2025 (MiniMax-M1, arXiv:2506.13585), Eq. 4-5, read as verl's policy loss 'cispo' "
    "(clip(r, 1 - eps_low, 1 + eps_high))",
)
def cispo_verl(
    batch: GroupBatch,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """verl's CISPO: -sg(clip(r, 1 - clip_low, 1 + clip_high)) A log pi per token, aggregated by ``agg``.

    verl clips both sides, where the report sets no lower bound ("we did not impose a lower bound
    on the IS weight", Sec. 3.1; the plugin ``cispo`` in examples/ is that reading). 0.2 / 0.28 are
    our choice (verl's and DAPO's clip values); the report tunes eps_high without stating it.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    weight = ratio.clamp(1.0 - clip_low, 1.0 + clip_high).detach()
    loss = -weight * per_token(adv, ratio) * batch.logp
    active = (ratio < 1.0 - clip_low) | (ratio > 1.0 + clip_high)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), policy_gradient_metrics(batch, ratio, active, adv)


@objective(
    "cispo-trl",
    geometry=sampled_geometry(
        "none on the gradient (absolute IS-weight cap)",
        "Log-prob, weighted by a capped ratio pi / pi_old",
        "REINFORCE with an importance weight capped at eps_max",
    ),
    feedback="sampled",
    paper="ScaleRL (Khatri et al. 2025, arXiv:2510.13786) CISPO form as TRL loss_type='cispo': "
    "min(r, eps_max), token-mean",
)
def cispo_trl(
    batch: GroupBatch, *, weight_cap: float = 5.0, advantage: str = "zscore"
) -> tuple[Tensor, dict[str, Tensor]]:
    """TRL's CISPO: -sg(min(r, weight_cap)) A log pi per token, summed over the batch's tokens / their count.

    ``weight_cap`` is an absolute bound on r (TRL's ``epsilon_high`` under loss_type='cispo',
    "the recommended value is 5.0"), not 1 + eps. TRL does not clamp log r before exp; the +-20
    clamp here changes nothing below r = e^20.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    loss = -ratio.clamp(max=weight_cap).detach() * per_token(adv, ratio) * batch.logp
    metrics = policy_gradient_metrics(batch, ratio, ratio > weight_cap, adv)
    return aggregate(loss, batch.mask, "token-mean", totals=batch.totals), metrics


@objective(
    "sapo",
    geometry=sampled_geometry(
        "soft trust region (sigmoid gate)", "Ratio pi / pi_old", "Soft-gated ratio: updates fade, never cut"
    ),
    feedback="sampled",
    paper="Gao et al. 2025 (SAPO, arXiv:2511.20347), Eq. 6-8; verl policy loss 'sapo'; TRL loss_type='sapo'",
)
def sapo(
    batch: GroupBatch, *, tau_pos: float = 1.0, tau_neg: float = 1.05, advantage: str = "zscore"
) -> tuple[Tensor, dict[str, Tensor]]:
    """SAPO: -f(r) A per token with the gate f(r) = (4 / tau) sigmoid(tau (r - 1)), seq-mean-token-mean.

    tau = tau_pos where A > 0, else tau_neg (TRL's and verl's 1.0 / 1.05). f'(1) = 1, so at
    r = 1 the gradient is GRPO's. Both references fix the seq-mean-token-mean aggregation.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    token_adv = per_token(adv, ratio)
    tau = torch.where(token_adv > 0, tau_pos, tau_neg).to(ratio.dtype)
    gate = torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)
    metrics = policy_gradient_metrics(batch, ratio, torch.zeros_like(ratio, dtype=torch.bool), adv)
    return aggregate(-gate * token_adv, batch.mask, "seq-mean-token-mean", totals=batch.totals), metrics


def _dppo(batch: GroupBatch, valid: Tensor, weight_cap: float, advantage: str, agg: str) -> tuple[Tensor, dict]:
    """-A sg(min(r, weight_cap)) log pi on the tokens ``valid`` (B, G, T) keeps, aggregated by ``agg``.

    The truncated IS weight replaces PPO's ratio (DPPO Sec. 5.4: "a large threshold is
    recommended"); 20 is verl's fallback. verl reads the cap from ``clip_ratio_c``, whose ActorConfig
    default is 3.0 (the dual-clip default), so a verl run that does not set it truncates at 3.
    """
    adv = batch.advantage(advantage)
    ratio = token_ratio(batch)
    loss = -per_token(adv, ratio) * ratio.clamp(max=weight_cap).detach() * batch.logp * valid.detach()
    metrics = policy_gradient_metrics(batch, ratio, ~valid, adv)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), metrics


@objective(
    "dppo-tv",
    geometry=sampled_geometry(
        "TV trust region (binary, per token)", "Probability pi(y_t)", "Dropping tokens whose probability moved too far"
    ),
    feedback="sampled",
    paper="DPPO (arXiv:2602.04879), DPPO-Binary-TV; verl policy loss 'dppo_tv'",
)
def dppo_tv(
    batch: GroupBatch,
    *,
    div_low: float = 0.2,
    div_high: float = 0.2,
    weight_cap: float = 20.0,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """DPPO-Binary-TV: a token counts where A > 0 and p - p_old <= div_high, or A <= 0 and
    p - p_old >= -div_low (p = pi(y_t), the binary TV distance between the two Bernoullis); the weight is
    :func:`_dppo`'s. The bounds 0.2 are our choice (verl's clip_ratio default read as the bound).

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    delta = batch.logp.exp() - batch.old.exp()
    positive = per_token(batch.advantage(advantage), delta) > 0
    valid = torch.where(positive, delta <= div_high, delta >= -div_low)
    return _dppo(batch, valid, weight_cap, advantage, agg)


@objective(
    "dppo-kl",
    geometry=sampled_geometry(
        "KL trust region (binary, per token)", "Probability pi(y_t)", "Dropping tokens past a binary-KL bound"
    ),
    feedback="sampled",
    paper="DPPO (arXiv:2602.04879), DPPO-Binary-KL; verl policy loss 'dppo_kl'",
)
def dppo_kl(
    batch: GroupBatch,
    *,
    div_low: float = 0.2,
    div_high: float = 0.2,
    weight_cap: float = 20.0,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """DPPO-Binary-KL: with the Bernoulli KL d = p_old log(p_old / p) + (1 - p_old) log((1 - p_old + 1e-8) /
    (1 - p + 1e-8)), a token counts where A > 0 and (d <= div_high or p <= p_old), or A <= 0 and
    (d <= div_low or p >= p_old): only moves away from pi_old past the bound are dropped; the weight is
    :func:`_dppo`'s. The bounds 0.2 are our choice, as for ``dppo-tv``.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T.
    """
    p, p_old = batch.logp.exp(), batch.old.exp()
    d = p_old * (batch.old - batch.logp) + (1.0 - p_old) * torch.log((1.0 - p_old + 1e-8) / (1.0 - p + 1e-8))
    positive = per_token(batch.advantage(advantage), d) > 0
    valid = torch.where(positive, (d <= div_high) | (p <= p_old), (d <= div_low) | (p >= p_old))
    return _dppo(batch, valid, weight_cap, advantage, agg)
