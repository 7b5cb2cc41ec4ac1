"""OPO: escort-weighted drive with a quadratic chi^2 penalty in ratio coordinates.

OPO Eq. (7), (10), (19) and Algorithm 1. Per sequence y, with Delta = log pi(y) -
log pi_ref(y) and a centred drive w, the loss is -w Delta + (mu / 2) Delta^2, whose
minimiser is Delta* = w / mu = (omega_alpha - 1) / mu, Theorem 4.3's linear response.

Four forms, one registered function (:func:`opo`), selected by ``drive`` and ``escort_ref``:

- Eq. 7 as printed (``drive="escort"``, the default): :func:`escort_weights` with the
  sg(pi_ref^-(1 - alpha)) factor, centred per group.
- App. A.3 Step 2 (``escort_ref=False``): the same without the pi_ref factor.
- the authors' code (``drive="code"``, registered with their configuration as ``opo-code``):
  :func:`authors_code_loss`, the loss of their public verl fork, which is not Eq. 7.
- v5 (``drive="v5"``, registered as ``opo-v5``): :func:`v5_drive`, Algorithm 1 of arXiv
  2601.12415v5, the unnormalised escort centred over the mini-batch.

The escort and v5 drives are computed by :func:`opo_drive` from detached quantities that stay
fixed during an update (rewards and pi_ref's sequence log-probs). Their normalisation is a
statistic of the whole mini-batch (Sec. 4.1), so the trainer computes the drive once per
mini-batch (:func:`opo_prepare`, the objective's registered ``prepare``) and passes it to every
micro-batch in ``GroupBatch.drive``: the loss does not depend on the micro-batch split.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from geobench.objectives.batch import GroupBatch
from geobench.objectives.opo_authors import AUTHORS_CODE, authors_code_loss
from geobench.objectives.policy_gradient import LOG_RATIO_CLAMP  # exp of a log-ratio beyond it is meaningless
from geobench.objectives.registry import Geometry, Recipe, objective, variant


def escort_weights(
    adv: Tensor, ref_seq_logp: Tensor, alpha: float, norm: str, use_ref: bool, temperature: float = 1.0
) -> Tensor:
    """Escort weights omega_alpha, normalised on the sample (OPO Eq. 7 and Sec. 4.1).

    log omega = (1 - alpha) A / T - (1 - alpha) sg(log pi_ref(y)), i.e. the oracle target
    P* ~ exp(A / T) of Sec. 4.1 (T = 1 is Eq. 7 as printed). The unknown normaliser Z_alpha
    is estimated on the sample. Sec. 4.1 says two things at once: "batch-wise zero-centering
    and z-scoring of omega_alpha over each mini-batch" and "ensures that the estimated
    weights satisfy the mean constraint E[omega_alpha] = 1" (Eq. 6); a z-scored omega has
    mean 0, not 1. Both are offered:

    - ``norm="batch"`` (default): omega = N softmax(log omega) over the N sequences of the
      mini-batch, so the sample mean is exactly 1 (Eq. 6). The default because it is the one
      reading that estimates Z_alpha, as the paragraph says the step is for, and keeps
      omega's scale, through which (1 - alpha) "controls the effective advantage
      amplification" (Sec. 9.1); Remark 6.2's centring follows in :func:`opo_drive`.
    - ``norm="zscore"``: the same omega, then zero-centred and divided by its std over the
      mini-batch (the sentence's literal "zero-centering and z-scoring"); scale-free.
    - ``norm="group"``: mean 1 within each group of G instead of the mini-batch.

    Working in log space keeps the pi_ref^-(1 - alpha) factor finite for long sequences.
    ``use_ref=False`` drops that factor, the form of App. A.3 Step 2 where it is "absorbed by
    the sampling measure".

    Args:
        adv: (B, G) advantages A.
        ref_seq_logp: (B, G) log pi_ref(y) of whole sequences.

    Returns:
        (B, G) weights, detached.
    """
    log_w = (1.0 - alpha) * adv / temperature
    if use_ref:
        log_w = log_w - (1.0 - alpha) * ref_seq_logp
    if norm == "group":
        return (adv.shape[-1] * torch.softmax(log_w, dim=-1)).detach()
    w = (log_w.numel() * torch.softmax(log_w.flatten(), dim=0)).view_as(log_w)
    if norm == "zscore":
        w = (w - w.mean()) / (w.std() + 1e-6) if w.numel() > 1 else w - w.mean()
    return w.detach()


def v5_drive(
    adv: Tensor, ref_seq_logp: Tensor, alpha: float, use_ref: bool, temperature: float, center: bool
) -> Tensor:
    """OPO v5's drive g = w~ - w_bar (arXiv 2601.12415v5, Algorithm 1): (B, G) -> (B, G), detached.

    w~ = exp((1 - alpha) A / T) sg(pi_ref(y)^-(1 - alpha)) is the escort of Eq. 7 left
    unnormalised; w_bar is its mean over the N = B G sequences of the mini-batch (no longer
    constrained to 1), and the centring is over the mini-batch, not per group. v5 pairs it with
    group-centred advantages A = R - mean_group R (no std), ``advantage="mean"``; the loss is
    -g Delta + (mu / 2) Delta^2, so v* = (w~ - w_bar) / mu.

    v5 argues that an overall scale factor of w~ cancels after centring. It does not: centring
    removes an additive constant, while a factor passes through, g(c w~) = c g(w~). Writing
    omega = w~ / w_bar for v4's batch-normalised escort (mean 1, ``escort_norm="batch"``),
    g = w_bar (omega - 1): v5's drive is v4's, centred over the mini-batch, times the batch
    mean w_bar = mean exp((1 - alpha)(A / T - log pi_ref(y))). For whole sequences
    -log pi_ref(y) grows with the length, so w_bar is huge (about e^30 = 1e13 at alpha 0.4 for
    50 tokens of one nat each) and the drive swamps the (mu / 2) Delta^2 term by that factor.

    Computed in float64 and returned in ``adv``'s dtype: where w~ exceeds that dtype's range
    the drive is inf, which is the form's value, not a rounding artefact. ``center=False``
    returns w~ itself.
    """
    log_w = (1.0 - alpha) * adv.double() / temperature
    if use_ref:
        log_w = log_w - (1.0 - alpha) * ref_seq_logp.double()
    w = log_w.exp()
    return (w - w.mean() if center else w).to(adv.dtype).detach()


def opo_drive(
    batch: GroupBatch,
    *,
    alpha: float,
    advantage: str,
    drive: str,
    escort_norm: str,
    escort_ref: bool,
    temperature: float,
    center: bool,
    reward_temperature: float,
) -> Tensor:
    """The centred drive w of OPO's loss, (B, G), detached (see :func:`opo` for the options).

    ``center`` subtracts each group's mean (Remark 6.2: the projection onto E_pi_k[v] = 0,
    taken per context since the conservation law is per context); v5 centres over the whole
    batch instead (:func:`v5_drive`).
    """
    if batch.drive is not None:
        return batch.drive.detach()
    adv = batch.advantage(advantage)
    if drive == "v5":
        return v5_drive(adv, batch.seq_logp("ref"), alpha, escort_ref, temperature, center)
    if drive == "escort":
        w = escort_weights(adv, batch.seq_logp("ref"), alpha, escort_norm, escort_ref, temperature)
    elif drive == "advantage":
        w = adv.detach()
    else:  # "code" reads the current policy: authors_code_loss computes its drive inside the loss
        raise ValueError(f"opo_drive has no precomputable drive for drive={drive!r}")
    return w - w.mean(-1, keepdim=True) if center else w


# The hyperparameters :func:`opo_drive` reads; the code form's own stay with :func:`authors_code_loss`.
_DRIVE_HPARAMS = ("alpha", "advantage", "escort_norm", "escort_ref", "temperature", "center", "reward_temperature")


def opo_prepare(batch: GroupBatch, *, drive: str, **hparams: object) -> GroupBatch:
    """``batch`` (a whole mini-batch) with ``drive`` filled in, for the trainer to slice into micro-batches.

    The code form reads the current policy's anchored logits, which change during the
    update, so it stays in the loss and is not precomputed.
    """
    if drive == "code":
        return batch
    keys = {k: hparams[k] for k in _DRIVE_HPARAMS}
    return dataclasses.replace(batch, drive=opo_drive(batch, drive=drive, **keys))


_GEOMETRY = Geometry(
    sampling="alpha-escort (tunable)",
    optimization="chi^2 curvature (constant mu I)",
    coordinates="Ratio v = pi / pi_ref - 1 (log-ratio surrogate)",
    target="Escort field rho_alpha",
    behavior="Linear response to the escort drive",
)


@objective(
    "opo-v5",
    geometry=dataclasses.replace(_GEOMETRY, target="Unnormalised escort w~, centred over the mini-batch"),
    feedback="sampled",
    paper="OPO v5 (arXiv 2601.12415v5) Algorithm 1: group-centred A, unnormalised escort centred over the mini-batch",
    prepare=opo_prepare,
    drive="v5",
    advantage="mean",
)
@objective(
    "opo-code",
    geometry=Geometry(
        sampling="q^alpha p^(1-alpha): reward softmax x anchored softmax, per group",
        optimization="chi^2 curvature (constant mu I), clipped",
        coordinates="Per-token log-ratio (clipped), anchored scores Delta / tau",
        target="Group mixture of softmax(A / beta) and softmax(Delta / tau)",
        behavior="Linear response to the mixture drive",
    ),
    feedback="sampled",
    paper="OPO authors' verl fork (github.com/wk222/verlm, verl/trainer/adpo/core_algos.py, loss_variant opo)",
    prepare=opo_prepare,
    **AUTHORS_CODE,
)
@objective(
    "opo",
    geometry=_GEOMETRY,
    feedback="sampled",
    paper="OPO Eq. 7, 19, Remark 6.2, Algorithm 1",
    prepare=opo_prepare,
    recipe=Recipe(adaptive_temperature="temperature"),  # Sec. 9.1's "adaptive tau" on the escort T
)
def opo(
    batch: GroupBatch,
    *,
    alpha: float = 0.4,
    mu: float = 1.0,
    # Alg. 1 line 4 z-scores the rewards per group; Sec. 9.2 says "OPO uses raw advantages
    # with sigma ~ 0.2". We follow the algorithm box; advantage="mean" or "none" gives Sec. 9.2.
    advantage: str = "zscore",
    drive: str = "escort",
    escort_norm: str = "batch",
    escort_ref: bool = True,
    temperature: float = 1.0,
    center: bool = True,
    ratio: str = "log",
    seq_logratio: str = "sum",
    # The code form's own, at the authors' values (wk222/verlm opo_qwen3_math.yaml): see authors_code_loss.
    reward_temperature: float = 0.15,
    direction_scale: float | None = None,
    tau: float = 0.5,
    tau_adaptive: bool = True,
    tau_entropy: float = 0.2,
    tau_reward: float = 0.5,
    tau_min: float = 0.2,
    tau_max: float = 1.5,
    vocab_size: int = 151936,
    clip_log_ratio: float = 5.0,
    clip_score: float = 10.0,
    logit_reg: float = 0.01,
) -> tuple[Tensor, dict[str, Tensor]]:
    """OPO loss (1/N) sum_y [-w(y) x(y) + (mu/2) x(y)^2] over the N sequences (Alg. 1 line 7).

    - ``x``: the log-ratio Delta (Eq. 19, ``ratio="log"``) or the exact ratio deviation
      v = e^Delta - 1 (Eq. 10, ``ratio="exact"``). Delta sums the token log-ratios
      (``seq_logratio="sum"``, y is the whole response) or averages them (``"mean"``,
      GSPO-style length normalisation).
    - ``w``: ``batch.drive`` when the trainer precomputed it over the whole mini-batch,
      else :func:`opo_drive` on this batch: the escort weight of Eq. (7) normalised as
      ``escort_norm`` says (``drive="escort"``; without the pi_ref factor, App. A.3 Step 2,
      when ``escort_ref=False``), the advantage itself (``drive="advantage"``, the
      alpha -> 1 reading of Remark 6.2), or v5's unnormalised escort centred over the
      mini-batch (``drive="v5"``, :func:`v5_drive`); centred per group when ``center``.
    - ``drive="code"``: the authors' loss instead, :func:`authors_code_loss`, which reads
      ``alpha``, ``mu``, ``advantage``, ``seq_logratio`` and the hyperparameters from
      ``reward_temperature`` on (``tau`` is the temperature of its p's logits; the trainer may
      pass it, adapted, with ``tau_adaptive=False``), and ignores the escort's.
    - ``mu``: the constant curvature; ``alpha``: the escort's sampling geometry;
      ``temperature`` T: the oracle P* ~ exp(A / T). The paper runs OPO with an "adaptive
      tau with range [0.2, 1.5]" (Sec. 9.1) it does not define; the trainer reads it as
      ADPO's guarded rule (Eq. 12) applied to this T and passes it in here.

    Shapes: batch (B, G, T); rewards (B, G); w and Delta (B, G).
    """
    if drive == "code":
        return authors_code_loss(
            batch,
            alpha=alpha,
            mu=mu,
            advantage=advantage,
            seq_logratio=seq_logratio,
            reward_temperature=reward_temperature,
            direction_scale=direction_scale,
            tau=tau,
            tau_adaptive=tau_adaptive,
            tau_entropy=tau_entropy,
            tau_reward=tau_reward,
            tau_min=tau_min,
            tau_max=tau_max,
            vocab_size=vocab_size,
            clip_log_ratio=clip_log_ratio,
            clip_score=clip_score,
            logit_reg=logit_reg,
        )
    adv = batch.advantage(advantage)
    mask = batch.fmask
    token_delta = (batch.logp - batch.ref) * mask
    delta = token_delta.sum(-1)
    if seq_logratio == "mean":
        delta = delta / mask.sum(-1).clamp(min=1.0)
    w = opo_drive(
        batch,
        alpha=alpha,
        advantage=advantage,
        drive=drive,
        escort_norm=escort_norm,
        escort_ref=escort_ref,
        temperature=temperature,
        center=center,
        reward_temperature=reward_temperature,
    )
    x = delta if ratio == "log" else torch.expm1(delta.clamp(max=LOG_RATIO_CLAMP))
    loss = batch.candidate_mean(-w * x + 0.5 * mu * x.square())
    metrics = {
        "w_range": (w.max() - w.min()).detach(),
        "w_abs_mean": w.abs().mean().detach(),
        "delta_mean": delta.mean().detach(),
        "delta_abs_max": delta.abs().max().detach(),
        "adv_range": (adv.max() - adv.min()).detach(),
        "tau": torch.as_tensor(temperature, dtype=delta.dtype).mean().detach(),
    }
    return loss, metrics


# App. A.3's form, run beside Eq. 7 in the LLM ablation results/llm-opo-escort-no-ref/.
variant(
    "opo-escort-no-ref",
    "opo",
    paper="OPO App. A.3 Step 2: Eq. 7 without its pi_ref factor, 'absorbed by the sampling measure'",
    geometry=dataclasses.replace(_GEOMETRY, target="Escort field exp((1 - alpha) A), no pi_ref factor"),
    escort_ref=False,
)
