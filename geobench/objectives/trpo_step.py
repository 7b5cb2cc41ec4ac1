"""TRPO's natural-gradient step: conjugate gradient on Fisher-vector products, then a
backtracking line search inside the KL ball (Schulman et al. 2015, Sec. 6 and App. C).

The step is an optimizer, not a loss, so it lives beside the objectives: it takes
functions of flat parameters that recompute the surrogate loss and KL(pi_old || pi)
(e.g. ``trpo`` and ``sample_kl`` on a fresh forward pass), and updates S independent
problems (seeds) in one batched computation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from geobench.errors import ConfigError


@dataclass(frozen=True)
class TRPOStep:
    """What a step did, one entry per independent problem (row of ``theta``), each (S,)."""

    accepted: Tensor
    step_fraction: Tensor
    kl: Tensor
    loss_before: Tensor
    loss_after: Tensor
    expected_improvement: Tensor


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot product: (S, P), (S, P) -> (S, 1)."""
    return (a * b).sum(-1, keepdim=True)


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10) -> Tensor:
    """Solve A_s x_s = b_s for each row s of b: (S, P), A_s symmetric positive-definite.

    ``matvec`` maps (S, P) -> (S, P) row by row (A is block-diagonal over rows), so S
    independent problems run as one; a row that has converged stops moving.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = _dot(r, r)
    for _ in range(iters):
        ap = matvec(p)
        active = rr > tol
        step = torch.where(active, rr / _dot(p, ap).clamp(min=1e-30), torch.zeros_like(rr))
        x = x + step * p
        r = r - step * ap
        rr_new = _dot(r, r)
        if not bool((rr_new > tol).any()):
            break
        p = r + torch.where(active, rr_new / rr.clamp(min=1e-30), torch.zeros_like(rr)) * p
        rr = rr_new
    return x


def natural_gradient_step(
    theta: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    kl_fn: Callable[[Tensor], Tensor],
    *,
    max_kl: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
    backtrack_ratio: float = 0.5,
    max_backtracks: int = 10,
) -> tuple[Tensor, TRPOStep]:
    """One TRPO update of S independent problems at once.

    For each row s: direction x = F^-1 (-g) by conjugate gradient with
    F v = grad(grad(KL) . v) + damping v; full step sqrt(2 max_kl / x^T F x) x, the largest
    step whose quadratic KL model equals ``max_kl``; then halve until the true KL is within
    ``max_kl`` and the loss decreased. A row for which no fraction qualifies keeps its
    parameters. Because the rows are independent (block-diagonal Fisher), plain autograd
    on the summed losses gives every row its own gradient and Fisher-vector product.

    Args:
        theta: (S, P) flat parameters, one row per problem (e.g. per seed).
        loss_fn: (S, P) -> (S,) the loss to minimise (the negative surrogate) per row.
        kl_fn: (S, P) -> (S,) KL(pi_old || pi) per row; 0 with zero gradient at ``theta``.

    Returns:
        The new (S, P) parameters (detached) and a :class:`TRPOStep`.
    """
    if max_kl <= 0 or damping < 0:
        raise ConfigError(f"trpo: max_kl must be > 0 and damping >= 0; got {max_kl}, {damping}")
    start = theta.detach()
    point = start.clone().requires_grad_(True)
    loss = loss_fn(point)
    (grad,) = torch.autograd.grad(loss.sum(), point)
    (kl_grad,) = torch.autograd.grad(kl_fn(point).sum(), point, create_graph=True)

    def fisher_vector(v: Tensor) -> Tensor:
        (hv,) = torch.autograd.grad((kl_grad * v).sum(), point, retain_graph=True)
        return hv.detach() + damping * v

    direction = conjugate_gradient(fisher_vector, -grad, iters=cg_iters)
    quad = _dot(direction, fisher_vector(direction))
    full_step = direction * torch.sqrt(2.0 * max_kl / quad.clamp(min=1e-12))
    expected = -_dot(grad, full_step).squeeze(-1)
    loss_before = loss.detach()
    fraction = torch.ones_like(loss_before)
    accepted = torch.zeros_like(loss_before, dtype=torch.bool)
    kl_after, loss_after = torch.zeros_like(loss_before), loss_before.clone()
    with torch.no_grad():
        for _ in range(max_backtracks):
            trial = start + torch.where(accepted, 0.0, fraction).unsqueeze(-1) * full_step
            kl, trial_loss = kl_fn(trial), loss_fn(trial)
            ok = ~accepted & (kl <= max_kl) & (trial_loss < loss_before)
            kl_after, loss_after = torch.where(ok, kl, kl_after), torch.where(ok, trial_loss, loss_after)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
            fraction = torch.where(accepted, fraction, fraction * backtrack_ratio)
        fraction = torch.where(accepted, fraction, torch.zeros_like(fraction))
        new = start + fraction.unsqueeze(-1) * full_step
        step = TRPOStep(accepted, fraction, kl_after, loss_before, loss_after, expected * fraction)
    return new, step
