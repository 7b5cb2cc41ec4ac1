"""OPO: escort-weighted drive with a quadratic chi^2 penalty in ratio coordinates.

OPO Eq. (7), (10), (19) and Algorithm 1. Per sequence y, with Delta = log pi(y) -
log pi_ref(y) and a centred drive w, the loss is -w Delta + (mu / 2) Delta^2, whose
minimiser is Delta* = w / mu = (omega_alpha - 1) / mu, Theorem 4.3's linear response.

The drive is computed by :func:`opo_drive` from detached quantities that stay fixed during an
update (rewards and pi_ref's sequence log-probs). The escort normalisation is a statistic of
the whole mini-batch (Sec. 4.1), so the trainer computes the drive once per mini-batch
(:func:`opo_prepare`, the objective's registered ``prepare``) and passes it to every
micro-batch in ``GroupBatch.drive``: the loss does not depend on the micro-batch split.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from geobench.objectives.batch import GroupBatch
from geobench.objectives.registry import Geometry, objective, variant

# Same guard as the policy-gradient ratios: exp of a log-ratio beyond this is meaningless.
_LOG_RATIO_CLAMP = 20.0


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


def code_weights(adv: Tensor, anchored: Tensor, alpha: float, reward_temperature: float) -> Tensor:
    """The drive of the OPO authors' public verl fork: w = q^alpha p^(1 - alpha), mean 1 per group.

    q = softmax(A / reward_temperature) and p = softmax(log pi - log pi_ref) (the "anchored
    logits"), both over the G candidates of a group; the geometric mixture is renormalised
    over the group (G w / sum_g w). It differs from the paper's Eq. (7): alpha weights the
    reward side here, and p is the policy's current anchored distribution, not
    pi_ref^-(1 - alpha). SETTINGS.md records this form; it is per group, so it needs no
    mini-batch statistic. The authors' q uses the raw rewards: ``advantage="none"`` (or
    "mean": the softmax is shift-invariant) gives that; their reward temperature is 0.15.

    Shapes: adv, anchored (B, G) -> (B, G), detached.
    """
    log_w = alpha * torch.log_softmax(adv / reward_temperature, -1) + (1.0 - alpha) * torch.log_softmax(anchored, -1)
    return (adv.shape[-1] * torch.softmax(log_w, dim=-1)).detach()


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
    **_: object,
) -> Tensor:
    """The centred drive w of OPO's loss, (B, G), detached (see :func:`opo` for the options).

    ``center`` subtracts each group's mean (Remark 6.2: the projection onto E_pi_k[v] = 0,
    taken per context since the conservation law is per context).
    """
    if batch.drive is not None:
        return batch.drive.detach()
    adv = batch.advantage(advantage)
    if drive == "escort":
        w = escort_weights(adv, batch.seq_logp("ref"), alpha, escort_norm, escort_ref, temperature)
    elif drive == "code":
        anchored = batch.seq_logp("policy").detach() - batch.seq_logp("ref")
        w = code_weights(adv, anchored, alpha, reward_temperature)
    else:
        w = adv.detach()
    return w - w.mean(-1, keepdim=True) if center else w


def opo_prepare(batch: GroupBatch, *, drive: str, **hparams: object) -> GroupBatch:
    """``batch`` (a whole mini-batch) with ``drive`` filled in, for the trainer to slice into micro-batches.

    The code form reads the current policy's anchored logits, which change during the
    update; it is per group, so it stays in the loss and is not precomputed.
    """
    if drive == "code":
        return batch
    return dataclasses.replace(batch, drive=opo_drive(batch, drive=drive, **hparams))


_OPO_GEOMETRY = Geometry(
    sampling="alpha-escort (tunable)",
    optimization="chi^2 curvature (constant mu I)",
    coordinates="Ratio v = pi / pi_ref - 1 (log-ratio surrogate)",
    target="Escort field rho_alpha",
    behavior="Linear response to the escort drive",
)


@objective(
    "opo",
    geometry=_OPO_GEOMETRY,
    feedback="sampled",
    paper="OPO Eq. 7, 19, Remark 6.2, Algorithm 1",
    prepare=opo_prepare,
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
    reward_temperature: float = 0.15,
) -> tuple[Tensor, dict[str, Tensor]]:
    """OPO loss (1/N) sum_y [-w(y) x(y) + (mu/2) x(y)^2] over the N sequences (Alg. 1 line 7).

    - ``x``: the log-ratio Delta (Eq. 19, ``ratio="log"``) or the exact ratio deviation
      v = e^Delta - 1 (Eq. 10, ``ratio="exact"``). Delta sums the token log-ratios
      (``seq_logratio="sum"``, y is the whole response) or averages them (``"mean"``,
      GSPO-style length normalisation).
    - ``w``: ``batch.drive`` when the trainer precomputed it over the whole mini-batch,
      else :func:`opo_drive` on this batch: the escort weight of Eq. (7) normalised as
      ``escort_norm`` says (``drive="escort"``), the advantage itself (``drive="advantage"``,
      the alpha -> 1 reading of Remark 6.2), or the authors' code form q^alpha p^(1 - alpha)
      (``drive="code"``, :func:`code_weights`, with ``reward_temperature``); centred per
      group when ``center``.
    - ``mu``: the constant curvature; ``alpha``: the escort's sampling geometry;
      ``temperature`` T: the oracle P* ~ exp(A / T). The paper runs OPO with an "adaptive
      tau with range [0.2, 1.5]" (Sec. 9.1) it does not define; the trainer reads it as
      ADPO's guarded rule (Eq. 12) applied to this T and passes it in here.

    Shapes: batch (B, G, T); rewards (B, G); w and Delta (B, G).
    """
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
    x = delta if ratio == "log" else torch.expm1(delta.clamp(max=_LOG_RATIO_CLAMP))
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


# OPO's two other forms, each run beside Eq. 7 in the LLM ablations (results/llm-opo-*/).
variant(
    "opo-escort-no-ref",
    "opo",
    paper="OPO App. A.3 Step 2: Eq. 7 without its pi_ref factor, 'absorbed by the sampling measure'",
    geometry=dataclasses.replace(_OPO_GEOMETRY, target="Escort field exp((1 - alpha) A), no pi_ref factor"),
    escort_ref=False,
)
variant(
    "opo-code",
    "opo",
    paper="The OPO authors' public verl fork (SETTINGS.md): w = q^alpha p^(1 - alpha) per group, code_weights",
    geometry=dataclasses.replace(_OPO_GEOMETRY, target="Geometric mixture q^alpha p^(1 - alpha) per group"),
    drive="code",
)
