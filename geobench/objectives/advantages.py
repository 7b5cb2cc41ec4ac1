"""Group advantages, listwise targets and the DAPO batch helpers.

All functions act on (B, G) rewards: B contexts, G candidates each.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geobench.errors import ConfigError

ADVANTAGE_MODES = ("zscore", "mean", "none")
TARGETS = ("softmax", "plackett-luce", "top1")


def group_advantages(rewards: Tensor, mode: str = "zscore", eps: float = 1e-6) -> Tensor:
    """Group-relative advantages, (B, G) -> (B, G).

    ``zscore``: (r - mean_g r) / (std_g r + eps) with the unbiased std, as in GRPO
    (DeepSeekMath Sec. 4.1.2) and verl's ``compute_grpo_outcome_advantage``; a group of one
    gets advantage 0. OPO Remark 6.2 reads the centring as the projection onto E[v] = 0.
    ``mean``: r - mean_g r (Dr. GRPO; the authors' DAPO config). ``none``: r itself.
    """
    if mode not in ADVANTAGE_MODES:
        raise ConfigError(f"unknown advantage mode {mode!r}; valid modes: {', '.join(ADVANTAGE_MODES)}")
    if mode == "none":
        return rewards
    centred = rewards - rewards.mean(-1, keepdim=True)
    if mode == "mean":
        return centred
    if rewards.shape[-1] < 2:
        return torch.zeros_like(rewards)
    return centred / (rewards.std(-1, keepdim=True, unbiased=True) + eps)


@dataclass(frozen=True)
class StageTargets:
    """A listwise target as a sequence of L softmax stages over the G candidates.

    Stage l asks the model to put ``weight[..., l, :]`` of its mass on each candidate,
    the softmax being taken over the candidates where ``support[..., l, :]`` is true.
    A plain target distribution q is one stage over all candidates; Plackett-Luce is
    one stage per rank (ListMLE).

    Attributes:
        weight: (B, L, G) non-negative; each valid stage sums to 1.
        support: (B, L, G) bool; candidates still in the race at that stage.
        valid: (B, L) bool; stages that carry a term of the loss.
    """

    weight: Tensor
    support: Tensor
    valid: Tensor

    @classmethod
    def single(cls, q: Tensor) -> StageTargets:
        """One stage with target distribution q: (B, G)."""
        b = q.shape[0]
        return cls(
            weight=q.unsqueeze(1),
            support=torch.ones_like(q, dtype=torch.bool).unsqueeze(1),
            valid=torch.ones(b, 1, dtype=torch.bool, device=q.device),
        )


def softmax_target(scores: Tensor, temperature: float) -> Tensor:
    """q = softmax(scores / temperature) over the group: (B, G) -> (B, G).

    ADPO Algorithm 1 line 12 (q = softmax(A / beta_r)) and Eq. (31); KD's soft teacher.
    """
    return torch.softmax(scores / temperature, dim=-1)


def top1_target(scores: Tensor) -> Tensor:
    """Dirac target on the best candidate (ADPO Eq. 11), ties shared equally: (B, G)."""
    best = scores == scores.max(-1, keepdim=True).values
    return best.to(scores.dtype) / best.sum(-1, keepdim=True)


def plackett_luce_stages(scores: Tensor) -> StageTargets:
    """ListMLE stages of the ranking induced by ``scores`` (ADPO Sec. 4.4, Fig. 3 config).

    Stage l picks the l-th best score level among the candidates not yet ranked. Tied
    candidates form one level and share that stage's target equally (binary rewards give
    one stage: "some correct answer beats every wrong one"); the worst level carries no
    ordering information and gives no stage. Without ties this is exactly ListMLE:
    -sum_l log softmax_{j ranked >= l}(u)_{rank l}.

    Args:
        scores: (B, G) rewards or advantages.

    Returns:
        StageTargets with L = G.
    """
    levels, _ = scores.sort(dim=-1, descending=True)  # (B, L=G): the score level of stage l
    level = levels.unsqueeze(-1)  # (B, L, 1)
    s = scores.unsqueeze(1)  # (B, 1, G)
    support = s <= level
    hit = (s == level).to(scores.dtype)
    first = torch.ones_like(levels, dtype=torch.bool)
    first[:, 1:] = levels[:, 1:] != levels[:, :-1]
    valid = first & (levels > levels[:, -1:])
    return StageTargets(weight=hit / hit.sum(-1, keepdim=True), support=support, valid=valid)


def listwise_target(scores: Tensor, kind: str, temperature: float = 1.0) -> StageTargets:
    """The target geometry Q of ADPO Eq. (9), by name: softmax, plackett-luce or top1."""
    if kind == "softmax":
        return StageTargets.single(softmax_target(scores, temperature))
    if kind == "top1":
        return StageTargets.single(top1_target(scores))
    if kind == "plackett-luce":
        return plackett_luce_stages(scores)
    raise ConfigError(f"unknown target {kind!r}; valid targets: {', '.join(TARGETS)}")


def informative_groups(rewards: Tensor) -> Tensor:
    """DAPO dynamic sampling (Yu et al. 2025, Eq. 11): keep groups whose rewards differ.

    (B, G) -> (B,) bool. All-correct and all-wrong groups have zero group advantage and
    would only dilute the batch.
    """
    return rewards.max(-1).values > rewards.min(-1).values


def overlong_penalty(lengths: Tensor, max_len: int, cache_len: int) -> Tensor:
    """DAPO soft overlong punishment (Yu et al. 2025, Eq. 13), added to the reward.

    0 up to ``max_len - cache_len`` tokens, then a linear ramp to -1 at ``max_len``, and
    -1 beyond. ``lengths``: any shape of completion lengths.
    """
    if not 0 < cache_len <= max_len:
        raise ConfigError(f"overlong cache_len must be in (0, max_len={max_len}], got {cache_len}")
    start = max_len - cache_len
    ramp = (start - lengths.to(torch.float32)) / cache_len
    return torch.where(lengths <= start, torch.zeros_like(ramp), ramp.clamp(min=-1.0))
