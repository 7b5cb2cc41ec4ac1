"""TRPO's natural-gradient step: conjugate gradient on Fisher-vector products, then a
backtracking line search inside the KL ball (Schulman et al. 2015, Sec. 6 and App. C).

The step is an optimizer, not a loss, so it lives beside the objectives: it takes
closures that recompute the surrogate loss and KL(pi_old || pi) at the current
parameters (e.g. ``trpo`` and ``sample_kl`` on a fresh forward pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from geobench.errors import ConfigError


@dataclass(frozen=True)
class TRPOStep:
    """What a step did: accepted or not, fraction of the full step taken, KL and loss after."""

    accepted: bool
    step_fraction: float
    kl: float
    loss_before: float
    loss_after: float
    expected_improvement: float


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10
) -> Tensor:
    """Solve A x = b for symmetric positive-definite A given only x -> A x."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        ap = matvec(p)
        step = rr / (p @ ap)
        x = x + step * p
        r = r - step * ap
        rr_new = r @ r
        if rr_new < tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def natural_gradient_step(
    params: Sequence[Tensor],
    loss_fn: Callable[[], Tensor],
    kl_fn: Callable[[], Tensor],
    *,
    max_kl: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
    backtrack_ratio: float = 0.5,
    max_backtracks: int = 10,
) -> TRPOStep:
    """One TRPO update of ``params`` in place.

    Direction x = F^-1 (-g) by conjugate gradient with F v = grad(grad(KL) . v) + damping v;
    full step sqrt(2 max_kl / x^T F x) x, the largest step whose quadratic KL model equals
    ``max_kl``; then halve until the true KL is within ``max_kl`` and the loss decreased.
    If no fraction qualifies the parameters are left unchanged.

    Args:
        params: leaf tensors with ``requires_grad``.
        loss_fn: recomputes the loss to minimise (the negative surrogate) at ``params``.
        kl_fn: recomputes KL(pi_old || pi) at ``params``; 0 with zero gradient at the start.
    """
    if max_kl <= 0 or damping < 0:
        raise ConfigError(f"trpo: max_kl must be > 0 and damping >= 0; got {max_kl}, {damping}")
    params = list(params)
    loss = loss_fn()
    grad = parameters_to_vector(torch.autograd.grad(loss, params)).detach()
    kl_grad = parameters_to_vector(torch.autograd.grad(kl_fn(), params, create_graph=True))

    def fisher_vector(v: Tensor) -> Tensor:
        hv = torch.autograd.grad(kl_grad @ v, params, retain_graph=True)
        return parameters_to_vector(hv).detach() + damping * v

    direction = conjugate_gradient(fisher_vector, -grad, iters=cg_iters)
    quad = direction @ fisher_vector(direction)
    full_step = direction * torch.sqrt(2.0 * max_kl / quad.clamp(min=1e-12))
    expected = float(-(grad @ full_step))
    start = parameters_to_vector(params).detach()
    loss_before = float(loss.detach())
    fraction = 1.0
    with torch.no_grad():
        for _ in range(max_backtracks):
            vector_to_parameters(start + fraction * full_step, params)
            new_loss, new_kl = float(loss_fn()), float(kl_fn())
            if new_kl <= max_kl and new_loss < loss_before:
                return TRPOStep(True, fraction, new_kl, loss_before, new_loss, expected * fraction)
            fraction *= backtrack_ratio
        vector_to_parameters(start, params)
    return TRPOStep(False, 0.0, 0.0, loss_before, loss_before, 0.0)
