"""Diagonal Gaussian policies: log-densities, the closed-form KL, and ranking quality (NDCG).

Shapes: means and standard deviations (..., A) for A action dimensions; candidate actions
(..., K, A) for K candidates per state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def log_density(actions: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(a; mean, diag(std^2)) summed over action dims: (..., K, A), (..., A) -> (..., K)."""
    z = (actions - mean.unsqueeze(-2)) / std.unsqueeze(-2)
    return -0.5 * z.square().sum(-1) - std.log().sum(-1, keepdim=True) - 0.5 * actions.shape[-1] * math.log(2 * math.pi)


def gaussian_kl(mean_p: Tensor, std_p: Tensor, mean_q: Tensor, std_q: Tensor) -> Tensor:
    """KL(N_p || N_q) for diagonal Gaussians, summed over action dims: (..., A) -> (...).

    sum_j log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2. For distillation,
    p is the teacher and q the student, KL(pi_T || pi_S). A tanh squashing applied to both
    leaves the KL unchanged (it is a bijection), so SAC teachers compare in pre-tanh space.
    """
    ratio = (std_p / std_q).square()
    return (0.5 * (ratio + ((mean_p - mean_q) / std_q).square() - 1.0) - 0.5 * ratio.log()).sum(-1)


def ndcg(student_scores: Tensor, relevance: Tensor) -> Tensor:
    """NDCG of ranking the K candidates by ``student_scores`` against graded ``relevance``.

    DCG = sum_k rel(order_k) / log2(k + 2) over the student's order, divided by the DCG of
    the ideal order (relevance sorted). (..., K), (..., K) -> (...); 1 for a perfect ranking.
    """
    k = student_scores.shape[-1]
    discount = 1.0 / torch.log2(torch.arange(k, dtype=relevance.dtype, device=relevance.device) + 2.0)
    order = student_scores.argsort(dim=-1, descending=True)
    dcg = (relevance.gather(-1, order) * discount).sum(-1)
    ideal = (relevance.sort(dim=-1, descending=True).values * discount).sum(-1)
    return dcg / ideal.clamp(min=1e-12)
