"""The field's pairwise preference objectives beside DPO (issue 22): TRL 1.16's DPO loss types and the
reference-free SimPO / CPO, each checked against TRL's formula in ``tests/test_zoo_parity_preference.py``.

A group of G candidates gives the pairs i < j whose rewards differ; the higher reward is the chosen
y_w, the other the rejected y_l (ties are skipped, as in ``dpo``). With c = log pi(y_w) - log
pi_ref(y_w) and r = log pi(y_l) - log pi_ref(y_l) (sequence sums), each loss is a mean over those
pairs of a per-pair term, as TRL's ``per_sequence_loss.mean()``; with G = 2 it is TRL's batch of pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from geobench.objectives.batch import GroupBatch
from geobench.objectives.pairwise import pair_index
from geobench.objectives.registry import BOUNDS, POSITIVE, Geometry, Range, objective

_NEW_BOUNDS = {
    "flip_rate": Range(0.0, 0.5, high_open=True),
    "exo_epsilon": Range(0.0, 0.5, low_open=True, high_open=True),
    "discopop_tau": POSITIVE,
    "gamma": Range(0.0),
    "nll_weight": Range(0.0),
}
assert not set(_NEW_BOUNDS) & set(BOUNDS), "a zoo hyperparameter would change an existing objective's range"
BOUNDS.update(_NEW_BOUNDS)


@dataclass(frozen=True)
class Pairs:
    """The decided pairs of a batch, winner first. Shapes (B, P) with P = G(G-1)/2.

    Attributes:
        chosen, rejected: the winner's and loser's sequence scores (anchored log-ratios, or
            log-probs for the reference-free losses), graph kept.
        chosen_len, rejected_len: their token counts (>= 1).
        valid: bool, pairs whose rewards differ.
    """

    chosen: Tensor
    rejected: Tensor
    chosen_len: Tensor
    rejected_len: Tensor
    valid: Tensor

    def mean(self, per_pair: Tensor) -> Tensor:
        """Mean of a (B, P) per-pair loss over the valid pairs (0 if none); NaN/inf of invalid pairs dropped."""
        valid = self.valid.to(per_pair.dtype)
        return torch.where(self.valid, per_pair, 0.0).sum() / valid.sum().clamp(min=1.0)

    def metrics(self) -> dict[str, Tensor]:
        margin = (self.chosen - self.rejected).detach()
        return {
            "margin_mean": self.mean(margin).detach(),
            "pair_accuracy": self.mean((margin > 0).to(margin.dtype)).detach(),
        }


def decided_pairs(batch: GroupBatch, anchored: bool = True) -> Pairs:
    """:class:`Pairs` of ``batch``: scores s - s_ref if ``anchored`` else s, winner by reward."""
    score = batch.seq_logp("policy") - (batch.seq_logp("ref") if anchored else 0.0)  # (B, G)
    length = batch.fmask.sum(-1).clamp(min=1.0)
    i, j = pair_index(score.shape[1], score.device)
    first = batch.rewards[:, i] > batch.rewards[:, j]  # (B, P): i wins

    def ordered(x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.where(first, x[:, i], x[:, j]), torch.where(first, x[:, j], x[:, i])

    (chosen, rejected), (chosen_len, rejected_len) = ordered(score), ordered(length)
    return Pairs(chosen, rejected, chosen_len, rejected_len, batch.rewards[:, i] != batch.rewards[:, j])


def _geometry(optimization: str, target: str, behavior: str, coordinates: str = "Fixed Anchor (l - l_ref)") -> Geometry:
    """A pairwise taxonomy row; the reference-free ones (zero anchor) have no KL sampling geometry."""
    sampling = "none (reference-free)" if coordinates == _FREE else "KL"
    return Geometry(sampling, optimization, coordinates, target, behavior)


_TRL = "TRL 1.16 DPOTrainer loss_type="
_FREE = "Zero Anchor (l)"


@objective(
    "ipo",
    geometry=_geometry(
        "chi^2 curvature (squared margin)", "Margin 1 / (2 beta)", "Regressing the margin to a constant"
    ),
    feedback="pairwise",
    paper=f"Azar et al. 2023 (IPO, arXiv:2310.12036), Eq. 17; {_TRL}'ipo' (per-token averaged log-ratios)",
)
def ipo(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """IPO: (c / |y_w| - r / |y_l| - 1 / (2 beta))^2 per pair. TRL averages the log-ratios per token
    ("confirmed with the IPO authors"); beta is the paper's tau.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    delta = p.chosen / p.chosen_len - p.rejected / p.rejected_len
    return p.mean((delta - 1.0 / (2.0 * beta)).square()), p.metrics()


