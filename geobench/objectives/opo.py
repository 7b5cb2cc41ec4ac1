"""OPO: escort-weighted drive with a quadratic chi^2 penalty in ratio coordinates.

OPO Eq. (7), (10), (19) and Algorithm 1. Per sequence y, with Delta = log pi(y) -
log pi_ref(y) and a centred drive w, the loss is -w Delta + (mu / 2) Delta^2, whose
minimiser is Delta* = w / mu = (omega_alpha - 1) / mu, Theorem 4.3's linear response.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geobench.objectives.batch import GroupBatch
from geobench.objectives.registry import Geometry, objective

# Same guard as the policy-gradient ratios: exp of a log-ratio beyond this is meaningless.
_LOG_RATIO_CLAMP = 20.0


def escort_weights(
    adv: Tensor, ref_seq_logp: Tensor, alpha: float, norm: str, use_ref: bool, temperature: float = 1.0
) -> Tensor:
    """Escort weights omega_alpha normalised to mean 1 (OPO Eq. 7 and Sec. 4.1).

    log omega = (1 - alpha) A / T - (1 - alpha) sg(log pi_ref(y)), i.e. the oracle target
    P* ~ exp(A / T) of Sec. 4.1 (T = 1 is Eq. 7 as printed); the unknown normaliser
    Z_alpha is estimated on the sample: omega = N softmax(log omega) over the mini-batch
    (``norm="batch"``, the paper's choice) or over each group of G (``norm="group"``), so
    that the sample mean is exactly 1 (Eq. 6). Working in log space keeps the
    pi_ref^-(1 - alpha) factor finite for long sequences. ``use_ref=False`` drops that
    factor, the form of App. A.3 Step 2 where it is "absorbed by the sampling measure".

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
    return (log_w.numel() * torch.softmax(log_w.flatten(), dim=0).view_as(log_w)).detach()


@objective(
    "opo",
    geometry=Geometry(
        sampling="alpha-escort (tunable)",
        optimization="chi^2 curvature (constant mu I)",
        coordinates="Ratio v = pi / pi_ref - 1 (log-ratio surrogate)",
        target="Escort field rho_alpha",
        behavior="Linear response to the escort drive",
    ),
    feedback="sampled",
    paper="OPO Eq. 7, 19, Remark 6.2, Algorithm 1",
)
def opo(
    batch: GroupBatch,
    *,
    alpha: float = 0.4,
    mu: float = 1.0,
    advantage: str = "zscore",
    drive: str = "escort",
    escort_norm: str = "batch",
    escort_ref: bool = True,
    temperature: float = 1.0,
    center: bool = True,
    ratio: str = "log",
    seq_logratio: str = "sum",
) -> tuple[Tensor, dict[str, Tensor]]:
    """OPO loss (1/N) sum_y [-w(y) x(y) + (mu/2) x(y)^2] over the N sequences of the batch.

    - ``x``: the log-ratio Delta (Eq. 19, ``ratio="log"``) or the exact ratio deviation
      v = e^Delta - 1 (Eq. 10, ``ratio="exact"``). Delta sums the token log-ratios
      (``seq_logratio="sum"``, y is the whole response) or averages them (``"mean"``,
      GSPO-style length normalisation).
    - ``w``: the escort weight of Eq. (7), batch-normalised (``drive="escort"``), or the
      advantage itself (``drive="advantage"``, the alpha -> 1 reading of Remark 6.2).
      ``center`` subtracts each group's mean (Remark 6.2: the projection onto
      E_pi_k[v] = 0, taken per context since the conservation law is per context).
    - ``mu``: the constant curvature; ``alpha``: the escort's sampling geometry;
      ``temperature`` T: the oracle P* ~ exp(A / T). The paper runs OPO with an "adaptive
      tau with range [0.2, 1.5]" it does not define; this is where such a tau can enter.

    Shapes: batch (B, G, T); rewards (B, G); w and Delta (B, G).
    """
    adv = batch.advantage(advantage)
    mask = batch.fmask
    token_delta = (batch.logp - batch.ref) * mask
    delta = token_delta.sum(-1)
    if seq_logratio == "mean":
        delta = delta / mask.sum(-1).clamp(min=1.0)
    if drive == "escort":
        w = escort_weights(adv, batch.seq_logp("ref"), alpha, escort_norm, escort_ref, temperature)
    else:
        w = adv.detach()
    if center:
        w = w - w.mean(-1, keepdim=True)
    x = delta if ratio == "log" else torch.expm1(delta.clamp(max=_LOG_RATIO_CLAMP))
    loss = (-w * x + 0.5 * mu * x.square()).mean()
    metrics = {
        "w_range": (w.max() - w.min()).detach(),
        "w_abs_mean": w.abs().mean().detach(),
        "delta_mean": delta.mean().detach(),
        "delta_abs_max": delta.abs().max().detach(),
        "adv_range": (adv.max() - adv.min()).detach(),
    }
    return loss, metrics
