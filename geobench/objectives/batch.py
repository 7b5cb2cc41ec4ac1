"""The group batch: the one input type of every objective.

Shapes use B contexts, G candidates per context and T positions on the "token" axis
(T = 1 for the toy, bandits and MuJoCo; completion tokens for the LLM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geobench.errors import ConfigError
from geobench.objectives.advantages import group_advantages
from geobench.objectives.aggregation import Totals, share_mean


@dataclass(frozen=True)
class GroupBatch:
    """Per-token log-probabilities of G candidates for each of B contexts.

    Attributes:
        logp: (B, G, T) log-probs under the policy being trained (carries the graph).
        mask: (B, G, T) 1 where a position is a real token, 0 for padding.
        rewards: (B, G) reward or teacher score per candidate.
        old_logp: (B, G, T) log-probs under the sampling policy pi_old (no graph).
            Defaults to ``logp.detach()``, i.e. the first step of an on-policy iteration.
        ref_logp: (B, G, T) log-probs under the anchor / reference policy (no graph).
            Defaults to ``old_logp``: the on-policy anchor of both papers.
        advantages: optional (B, G) advantages computed outside (e.g. with reward shaping
            or by another engine); when given, objectives use them instead of
            recomputing group advantages from ``rewards``.
        drive: optional (B, G) per-candidate drive computed outside over a larger batch
            (OPO's escort weights, normalised over the whole mini-batch, Sec. 4.1); when
            given, the objective uses it instead of computing it from this batch.
        totals: the counts of the whole mini-batch this batch is a micro-batch of; when
            given, every mean of the loss divides by them, so micro-batch losses add up to
            the mini-batch loss. None: this batch is the whole mini-batch.
    """

    logp: Tensor
    mask: Tensor
    rewards: Tensor
    old_logp: Tensor | None = None
    ref_logp: Tensor | None = None
    advantages: Tensor | None = None
    drive: Tensor | None = None
    totals: Totals | None = None

    def __post_init__(self) -> None:
        if self.logp.dim() != 3:
            raise ConfigError(f"GroupBatch.logp must be (B, G, T), got shape {tuple(self.logp.shape)}")
        shape = self.logp.shape
        for name in ("mask", "old_logp", "ref_logp"):
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise ConfigError(f"GroupBatch.{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
        for name in ("rewards", "advantages", "drive"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Tensor):
                raise ConfigError(f"GroupBatch.{name} must be a (B, G) tensor; got {type(value).__name__}")
            if value.shape != shape[:2]:
                raise ConfigError(f"GroupBatch.{name} has shape {tuple(value.shape)}, expected {tuple(shape[:2])}")
            if not (value.is_floating_point() or value.is_complex()):
                # 1/0 rewards as ints or bools (a verifier's verdict): the advantages' means and z-scores
                # need floats, so they become the log-probs' dtype here rather than failing deep inside
                object.__setattr__(self, name, value.to(self.logp.dtype))

    @property
    def old(self) -> Tensor:
        """(B, G, T) sampling-policy log-probs, detached."""
        return (self.logp if self.old_logp is None else self.old_logp).detach()

    @property
    def ref(self) -> Tensor:
        """(B, G, T) anchor log-probs, detached."""
        return self.old if self.ref_logp is None else self.ref_logp.detach()

    @property
    def fmask(self) -> Tensor:
        """(B, G, T) mask as the log-probs' floating dtype."""
        return self.mask.to(self.logp.dtype)

    def seq_logp(self, which: str = "policy") -> Tensor:
        """(B, G) sequence log-probability s = sum_t log pi(y_t | ...) (ADPO Eq. 30).

        ``which`` is "policy", "old" or "ref".
        """
        token = {"policy": self.logp, "old": self.old, "ref": self.ref}[which]
        return (token * self.fmask).sum(-1)

    def candidate_mean(self, values: Tensor) -> Tensor:
        """(1/N) sum over the N = B*G candidates of (B, G) ``values`` (N of the mini-batch if sliced)."""
        return share_mean(values, None if self.totals is None else self.totals.candidates)

    def context_mean(self, values: Tensor) -> Tensor:
        """(1/B) sum over the B contexts of (B,) ``values`` (B of the mini-batch if sliced)."""
        return share_mean(values, None if self.totals is None else self.totals.contexts)

    def advantage(self, mode: str) -> Tensor:
        """(B, G) advantages: the precomputed ones if given, else group advantages of rewards."""
        if self.advantages is not None:
            return self.advantages.detach()
        return group_advantages(self.rewards, mode).detach()

    @classmethod
    def from_sequences(
        cls,
        logp: Tensor,
        rewards: Tensor,
        old_logp: Tensor | None = None,
        ref_logp: Tensor | None = None,
    ) -> GroupBatch:
        """Build a batch with T = 1 from (B, G) sequence/action log-probs."""

        def lift(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.unsqueeze(-1)

        return cls(
            logp=logp.unsqueeze(-1),
            mask=torch.ones_like(logp).unsqueeze(-1),
            rewards=rewards,
            old_logp=lift(old_logp),
            ref_logp=lift(ref_logp),
        )
