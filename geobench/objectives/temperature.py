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

CONFIDENCE_FORMS = ("token-mean", "sequence")


def candidate_confidence(seq_logp: Tensor, lengths: Tensor | None = None) -> Tensor:
    """c = 1 - normalised entropy of the policy over each candidate set, averaged: (B, G) -> ().

    ADPO Sec. 5.1: H is the entropy of the softmax over the G candidates' log-probs, divided
    by log G so that c is in [0, 1].

    With ``lengths`` (B, G) the candidates' log-probs are length-normalised first, s / |y|:
    the mean token log-prob, i.e. the log of the geometric-mean token probability (GSPO's
    normalisation, ADPO Eq. 28). That is the form for LLM sequences: a sum of |y| token
    log-probs differs between two candidates by O(|y|) nats, so for any |y| >> 1 the
    softmax over G is one-hot and c ~ 1 (0.998 in practice) whatever the policy, which
    reduces Eq. (12)'s guard to the reward term alone; the mean keeps the differences O(1).
    Without ``lengths`` (the paper's literal form, right for the one-token bandit and toy
    candidates) the sums are used as given.
    """
    g = seq_logp.shape[-1]
    scores = seq_logp.detach()
    if lengths is not None:
        scores = scores / lengths.to(scores.dtype).clamp(min=1.0)
    log_p = torch.log_softmax(scores, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return 1.0 - entropy.mean() / math.log(g) if g > 1 else torch.ones(())


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

    def __post_init__(self) -> None:
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(f"adaptive tau needs 0 < tau_min <= tau_max; got [{self.tau_min}, {self.tau_max}]")
        if self.sigma_r <= 0 or not 0 <= self.ema < 1:
            raise ConfigError(f"adaptive tau needs sigma_r > 0 and ema in [0, 1); got {self.sigma_r}, {self.ema}")

    def step(self, confidence: float, mean_reward: float) -> float:
        """The temperature for this step, given c_t in [0, 1] and the batch-mean reward."""
        if self.baseline is None:
            self.baseline = mean_reward
        improvement = max(0.0, math.tanh((mean_reward - self.baseline) / self.sigma_r))
        self.baseline = self.ema * self.baseline + (1.0 - self.ema) * mean_reward
        return self.tau_max - (self.tau_max - self.tau_min) * confidence * improvement


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
