"""Listwise cross-entropy in anchored coordinates: SFT, KD and ADPO (ADPO Eq. 7-11, 30-32).

ADPO Table 1 reads all three as one objective, -sum_y Q(y) log softmax(u)_y over the
group, differing only in the anchor of u = (s - s_anchor) / tau and the target Q:
SFT = zero anchor + Dirac target, KD = zero anchor + soft teacher, ADPO = flexible anchor
+ Boltzmann or ranking target.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from geobench.objectives.advantages import StageTargets, listwise_target, softmax_target, top1_target
from geobench.objectives.batch import GroupBatch
from geobench.objectives.registry import Geometry, Recipe, objective, variant


def listwise_cross_entropy(u: Tensor, targets: StageTargets) -> Tensor:
    """Per-context loss -sum_l sum_g Q_l(g) log softmax_{support_l}(u)_g.

    Args:
        u: (B, G) logits in whatever coordinates the caller chose.
        targets: stages of shape (B, L, G).

    Returns:
        (B,) loss per context.
    """
    logits = u.unsqueeze(1).masked_fill(~targets.support, -math.inf)  # (B, L, G)
    log_p = torch.log_softmax(logits, dim=-1).masked_fill(~targets.support, 0.0)
    stage = -(targets.weight * log_p).sum(-1)  # (B, L)
    return (stage * targets.valid.to(stage.dtype)).sum(-1)


def _tau_column(tau: float | Tensor) -> float | Tensor:
    """A per-context temperature (B,) broadcast against (B, G)."""
    return tau.unsqueeze(-1) if isinstance(tau, Tensor) and tau.dim() == 1 else tau


def _listwise_metrics(u: Tensor, q_top: Tensor) -> dict[str, Tensor]:
    p = torch.softmax(u, dim=-1)
    entropy = -(p * torch.log_softmax(u, dim=-1)).sum(-1)
    g = u.shape[-1]
    return {
        "anchored_entropy": (entropy.mean() / math.log(g) if g > 1 else entropy.mean()).detach(),
        "top_mass": (p * q_top).sum(-1).mean().detach(),
        "u_range": (u.max(-1).values - u.min(-1).values).mean().detach(),
    }


@objective(
    "sft",
    geometry=Geometry(
        sampling="uniform (data)",
        optimization="Softmax Fisher",
        coordinates="Zero Anchor (l)",
        target="Dirac (One-Hot)",
        behavior="Reciting the correct answer",
    ),
    feedback="listwise",
    paper="ADPO Table 1 (zero anchor, Dirac target)",
)
def sft(batch: GroupBatch) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross-entropy of the group softmax of sequence log-probs on the best candidate(s).

    When the group is the whole outcome space (the toy's two outcomes, a bandit's K
    items) this is exactly the negative log-likelihood -log pi(y*).

    Shapes: batch (B, G, T); rewards (B, G) pick y* = argmax.
    """
    u = batch.seq_logp("policy")
    q = top1_target(batch.rewards)
    return batch.context_mean(listwise_cross_entropy(u, StageTargets.single(q))), _listwise_metrics(u, q)