@objective(
    "hinge",
    geometry=_geometry("none past the margin (hinge)", "Margin 1 / beta", "Calibrating the margin, then stopping"),
    feedback="pairwise",
    paper=f"Zhao et al. 2023 (SLiC-HF, arXiv:2305.10425), Eq. 2 calibration loss; {_TRL}'hinge'",
)
def hinge(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """SLiC's hinge: max(0, 1 - beta (c - r)) per pair.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    return p.mean(torch.relu(1.0 - beta * (p.chosen - p.rejected))), p.metrics()


@objective(
    "robust",
    geometry=_geometry(
        "KL curvature (sigmoid)", "Bradley-Terry, unbiased for flipped labels", "Classifying who is better under noise"
    ),
    feedback="pairwise",
    paper=f"Chowdhury et al. 2024 (rDPO, arXiv:2403.00409), Eq. 8; {_TRL}'robust'",
)
def robust(batch: GroupBatch, *, beta: float = 0.1, flip_rate: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """rDPO: [-(1 - e) log sigmoid(beta m) + e log sigmoid(-beta m)] / (1 - 2 e) per pair, m = c - r.

    e = ``flip_rate`` (TRL's label_smoothing), the assumed rate of flipped labels; 0.1 is our
    choice (the paper sweeps it). e = 0 is DPO.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    m = beta * (p.chosen - p.rejected)
    per_pair = (-(1.0 - flip_rate) * F.logsigmoid(m) + flip_rate * F.logsigmoid(-m)) / (1.0 - 2.0 * flip_rate)
    return p.mean(per_pair), p.metrics()


@objective(
    "nca-pair",
    geometry=_geometry(
        "KL curvature (sigmoid, per response)", "Absolute likelihood of each response", "Raising the winner absolutely"
    ),
    feedback="pairwise",
    paper=f"Chen et al. 2024 (NCA, arXiv:2402.05369), Eq. 11 with K = 2; {_TRL}'nca_pair'",
)
def nca_pair(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """NCA: -log sigmoid(beta c) - (1/2) log sigmoid(-beta c) - (1/2) log sigmoid(-beta r) per pair.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    c, r = beta * p.chosen, beta * p.rejected
    return p.mean(-F.logsigmoid(c) - 0.5 * F.logsigmoid(-c) - 0.5 * F.logsigmoid(-r)), p.metrics()


@objective(
    "bco-pair",
    geometry=_geometry(
        "KL curvature (sigmoid, per response)", "Binary: chosen good, rejected bad", "Classifying each response"
    ),
    feedback="pairwise",
    paper=f"Jung et al. 2024 (BCO, arXiv:2404.04656), Eq. 6 on pairs, without the reward shift delta; {_TRL}'bco_pair'",
)
def bco_pair(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """BCO on pairs: -log sigmoid(beta c) - log sigmoid(-beta r) per pair (TRL 1.16 keeps no running delta).

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    return p.mean(-F.logsigmoid(beta * p.chosen) - F.logsigmoid(-beta * p.rejected)), p.metrics()


@objective(
    "sppo-hard",
    geometry=_geometry(
        "chi^2 curvature (squared log-ratios)",
        "Hard win probability (1 / 0)",
        "Regressing each log-ratio to +-1/(2 beta)",
    ),
    feedback="pairwise",
    paper=f"Wu et al. 2024 (SPPO, arXiv:2405.00675), Eq. 4.7 with P = 1 / 0; {_TRL}'sppo_hard'",
)
def sppo_hard(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """SPPO with hard probabilities: (c - 1/(2 beta))^2 + (r + 1/(2 beta))^2 per pair.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    half = 0.5 / beta
    return p.mean((p.chosen - half).square() + (p.rejected + half).square()), p.metrics()


@objective(
    "apo-zero",
    geometry=_geometry(
        "KL curvature (sigmoid, per response)",
        "Anchored: chosen up, rejected down",
        "Raising the winner, lowering the loser",
    ),
    feedback="pairwise",
    paper=f"D'Oosterlinck et al. 2024 (APO, arXiv:2408.06266), Eq. 7; {_TRL}'apo_zero'",
)
def apo_zero(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """APO-zero: (1 - sigmoid(beta c)) + sigmoid(beta r) per pair.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    return p.mean(1.0 - torch.sigmoid(beta * p.chosen) + torch.sigmoid(beta * p.rejected)), p.metrics()


@objective(
    "apo-down",
    geometry=_geometry(
        "KL curvature (sigmoid, per response)", "Anchored: both down, loser more", "Lowering both, the loser further"
    ),
    feedback="pairwise",
    paper=f"D'Oosterlinck et al. 2024 (APO, arXiv:2408.06266), Eq. 8; {_TRL}'apo_down'",
)
def apo_down(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """APO-down: sigmoid(beta c) + (1 - sigmoid(beta (c - r))) per pair.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    per_pair = torch.sigmoid(beta * p.chosen) + 1.0 - torch.sigmoid(beta * (p.chosen - p.rejected))
    return p.mean(per_pair), p.metrics()


@objective(
    "exo-pair",
    geometry=_geometry(
        "Reverse KL to the label distribution", "Smoothed labels (1 - eps, eps)", "Mode-seeking preference matching"
    ),
    feedback="pairwise",
    paper=f"Ji et al. 2024 (EXO, arXiv:2402.00856), Eq. 16 with K = 2; {_TRL}'exo_pair'",
)
def exo_pair(batch: GroupBatch, *, beta: float = 0.1, exo_epsilon: float = 1e-3) -> tuple[Tensor, dict[str, Tensor]]:
    """EXO: KL(p_theta || p_label) over {y_w, y_l} per pair, p_theta = (sigmoid(beta m), sigmoid(-beta m)), m = c - r,
    p_label = (1 - eps, eps).

    eps = 1e-3 is the paper's value for pairwise data (TRL's label_smoothing, which must be > 0 here).

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    m = beta * (p.chosen - p.rejected)
    win = torch.sigmoid(m) * (F.logsigmoid(m) - math.log1p(-exo_epsilon))
    lose = torch.sigmoid(-m) * (F.logsigmoid(-m) - math.log(exo_epsilon))
    return p.mean(win + lose), p.metrics()


@objective(
    "sigmoid-norm",
    geometry=_geometry(
        "KL curvature (sigmoid)",
        "Bradley-Terry (Q_win = 1)",
        "DPO on per-token log-ratios",
        "Length-normalised anchor ((l - l_ref) / length)",
    ),
    feedback="pairwise",
    paper=f"{_TRL}'sigmoid_norm' (DPO on per-token averaged log-ratios; Rafailov et al. 2023, Eq. 7)",
)
def sigmoid_norm(batch: GroupBatch, *, beta: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """Length-normalised DPO: -log sigmoid(beta (c / |y_w| - r / |y_l|)) per pair.

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    return p.mean(-F.logsigmoid(beta * (p.chosen / p.chosen_len - p.rejected / p.rejected_len))), p.metrics()


@objective(
    "discopop",
    geometry=_geometry(
        "Blend of sigmoid and exponential curvature", "Bradley-Terry (Q_win = 1)", "Log-ratio-modulated DPO"
    ),
    feedback="pairwise",
    paper=f"Chris Lu et al. 2024 (DiscoPOP, arXiv:2406.08414), Eq. 5; {_TRL}'discopop'",
)
def discopop(batch: GroupBatch, *, beta: float = 0.1, discopop_tau: float = 0.05) -> tuple[Tensor, dict[str, Tensor]]:
    """DiscoPOP: (1 - s) (-log sigmoid(x)) + s exp(-x) per pair, x = beta (c - r), s = sigmoid(x / tau).

    tau = 0.05, "the paper recommends the default value" (TRL).

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch)
    x = beta * (p.chosen - p.rejected)
    s = torch.sigmoid(x / discopop_tau)
    return p.mean((1.0 - s) * -F.logsigmoid(x) + s * torch.exp(-x)), p.metrics()


@objective(
    "simpo",
    geometry=_geometry(
        "KL curvature (sigmoid)", "Bradley-Terry with margin gamma", "Reference-free DPO on average log-probs", _FREE
    ),
    feedback="pairwise",
    paper="Meng et al. 2024 (SimPO, arXiv:2405.14734), Eq. 6; TRL CPOTrainer loss_type='simpo' with cpo_alpha = 0",
)
def simpo(batch: GroupBatch, *, beta: float = 2.0, gamma: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """SimPO: -log sigmoid(beta (s_w / |y_w| - s_l / |y_l|) - gamma) per pair, s = log pi(y): no reference.

    beta = 2.0 and gamma = 1.0 are our choice from the paper's ranges ("beta = 2.0 ... gamma / beta
    = 0.5" among its tuned settings, Sec. 4 and App. B).

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch, anchored=False)
    x = beta * (p.chosen / p.chosen_len - p.rejected / p.rejected_len) - gamma
    return p.mean(-F.logsigmoid(x)), p.metrics()


@objective(
    "cpo",
    geometry=_geometry(
        "KL curvature (sigmoid) plus NLL", "Bradley-Terry + SFT on the winner", "Reference-free DPO", _FREE
    ),
    feedback="pairwise",
    paper="Xu et al. 2024 (CPO, arXiv:2401.08417), Eq. 3 and 5; TRL CPOTrainer loss_type='sigmoid'",
)
def cpo(batch: GroupBatch, *, beta: float = 0.1, nll_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """CPO: mean_pairs -log sigmoid(beta (s_w - s_l)) + nll_weight * NLL of the winners, s = log pi(y).

    NLL is the mean -log pi over the winners' tokens, one winner per decided pair (TRL's
    cross-entropy on the chosen completions; a candidate that wins k pairs counts k times).
    beta = 0.1 and nll_weight = 1.0 are TRL's defaults (cpo_alpha).

    Shapes: batch (B, G, T) with G >= 2; pairs (B, P).
    """
    p = decided_pairs(batch, anchored=False)
    weight = p.valid.to(p.chosen.dtype)
    nll = -(p.chosen * weight).sum() / (p.chosen_len * weight).sum().clamp(min=1.0)
    return p.mean(-F.logsigmoid(beta * (p.chosen - p.rejected))) + nll_weight * nll, p.metrics()
