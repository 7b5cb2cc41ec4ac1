"""Adaptive anchoring temperature for ADPO, kept outside the pure loss because it has state.

:class:`GuardedTemperature` is the paper's Eq. (12); :func:`entropy_reward_temperature` is
the per-prompt rule of the authors' public recipe, offered as a variant (SETTINGS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from geobench.errors import ConfigError

# Readings of ADPO Eq. 12's confidence c (see candidate_confidence): "token-mean" over
# length-normalised sequence log-probs; "sequence" Sec. 5.1 read literally, over the sums;
# "candidate-set" the literal form over each group's distinct completions.
CONFIDENCE_FORMS = ("token-mean", "sequence", "candidate-set")


def distinct_candidates(ids: Tensor, mask: Tensor) -> Tensor:
    """(B, G, T) completion token ids and 0/1 mask -> (B, G) bool, True at the first of each
    group's distinct completions (two completions are the same if their masks and their
    tokens under the mask are)."""
    mask = mask.bool()
    tokens = ids.masked_fill(~mask, 0)
    same = (tokens.unsqueeze(2) == tokens.unsqueeze(1)).all(-1) & (mask.unsqueeze(2) == mask.unsqueeze(1)).all(-1)
    g = ids.shape[1]
    earlier = torch.ones(g, g, dtype=torch.bool, device=ids.device).tril(-1)  # [i, j]: j < i
    return ~(same & earlier).any(-1)


def candidate_confidence(seq_logp: Tensor, lengths: Tensor | None = None, distinct: Tensor | None = None) -> Tensor:
    """c = 1 - normalised entropy of the policy over each candidate set, averaged: (B, G) -> ().

    ADPO Sec. 5.1: H is the entropy of the softmax over the G candidates' log-probs, divided
    by log G so that c is in [0, 1]; "high c_t implies the model has converged to a mode".

    With ``lengths`` (B, G) the candidates' log-probs are length-normalised first, s / |y|:
    the mean token log-prob, i.e. the log of the geometric-mean token probability (GSPO's
    normalisation, ADPO Eq. 28). A sum of |y| token log-probs differs between two candidates
    by O(|y|) nats, so for hundreds of tokens the softmax over G is one-hot and c ~ 1 (0.998
    in practice) whatever the policy; the mean keeps the differences O(1), but then they are
    so small that c ~ 0.01 (0.006-0.011 on the quick profile's 20-30-token completions),
    which pins Eq. 12's tau at tau_max. Without ``lengths`` (the paper's literal form, right
    for the one-token bandit and toy candidates) the sums are used as given: c ~ 0.35 on
    20-30 tokens.

    With ``distinct`` (B, G) bool (:func:`distinct_candidates`) the candidate set is the
    group's distinct completions, as the set S_x of ADPO Sec. 3 is: the softmax runs over
    them and H is divided by log |S|; a group whose G samples coincide is c = 1. Counted G
    times, identical samples have equal log-probs, so the literal form reads a policy that
    has converged to a mode as unconfident (c -> 0), the opposite of Sec. 5.1's gloss.
    """
    g = seq_logp.shape[-1]
    scores = seq_logp.detach()
    if lengths is not None:
        scores = scores / lengths.to(scores.dtype).clamp(min=1.0)
    if distinct is None:
        log_p = torch.log_softmax(scores, dim=-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return 1.0 - entropy.mean() / math.log(g) if g > 1 else torch.ones(())
    log_p = torch.log_softmax(scores.masked_fill(~distinct, -math.inf), dim=-1)
    entropy = -torch.where(distinct, log_p.exp() * log_p, torch.zeros_like(log_p)).sum(-1)
    n = distinct.sum(-1)
    per_group = torch.where(n > 1, 1.0 - entropy / n.clamp(min=2).to(scores.dtype).log(), torch.ones_like(entropy))
    return per_group.mean()


@dataclass
class GuardedTemperature:
    """tau_t = tau_max - (tau_max - tau_min) c_t p_t (ADPO Eq. 12).

    p_t = max(0, tanh((R_t - b_t) / sigma_R)) credits only improvement over an EMA
    baseline b_t of the batch-mean reward; b starts at the first reward seen (so the first
    step has p = 0 and the tightest region, tau_max) and is updated after each step with
    rate ``ema``. The paper does not give sigma_R or the EMA rate: 0.1 and 0.9 are ours.

    Direction: the paper is ambiguous. Sec. 5.1 calls a small tau "a loose trust region",
    while Eq. (10)'s 1 / tau^2 curvature makes a small tau the steep, tight one. We follow
    Eq. (12) as printed (and Sec. 5.1's rule "only relax constraints (decrease tau) when the
    policy is both confident and improving"): start at tau_max, move towards tau_min.
    """

    tau_min: float = 0.2
    tau_max: float = 1.5
    sigma_r: float = 0.1
    ema: float = 0.9
    baseline: float | None = None
    improvement: float = 0.0  # the last step's p_t

    def __post_init__(self) -> None:
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(f"adaptive tau needs 0 < tau_min <= tau_max; got [{self.tau_min}, {self.tau_max}]")
        if self.sigma_r <= 0 or not 0 <= self.ema < 1:
            raise ConfigError(f"adaptive tau needs sigma_r > 0 and ema in [0, 1); got {self.sigma_r}, {self.ema}")

    def step(self, confidence: float, mean_reward: float) -> float:
        """The temperature for this step, given c_t in [0, 1] and the batch-mean reward."""
        if self.baseline is None:
            self.baseline = mean_reward
        self.improvement = max(0.0, math.tanh((mean_reward - self.baseline) / self.sigma_r))
        self.baseline = self.ema * self.baseline + (1.0 - self.ema) * mean_reward
        return self.tau_max - (self.tau_max - self.tau_min) * confidence * self.improvement


def entropy_reward_temperature(
    tau_base: float,
    norm_entropy: Tensor,
    group_reward: Tensor,
    a: float = 0.5,
    b: float = 1.0,
    tau_min: float = 0.1,
    tau_max: float = 5.0,
) -> Tensor:
    """Per-prompt tau = tau_base (1 + a H + b (1 - H)(1 - R)), clamped: (B,), (B,) -> (B,).

    The authors' public recipe (not the paper's Eq. 12): H is the mean token entropy over
    log |vocab|, R the group-mean reward min-max normalised over the batch.
    """
    lo, hi = group_reward.min(), group_reward.max()
    r = (group_reward - lo) / (hi - lo).clamp(min=1e-8)
    tau = tau_base * (1.0 + a * norm_entropy + b * (1.0 - norm_entropy) * (1.0 - r))
    return tau.clamp(tau_min, tau_max)
