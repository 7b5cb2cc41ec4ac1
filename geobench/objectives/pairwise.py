"""Pairwise Bradley-Terry objectives on anchored log-ratio margins: DPO, soft DPO, ADPO-pairwise.

A group of G candidates yields the G(G-1)/2 pairs i < j; a context with G = 2 is the
usual single preference pair. Labels come from the candidates' rewards.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from geobench.objectives.batch import GroupBatch
from geobench.objectives.registry import Geometry, objective, variant


@lru_cache(maxsize=64)
def _pairs(g: int) -> tuple[Tensor, Tensor]:
    i, j = torch.triu_indices(g, g, offset=1)
    return i, j


def pair_index(g: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Indices (i, j) of the G(G-1)/2 unordered pairs i < j, each (P,); built once per G."""
    i, j = _pairs(g)
    return (i, j) if device is None or device == i.device else (i.to(device), j.to(device))


def bradley_terry(margin: Tensor, label: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean binary cross-entropy of P(i > j) = sigmoid(margin) against soft labels.

    loss = -label log sigmoid(m) - (1 - label) log sigmoid(-m), averaged over valid pairs.
    With label = 1 this is DPO's -log sigmoid(m) (Rafailov et al. 2023, Eq. 7).

    Args:
        margin: (B, P) margins m_ij.
        label: (B, P) target probability that i beats j.
        valid: (B, P) bool, pairs that count (e.g. ties excluded for hard labels).
    """
    loss = -label * F.logsigmoid(margin) - (1.0 - label) * F.logsigmoid(-margin)
    if valid is None:
        return loss.mean()
    valid = valid.to(loss.dtype)
    return (loss * valid).sum() / valid.sum().clamp(min=1.0)


def _anchored_margins(batch: GroupBatch, scale: float) -> tuple[Tensor, Tensor]:
    """Margins scale * [(s_i - s_ref_i) - (s_j - s_ref_j)] and reward gaps, each (B, P)."""
    delta = batch.seq_logp("policy") - batch.seq_logp("ref")  # (B, G)
    i, j = pair_index(delta.shape[1], delta.device)
    return scale * (delta[:, i] - delta[:, j]), batch.rewards[:, i] - batch.rewards[:, j]


def _pair_metrics(margin: Tensor, gap: Tensor) -> dict[str, Tensor]:
    """Mean margin, and the share of decided pairs (gap != 0) the margin orders correctly."""
    margin = margin.detach()
    return {
        "margin_mean": margin.mean(),
        "pair_accuracy": (margin * gap > 0).sum() / (gap != 0).sum().clamp(min=1),
    }


_DPO_GEOMETRY = Geometry(
    sampling="KL",
    optimization="KL curvature (sigmoid)",
    coordinates="Fixed Anchor (l - l_ref)",
    target="Bradley-Terry (Q_win = 1)",
    behavior="Classifying who is better",
)


@objective("dpo", geometry=_DPO_GEOMETRY, feedback="pairwise", paper="Rafailov et al. 2023, Eq. 7; ADPO App. D")
def dpo(batch: GroupBatch, *, beta: float = 0.1, label_smoothing: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """DPO: -log sigmoid(beta [log pi/pi_ref (y_w) - log pi/pi_ref (y_l)]) on hard labels.

    The winner of each pair is the candidate with the higher reward; tied pairs are
    skipped. ``label_smoothing`` eps gives the conservative DPO label 1 - eps.

    Shapes: batch (B, G, T) with G >= 2; rewards (B, G).
    """
    margin, gap = _anchored_margins(batch, beta)
    label = torch.where(gap > 0, 1.0 - label_smoothing, label_smoothing).to(margin.dtype)
    return bradley_terry(margin, label, gap != 0), _pair_metrics(margin, gap)


variant(
    "dpo-hard",
    "dpo",
    paper="ADPO Sec. 6.1 baseline (DPO-Soft/Hard): DPO on hard labels, Rafailov et al. 2023, Eq. 7",
    label_smoothing=0.0,
)


@objective(
    "dpo-soft",
    geometry=Geometry(
        sampling="KL",
        optimization="KL curvature (sigmoid)",
        coordinates="Fixed Anchor (l - l_ref)",
        target="Soft Bradley-Terry",
        behavior="Classifying who is better, with confidence",
    ),
    feedback="pairwise",
    paper="Rafailov et al. 2023 with soft labels; ADPO Sec. 6.1 baseline",
)
def dpo_soft(
    batch: GroupBatch, *, beta: float = 0.1, label_temperature: float = 1.0
) -> tuple[Tensor, dict[str, Tensor]]:
    """DPO with soft labels P(i > j) = sigmoid((r_i - r_j) / label_temperature).

    Shapes: batch (B, G, T) with G >= 2; rewards (B, G).
    """
    margin, gap = _anchored_margins(batch, beta)
    return bradley_terry(margin, torch.sigmoid(gap / label_temperature)), _pair_metrics(margin, gap)


@objective(
    "adpo-pairwise",
    geometry=Geometry(
        sampling="Anchored (flexible anchor)",
        optimization="Softmax Fisher / tau^2",
        coordinates="Flexible Anchor (l - l_ref)",
        target="Soft pairwise preference",
        behavior="Anchored soft preference",
    ),
    feedback="pairwise",
    paper="ADPO Sec. 4.4 and 6.1 (pairwise anchored soft preference), Eq. 6",
)
def adpo_pairwise(
    batch: GroupBatch, *, tau: float = 1.0, beta_r: float = 1.0, advantage: str = "zscore"
) -> tuple[Tensor, dict[str, Tensor]]:
    """ADPO's pairwise variant: anchored logits u = (s - s_ref) / tau (Eq. 6) compared in
    pairs, against soft labels q_ij = sigmoid((A_i - A_j) / beta_r) from group advantages.

    Identical in form to ``dpo-soft`` with beta = 1 / tau; what differs is that the target
    comes from advantages and the anchor may move (self, EMA, on-policy).

    Shapes: batch (B, G, T) with G >= 2; rewards (B, G).
    """
    margin, gap = _anchored_margins(batch, 1.0 / tau)
    adv = batch.advantage(advantage)
    i, j = pair_index(adv.shape[1], adv.device)
    label = torch.sigmoid((adv[:, i] - adv[:, j]) / beta_r)
    return bradley_terry(margin, label), _pair_metrics(margin, gap)
