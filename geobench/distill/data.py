"""Offline distillation data: states visited by the teacher and its Gaussian at each of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geobench.distill.teachers import Teacher, make_env


@dataclass(frozen=True)
class StateSet:
    """States with the teacher's action distribution there.

    Attributes:
        obs: (N, d) observations as the teacher's policy sees them (normalised if it was).
        mean, std: (N, A) the teacher's Gaussian, in pre-tanh space for a SAC teacher.
    """

    obs: Tensor
    mean: Tensor
    std: Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]


def teacher_gaussian(teacher: Teacher, obs: np.ndarray) -> tuple[Tensor, Tensor]:
    """The teacher's Gaussian (mean, std), each (N, A), at normalised observations (N, d)."""
    x = torch.as_tensor(obs, dtype=torch.float32)
    with torch.no_grad():
        if teacher.deterministic:
            # TD3 acts with mu(s) + N(0, sigma^2) during training; that behaviour policy is the
            # teacher's Gaussian (sigma from teacher.json), clipped to the action box when stepped.
            mean = teacher.model.actor(x)
            return mean, torch.full_like(mean, float(teacher.info["action_noise_std"]))
        if teacher.squashed:
            mean, log_std, _ = teacher.model.actor.get_action_dist_params(x)
            return mean, log_std.exp()
        dist = teacher.model.policy.get_distribution(x).distribution
        return dist.mean, dist.stddev


def collect_states(teacher: Teacher, n: int, envs: int, seed: int) -> StateSet:
    """Roll out the teacher's *stochastic* policy in ``envs`` parallel environments for n states.

    Stochastic rather than deterministic actions, so the data cover the neighbourhood of the
    teacher's trajectories that a student drifts into.
    """
    import gymnasium as gym

    vec = gym.vector.SyncVectorEnv([lambda: make_env(teacher.env) for _ in range(envs)])
    raw, _ = vec.reset(seed=[seed + i for i in range(envs)])
    gen = torch.Generator().manual_seed(seed)
    chunks: list[np.ndarray] = []
    while sum(len(c) for c in chunks) < n:
        obs = teacher.normalize(raw)
        chunks.append(obs)
        mean, std = teacher_gaussian(teacher, obs)
        pre = mean + std * torch.randn(mean.shape, generator=gen)
        action = torch.tanh(pre) if teacher.squashed else pre
        low, high = vec.single_action_space.low, vec.single_action_space.high
        raw, _, _, _, _ = vec.step(np.clip(action.numpy(), low, high))
    vec.close()
    obs = np.concatenate(chunks)[:n]
    mean, std = teacher_gaussian(teacher, obs)
    return StateSet(torch.as_tensor(obs), mean, std)


def sample_candidates(states: StateSet, index: Tensor, k: int, widen: float, gens: list[torch.Generator]) -> Tensor:
    """K candidate actions per state from N(mean_T, (widen * std_T)^2), one stream per seed.

    ``index``: (S, B) state indices per seed. Returns (S, B, K, A) pre-tanh actions.
    """
    mean, std = states.mean[index], states.std[index]  # (S, B, A)
    noise = torch.stack([torch.randn((*index.shape[1:], k, mean.shape[-1]), generator=g) for g in gens])
    return mean.unsqueeze(-2) + widen * std.unsqueeze(-2) * noise