@objective(
    "kd",
    geometry=Geometry(
        sampling="teacher",
        optimization="Softmax Fisher",
        coordinates="Zero Anchor (l)",
        target="Soft Teacher",
        behavior="Imitating the teacher's probability",
        space="Probability simplex",
        center="Teacher q",
        metric="Softmax Fisher",
        trust_region="None",
    ),
    feedback="listwise",
    paper="Hinton et al. 2015; ADPO Table 1, Table 3 and Sec. 6.2 (KD baseline)",
)
def kd(batch: GroupBatch, *, temperature: float = 1.0, tau: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Knowledge distillation: -sum_i q_i log softmax(s / tau)_i, q = softmax(score / temperature).

    The student's own (sequence or action) log-probs are the logits: a zero anchor. The
    teacher's scores are ``batch.rewards``.

    Shapes: batch (B, G, T); rewards (B, G) teacher scores.
    """
    u = batch.seq_logp("policy") / _tau_column(tau)
    q = softmax_target(batch.rewards, temperature)
    return batch.context_mean(listwise_cross_entropy(u, StageTargets.single(q))), _listwise_metrics(u, q)


_ADPO_GEOMETRY = Geometry(
    sampling="Anchored (flexible anchor)",
    optimization="Softmax Fisher / tau^2 (implicit trust region)",
    coordinates="Flexible Anchor (l - l_ref)",
    target="Boltzmann (Listwise) or Ranking (Plackett-Luce)",
    behavior="Regressing the advantage value / racing for the top spot",
    space="Anchored distribution",
    center="Reference + q",
    metric="Softmax Fisher",
    trust_region="Implicit (anchored KL)",
)


@objective(
    "adpo",
    geometry=_ADPO_GEOMETRY,
    feedback="listwise",
    paper="ADPO Eq. 6, 8-11, 30-32; Algorithm 1",
    recipe=Recipe(adaptive_temperature="tau"),  # Eq. 12's guarded tau (or the authors' per-prompt rule)
)
def adpo(
    batch: GroupBatch,
    *,
    tau: float = 0.8,
    target: str = "plackett-luce",
    beta_r: float = 1.0,
    advantage: str = "zscore",
) -> tuple[Tensor, dict[str, Tensor]]:
    """ADPO: listwise cross-entropy of a target Q against softmax of anchored logits.

    u_i = (s_i - s_anchor_i) / tau (Eq. 6, 31) with s the sequence log-prob (Eq. 30) and
    the anchor ``batch.ref_logp`` (on-policy: pi_old). Q is ``softmax`` (A / beta_r,
    Algorithm 1 line 12), ``plackett-luce`` (ListMLE over the reward ranking, Sec. 4.4) or
    ``top1`` (Eq. 11). ``tau`` may be a (B,) tensor from an adaptive schedule (Eq. 12).

    Shapes: batch (B, G, T); rewards (B, G); loss averaged over the B contexts (Eq. 32).
    """
    u = (batch.seq_logp("policy") - batch.seq_logp("ref")) / _tau_column(tau)
    scores = batch.advantage(advantage)
    stages = listwise_target(scores, target, beta_r)
    metrics = _listwise_metrics(u, top1_target(scores))
    metrics["tau"] = torch.as_tensor(tau, dtype=u.dtype).mean().detach()
    return batch.context_mean(listwise_cross_entropy(u, stages)), metrics


# ADPO's forms in the papers' experiments, by the names their tables and figures give them. The
# bandits' two listwise forms (ADPO Sec. 6.1, Fig. 2) differ in the target; the distillation's
# two (Table 2) share one loss and differ in the anchor the sweep feeds it as ``ref``.
variant(
    "adpo-listwise-raw",
    "adpo",
    paper="ADPO Sec. 6.1 and Fig. 2 (ADPO Listwise-Raw): q = softmax(A / beta_r) of z-scored rewards, Algorithm 1",
    geometry=dataclasses.replace(
        _ADPO_GEOMETRY, target="Boltzmann (Listwise)", behavior="Regressing the advantage value"
    ),
    target="softmax",
    advantage="zscore",
)
variant(
    "adpo-listwise-rank",
    "adpo",
    paper="ADPO Sec. 6.1 and Fig. 2 (listwise, rank-smoothed targets): Plackett-Luce on the reward ranking, Sec. 4.4",
    geometry=dataclasses.replace(_ADPO_GEOMETRY, target="Ranking (Plackett-Luce)", behavior="Racing for the top spot"),
    target="plackett-luce",
    advantage="none",
)
_SELF_ANCHOR = dict(target="softmax", advantage="none")  # q = softmax(teacher score / beta_r)
variant(
    "adpo-self-anchor",
    "adpo",
    paper="ADPO Sec. 5.2 ('Self or EMA anchors') and Table 2: the student anchored to its initialisation",
    geometry=dataclasses.replace(
        _ADPO_GEOMETRY,
        coordinates="Self Anchor (l - l_init)",
        target="Soft Teacher",
        behavior="Imitating the teacher from its own start",
        center="Initial student + q",
    ),
    **_SELF_ANCHOR,
)
variant(
    "adpo-self-anchor-ema",
    "adpo",
    paper="ADPO Sec. 5.2 ('Self or EMA anchors') and Table 2: the student anchored to its exponential moving average",
    geometry=dataclasses.replace(
        _ADPO_GEOMETRY,
        coordinates="EMA Anchor (l - l_ema)",
        target="Soft Teacher",
        behavior="Imitating the teacher from its moving average",
        center="EMA student + q",
    ),
    **_SELF_ANCHOR,
)
