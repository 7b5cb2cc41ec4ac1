"""OPO as the authors' public verl fork computes it: the ``drive="code"`` form of :func:`geobench.objectives.opo.opo`.

Source: github.com/wk222/verlm at commit b79d8f45c92fcb324a83475c8ac5bfb1d455d878,
``verl/trainer/adpo/core_algos.py`` (``adpo_policy_loss``, ``loss_variant="opo"``) and
``verl/trainer/config/opo_qwen3_math.yaml``. It is not the paper's Eq. 7; the paper's forms
are in :mod:`geobench.objectives.opo`, beside which it is registered (``opo-code``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geobench.objectives.batch import GroupBatch

# The OPO authors' configuration where it departs from the paper's run (wk222/verlm at b79d8f4,
# verl/trainer/config/opo_qwen3_math.yaml: opo_alpha 0.75, opo_mu 0.5, opo_direction_scale
# 1.33, scale_rewards False, use_length_normalization True): the overrides of the registered
# ``opo-code`` entry. The rest of their configuration (tau 0.5, beta_reward 0.15, the clips, the
# logit regulariser, adaptive tau 0.2 / 0.5 in [0.2, 1.5], vocab 151936) is the defaults of the
# code form's own hyperparameters in :func:`geobench.objectives.opo.opo`.
AUTHORS_CODE: dict[str, object] = {
    "drive": "code",
    "alpha": 0.75,
    "mu": 0.5,
    "direction_scale": 1.33,
    "advantage": "mean",
    "seq_logratio": "mean",
}
_EPS = 1e-10  # the authors' eps in q^alpha p^(1 - alpha) and its group sum


def authors_adaptive_tau(
    tau: float | Tensor,
    seq: Tensor,
    seq_ref: Tensor,
    adv: Tensor,
    *,
    tau_entropy: float,
    tau_reward: float,
    tau_min: float,
    tau_max: float,
    vocab_size: int,
) -> Tensor:
    """The authors' adaptive tau: clamp(tau (1 + a h + b c (-r)), tau_min, tau_max), a () tensor.

    Not OPO's "adaptive tau" (undefined in the paper) nor ADPO's Eq. 12: a rule of the authors'
    fork, from means over the whole batch the loss is called on (a verl micro-batch there):
    h = mean clamp(-s_ref / log|V|, 0, 1) of the anchor, c = 1 - the same of the policy, and
    r = 2 mean((A - min A) / max(max A - min A, 1e-6)) - 1 in [-1, 1]; a = ``tau_entropy``
    (their 0.2), b = ``tau_reward`` (0.5). Detached.

    Shapes: seq, seq_ref (B, G) sequence log-probs (per token when length-normalised); adv (B, G).
    """
    log_v = math.log(vocab_size)
    seq, seq_ref, adv = seq.detach(), seq_ref.detach(), adv.detach()
    h_static = (-seq_ref / log_v).clamp(0.0, 1.0).mean()
    confidence = 1.0 - (-seq / log_v).clamp(0.0, 1.0).mean()
    low = adv.min()
    signal = 2.0 * ((adv - low) / (adv.max() - low).clamp(min=1e-6)).mean() - 1.0
    modulation = 1.0 + tau_entropy * h_static - tau_reward * confidence * signal
    return (torch.as_tensor(tau, dtype=seq.dtype) * modulation).clamp(tau_min, tau_max)


def authors_code_loss(
    batch: GroupBatch,
    *,
    alpha: float,
    mu: float,
    advantage: str,
    seq_logratio: str,
    reward_temperature: float,
    direction_scale: float | None,
    tau: float | Tensor,
    tau_adaptive: bool,
    tau_entropy: float,
    tau_reward: float,
    tau_min: float,
    tau_max: float,
    vocab_size: int,
    clip_log_ratio: float,
    clip_score: float,
    logit_reg: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The OPO loss of the authors' public verl fork (``drive="code"``), not the paper's Eq. 7.

    Source: wk222/verlm at b79d8f4, ``verl/trainer/adpo/core_algos.py``, ``adpo_policy_loss``
    with ``loss_variant="opo"`` (restated independently in tests/reference_opo_authors.py).
    Per group of G, with s the policy's sequence log-prob (per token: ``seq_logratio="mean"``,
    their ``use_length_normalization``) and s_ref the anchor's:

        Delta = clip(s - s_ref, +-clip_log_ratio)                   (their 5)
        u     = clip(Delta / tau_t, +-clip_score)                   (their 10)
        q     = softmax_G(A / reward_temperature),  p = sg(softmax_G(u))
        w     = (q + eps)^alpha (p + eps)^(1 - alpha) / (sum_G (q + eps)^alpha (p + eps)^(1 - alpha) + eps)
        L     = mean_B [ -kappa sum_G (w - mean_G w) s + (mu / 2) mean_G Delta^2 ]
                + logit_reg (mean_B logsumexp_G u)^2

    eps = 1e-10; kappa = ``direction_scale`` (their config 1.33; None: 1/alpha, their code's
    default), so alpha > 0; tau_t is :func:`authors_adaptive_tau` when ``tau_adaptive``, else
    ``tau`` (a float or a () tensor the trainer passes). The adaptive tau and the logit
    regulariser are statistics of the batch the loss is called on, as in their code, where
    that is one verl micro-batch (6 sequences, one group, in their config); with
    ``batch.totals`` each micro-batch's share is weighted by its contexts, as verl's gradient
    accumulation weights micro-batch losses.

    Where it departs from Eq. 7: alpha weights the reward softmax, the anchor enters through
    p (the policy's own anchored distribution) instead of pi_ref^-(1 - alpha), the drive
    multiplies s rather than Delta (the same gradient, a different loss value), and the
    penalty is on the clipped per-token Delta. Not from the paper: tau, the clips, eps and
    the logit regulariser. Their yaml puts these settings under ``algorithm:`` and names alpha
    ``opo_alpha``, while the loss reads ``alpha`` (default 0.5) from the actor's config; the
    fork does not show where one reaches the other, so this is their configuration as written.

    Shapes: batch (B, G, T); s, Delta, u, q, w (B, G); loss ().
    """
    mask = batch.fmask
    lengths = mask.sum(-1).clamp(min=1.0) if seq_logratio == "mean" else torch.ones_like(mask[..., 0])
    seq = (batch.logp * mask).sum(-1) / lengths
    seq_ref = (batch.ref * mask).sum(-1) / lengths
    delta = seq - seq_ref
    if clip_log_ratio > 0:
        delta = delta.clamp(-clip_log_ratio, clip_log_ratio)
    adv = batch.advantage(advantage)
    if tau_adaptive:
        knobs = dict(tau_entropy=tau_entropy, tau_reward=tau_reward, tau_min=tau_min, tau_max=tau_max)
        tau_t = authors_adaptive_tau(tau, seq, seq_ref, adv, **knobs, vocab_size=vocab_size)
    else:
        tau_t = torch.as_tensor(tau, dtype=delta.dtype)
    u = delta / tau_t
    if clip_score > 0:
        u = u.clamp(-clip_score, clip_score)
    q = torch.softmax(adv / reward_temperature, -1)
    mix = (q + _EPS) ** alpha * (torch.softmax(u.detach(), -1) + _EPS) ** (1.0 - alpha)
    w = mix / (mix.sum(-1, keepdim=True) + _EPS)
    kappa = 1.0 / alpha if direction_scale is None else direction_scale
    # The per-candidate coefficient of s: mean_B sum_G = G x (the mean over the B G candidates).
    drive = (kappa * adv.shape[-1] * (w - w.mean(-1, keepdim=True))).detach()
    log_z = torch.logsumexp(u, -1)  # (B,)
    regulariser = batch.context_mean(log_z.mean().square().expand_as(log_z))
    loss = batch.candidate_mean(-drive * seq + 0.5 * mu * delta.square()) + logit_reg * regulariser
    metrics = {
        "w_range": (drive.max() - drive.min()).detach(),
        "w_abs_mean": drive.abs().mean().detach(),
        "delta_mean": delta.mean().detach(),
        "delta_abs_max": delta.abs().max().detach(),
        "adv_range": (adv.max() - adv.min()).detach(),
        "tau": tau_t.mean().detach(),
    }
    return loss, metrics
