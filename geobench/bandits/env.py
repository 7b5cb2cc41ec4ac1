"""Noisy contextual bandits (ADPO Sec. 6.1): contexts, a clean reward, and four corruptions.

The paper states the corruption families and three difficulty levels but no numbers;
the parameters of each level live in ``experiments/adpo_fig2.toml`` with their reasons.

- Contexts x ~ N(0, I_d); K items; the clean reward r*(x, i) is a fixed random two-layer
  tanh network of x (seeded by ``env_seed``), scaled so that rewards have unit standard
  deviation across items. The best item is i*(x) = argmax_i r*(x, i).
- ``gaussian-outliers``: r* + sigma eps, and with probability ``outlier_frac`` an extra
  ``outlier_scale`` * eps' (a large outlier).
- ``shift``: training contexts come from N(shift * e, I) with e a fixed unit direction;
  evaluation uses N(0, I). Feedback carries Gaussian noise sigma.
- ``adversarial``: with probability ``flip_frac`` a feedback event is corrupted: each of
  the context's ``flip_top`` best items has its score reflected about the context's
  median score, so the top items look below average. Feedback carries Gaussian noise sigma.
- ``cauchy``: r* + cauchy_scale * Cauchy(0, 1) (heavy tails, no finite variance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from geobench.errors import ConfigError
from geobench.nn import generator

NOISES = ("gaussian-outliers", "shift", "adversarial", "cauchy")
LEVELS = ("light", "medium", "heavy")


@dataclass(frozen=True)
class NoiseLevel:
    """The parameters of one scenario (noise type x level); those a type does not use are 0."""

    sigma: float = 0.0
    outlier_frac: float = 0.0
    outlier_scale: float = 0.0
    shift: float = 0.0
    flip_frac: float = 0.0
    flip_top: int = 0
    cauchy_scale: float = 0.0

    def __post_init__(self) -> None:
        for name in ("outlier_frac", "flip_frac"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"noise {name} must be in [0, 1]; got {getattr(self, name)}")
        if min(self.sigma, self.outlier_scale, self.cauchy_scale, self.flip_top) < 0:
            raise ConfigError("noise scales and flip_top must be >= 0")


@dataclass(frozen=True)
class Draws:
    """Pre-drawn randomness for one batch of feedback events, each (..., n)."""

    normal: Tensor
    normal2: Tensor
    uniform: Tensor
    event: Tensor  # (..., n) or (..., 1): one uniform per corruptible event

    @classmethod
    def sample(cls, shape: tuple[int, ...], event_shape: tuple[int, ...], gen: torch.Generator) -> Draws:
        return cls(
            normal=torch.randn(shape, generator=gen),
            normal2=torch.randn(shape, generator=gen),
            uniform=torch.rand(shape, generator=gen),
            event=torch.rand(event_shape, generator=gen),
        )


@dataclass(frozen=True)
class BanditEnv:
    """The clean problem: context dimension, items, and the reward network's seed."""

    dim: int = 8
    items: int = 10
    reward_hidden: int = 32
    env_seed: int = 0

    @cached_property
    def _weights(self) -> tuple[Tensor, Tensor, float]:
        gen = generator("bandit-env", self.env_seed)
        w1 = torch.randn(self.dim, self.reward_hidden, generator=gen) / math.sqrt(self.dim)
        w2 = torch.randn(self.reward_hidden, self.items, generator=gen)
        probe = torch.randn(4096, self.dim, generator=gen)
        scale = (torch.tanh(probe @ w1) @ w2).std(-1).mean().item()
        return w1, w2, scale

    @cached_property
    def shift_direction(self) -> Tensor:
        return torch.ones(self.dim) / math.sqrt(self.dim)

    def clean_rewards(self, x: Tensor) -> Tensor:
        """r*(x, .): (..., d) -> (..., K), unit std across items on average."""
        w1, w2, scale = self._weights
        return torch.tanh(x @ w1) @ w2 / scale

    def contexts(self, shape: tuple[int, ...], gen: torch.Generator, shift: float = 0.0) -> Tensor:
        """(*shape, d) contexts from N(shift * e, I)."""
        return torch.randn(*shape, self.dim, generator=gen) + shift * self.shift_direction

    def eval_contexts(self, n: int) -> Tensor:
        """The fixed held-out clean contexts (n, d), the same for every method and seed."""
        return self.contexts((n,), generator("bandit-eval", self.env_seed, n))


def top_items(clean: Tensor, m: int) -> Tensor:
    """(..., K) bool: the m items with the highest clean reward in each context."""
    if m <= 0:
        return torch.zeros_like(clean, dtype=torch.bool)
    threshold = clean.topk(m, dim=-1).values[..., -1:]
    return clean >= threshold


def corrupt(clean: Tensor, top: Tensor, center: Tensor, draws: Draws, level: NoiseLevel) -> Tensor:
    """Noisy feedback for observed items.

    Args:
        clean: (..., n) clean rewards of the observed items.
        top: (..., n) bool, observed item is among its context's ``flip_top`` best.
        center: (..., 1) the context's median clean reward (the adversary's mirror).
        draws: pre-drawn randomness shaped like ``clean``.
        level: the scenario's parameters.
    """
    noisy = clean + level.sigma * draws.normal
    if level.outlier_frac > 0:
        noisy = noisy + torch.where(draws.uniform < level.outlier_frac, level.outlier_scale * draws.normal2, 0.0)
    if level.cauchy_scale > 0:
        noisy = noisy + level.cauchy_scale * torch.tan(math.pi * (draws.uniform - 0.5))
    if level.flip_frac > 0:
        flipped = (draws.event < level.flip_frac) & top
        noisy = torch.where(flipped, 2 * center - clean + level.sigma * draws.normal, noisy)
    return noisy


def winmass(logits: Tensor, best: Tensor) -> Tensor:
    """WinMass = E_x[pi(i*(x) | x)]: logits (..., N, K), best (N,) -> (...)."""
    probs = torch.softmax(logits, dim=-1)
    return probs.gather(-1, best.expand(*probs.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)
