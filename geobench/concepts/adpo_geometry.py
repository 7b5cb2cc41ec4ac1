"""ADPO Fig. 1 computed: SFT on the K = 3 simplex, and ADPO's loss in anchored coordinates.

(a) the path SFT's gradient flow takes from the reference prior, (b) SFT's NLL over the
simplex, (c) ADPO's listwise loss over d = log(pi / pi_ref) around the anchor, with its
curvature and its quadratic approximation. Every loss value, gradient and Hessian is
autograd through the registered ``sft`` and ``adpo`` objectives on a single K-way context
(B = 1, G = K, T = 1), the batch the bandit experiment builds for listwise feedback.

ADPO's u of Eq. (6) is d / tau; the paper's Fig. 1 writes u = log(pi / pi_ref), i.e. tau = 1.
Softmax is blind to u -> u + c 1, so every point of panel (c) is the zero-sum
representative of its class: d = (d1, d2, -d1 - d2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from geobench.concepts.tables import Tables, single_thread, summary
from geobench.objectives import (
    GroupBatch,
    StageTargets,
    get_objective,
    group_advantages,
    listwise_target,
    make_objective,
    per_seed_objective,
)

LossFn = Callable[[Tensor], Tensor]
DTYPE = torch.float64
# The reference prior's mode (item 2) is not the best item, so SFT has to move mass away
# from what the prior favours; the best item is item 1, the paper's "P1 -> 1" corner.
PRIOR = (0.2, 0.5, 0.3)
REWARDS = (1.0, 0.0, -0.5)
# ADPO's loss for panel (c): App. A.1's fixed target q = softmax(A / beta_r) (Algorithm 1
# line 12). The registry default, Plackett-Luce, has no minimum for a strict ranking (its
# likelihood only tends to 1 as the gaps grow), so it has no bowl; its curvature at the
# anchor is still checked (App. A.4).
BOWL_TARGET = "softmax"
CORNER_EPS = 1e-3  # the flow stops when 1 - P1 < eps: "before a corner"
FLOW_STEP = 0.02  # arc length of one Euler step in logit space
QUAD_TOL = 0.10  # the quadratic approximation "holds" while |L - L_quad| <= 10% of L
SIMPLEX_GRID = 40
BOWL_GRID = 41
BOWL_HALF_WIDTH = 4.0
RAYS = 72
RAY_STEP = 0.005
RAY_MAX = 8.0


def _tensor(values: tuple[float, ...]) -> Tensor:
    return torch.tensor(values, dtype=DTYPE)


def _stack(x: Tensor, s: int) -> Tensor:
    """A (K,) context repeated as S one-context batches: (S, 1, K)."""
    return x.expand(s, 1, x.shape[-1])


def sft_flow(prior: Tensor, rewards: Tensor, step: float = FLOW_STEP, eps: float = CORNER_EPS) -> pd.DataFrame:
    """The path of SFT's gradient flow dz/dt = -grad_z L from z = log pi_ref, pi = softmax(z).

    Euler steps of fixed arc length ``step`` in logit space trace the same path as the flow
    (t accumulates step / |grad|), until 1 - P1 < ``eps``. ``grad_norm`` = |grad_z L|.
    Shapes: prior, rewards (K,). Rows: one per step.
    """
    loss_fn = make_objective("sft")
    best = int(rewards.argmax())
    z = prior.log().clone()
    rows, t = [], 0.0
    for i in range(100_000):
        z = z.detach().requires_grad_(True)
        logp = torch.log_softmax(z, -1)
        loss, _ = loss_fn(GroupBatch.from_sequences(logp[None], rewards[None]))
        (grad,) = torch.autograd.grad(loss, z)
        p = logp.detach().exp()
        norm = float(grad.norm())
        rows.append({"step": i, "t": t, **{f"p{k + 1}": float(p[k]) for k in range(len(p))}})
        rows[-1].update(loss=float(loss.detach()), grad_norm=norm, gap=float(1.0 - p[best]))
        if rows[-1]["gap"] < eps:
            break
        z, t = z - step * grad / norm, t + step / norm
    return pd.DataFrame(rows)


def simplex_grid(rewards: Tensor, n: int = SIMPLEX_GRID) -> pd.DataFrame:
    """SFT's loss on the interior grid points (i/n, j/n, 1 - (i + j)/n) of the simplex (panel b)."""
    points = [(i / n, j / n) for i in range(1, n) for j in range(1, n) if i + j < n]
    p = torch.tensor([(a, b, 1.0 - a - b) for a, b in points], dtype=DTYPE)
    logp = p.log().unsqueeze(1)
    loss = per_seed_objective("sft")(logp, _stack(rewards, len(p)), logp, logp)
    return pd.DataFrame({"p1": p[:, 0], "p2": p[:, 1], "p3": p[:, 2], "loss": loss.numpy()})


def adpo_loss(prior: Tensor, rewards: Tensor, target: str = BOWL_TARGET, **hparams: float) -> LossFn:
    """d -> ADPO's loss at log pi = log_softmax(log pi_ref + d), for d (K,) or a stack (S, K).

    The policy is normalised, so d and log(pi / pi_ref) differ by a constant, which the
    anchored softmax ignores.
    """
    one = make_objective("adpo", target=target, **hparams)
    many = per_seed_objective("adpo", target=target, **hparams)
    ref = prior.log()

    def loss(d: Tensor) -> Tensor:
        logp = torch.log_softmax(ref + d, -1)
        if d.dim() == 1:
            return one(GroupBatch.from_sequences(logp[None], rewards[None], ref[None], ref[None]))[0]
        s = d.shape[0]
        return many(logp.unsqueeze(1), _stack(rewards, s), _stack(ref, s), _stack(ref, s))

    return loss


def stage_fisher(u: Tensor, stages: StageTargets) -> Tensor:
    """Closed-form Hessian of -sum_l sum_g Q_l(g) log softmax_{support_l}(u)_g in u: (K, K).

    Each stage adds its weight times the softmax Fisher Diag(p_l) - p_l p_l^T of its support
    (ADPO App. A.1 for one stage, A.4 for Plackett-Luce). ``stages`` of one context (1, L, K).
    """
    k = u.shape[-1]
    hessian = torch.zeros(k, k, dtype=u.dtype)
    for weight, support, valid in zip(stages.weight[0], stages.support[0], stages.valid[0], strict=True):
        if valid:
            p = torch.softmax(u.masked_fill(~support, -math.inf), -1)
            hessian += weight.sum() * (torch.diag(p) - torch.outer(p, p))
    return hessian


def _target_stages(rewards: Tensor, target: str) -> StageTargets:
    """The stages the ``adpo`` objective builds from these rewards at its default advantage and beta_r."""
    defaults = get_objective("adpo").defaults
    return listwise_target(group_advantages(rewards[None], defaults["advantage"]), target, defaults["beta_r"])


def curvature(prior: Tensor, rewards: Tensor, tau: float) -> pd.DataFrame:
    """The Hessian of ADPO's loss in d by autograd beside its closed form (1 / tau^2) sum_l Fisher_l(d / tau).

    Points: the anchor d = 0 (softmax and Plackett-Luce targets) and the bowl's minimum
    d* = tau log q (softmax target; Eq. 16 expands there). One row per matrix entry.
    """
    q = _target_stages(rewards, "softmax").weight[0, 0]
    points = [
        ("anchor", "softmax", torch.zeros_like(prior)),
        ("anchor", "plackett-luce", torch.zeros_like(prior)),
        ("minimum", "softmax", tau * (q.log() - q.log().mean())),
    ]
    rows = []
    for point, target, d in points:
        auto = torch.autograd.functional.hessian(adpo_loss(prior, rewards, target, tau=tau), d)
        closed = stage_fisher(d / tau, _target_stages(rewards, target)) / tau**2
        for i in range(len(d)):
            for j in range(len(d)):
                rows.append(
                    {
                        "point": point,
                        "target": target,
                        "i": i + 1,
                        "j": j + 1,
                        "autograd": float(auto[i, j]),
                        "closed_form": float(closed[i, j]),
                    }
                )
    return pd.DataFrame(rows)


def zero_sum_basis(k: int = 3) -> Tensor:
    """Two orthonormal vectors spanning the zero-sum plane 1^perp of R^3: (2, 3)."""
    e = torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=DTYPE)
    return e / e.norm(dim=-1, keepdim=True)


def taylor(loss: LossFn, k: int) -> tuple[float, Tensor, Tensor]:
    """L(0), grad L(0) (K,) and Hessian (K, K) of ``loss`` at the anchor, by autograd."""
    zero = torch.zeros(k, dtype=DTYPE)
    return (
        float(loss(zero)),
        torch.autograd.functional.jacobian(loss, zero),
        torch.autograd.functional.hessian(loss, zero),
    )


def _quadratic(d: Tensor, value: float, grad: Tensor, hessian: Tensor) -> Tensor:
    """L(0) + g.d + d^T H d / 2 for d (S, K)."""
    return value + d @ grad + 0.5 * ((d @ hessian) * d).sum(-1)


def bowl_grid(
    loss: LossFn, expansion: tuple[float, Tensor, Tensor], half_width: float = BOWL_HALF_WIDTH, n: int = BOWL_GRID
) -> pd.DataFrame:
    """ADPO's loss and its anchor quadratic on an n x n grid of (d1, d2), d3 = -d1 - d2 (panel c)."""
    axis = torch.linspace(-half_width, half_width, n, dtype=DTYPE)
    d1, d2 = torch.meshgrid(axis, axis, indexing="ij")
    d = torch.stack([d1.flatten(), d2.flatten(), -(d1 + d2).flatten()], -1)
    return pd.DataFrame(
        {"d1": d[:, 0], "d2": d[:, 1], "loss": loss(d).numpy(), "quadratic": _quadratic(d, *expansion).numpy()}
    )


def quadratic_radius(loss: LossFn, expansion: tuple[float, Tensor, Tensor], tol: float = QUAD_TOL) -> pd.DataFrame:
    """Per direction of the zero-sum plane, how far the anchor quadratic stays within ``tol`` of the loss.

    Along each of ``RAYS`` unit directions e, the radius is the first r (linearly
    interpolated between grid radii) where |L(r e) - L_quad(r e)| / L(r e) reaches ``tol``;
    ``RAY_MAX`` if it never does. Rows: angle, the direction's (d1, d2, d3) and radius.
    """
    angle = torch.arange(RAYS, dtype=DTYPE) * (2 * math.pi / RAYS)
    direction = torch.stack([angle.cos(), angle.sin()], -1) @ zero_sum_basis()  # (R, 3)
    r = torch.arange(0, RAY_MAX + RAY_STEP / 2, RAY_STEP, dtype=DTYPE)
    d = (direction[:, None, :] * r[None, :, None]).reshape(-1, 3)
    value = loss(d)
    err = ((value - _quadratic(d, *expansion)).abs() / value).view(RAYS, len(r)).numpy()
    radii = []
    for row in err:
        over = np.flatnonzero(row >= tol)
        if len(over) == 0:
            radii.append(RAY_MAX)
            continue
        i = over[0]
        frac = (tol - row[i - 1]) / (row[i] - row[i - 1])
        radii.append(float(r[i - 1] + frac * RAY_STEP))
    frame = pd.DataFrame(direction.numpy(), columns=["e1", "e2", "e3"])
    return frame.assign(angle=angle.numpy(), radius=radii)


def compute(prior: tuple[float, ...] = PRIOR, rewards: tuple[float, ...] = REWARDS) -> Tables:
    """Every number of ADPO Fig. 1: tables path, simplex, bowl, rays, curvature and summary."""
    with single_thread():
        pi_ref, r = _tensor(prior), _tensor(rewards)
        tau = float(get_objective("adpo").defaults["tau"])
        path = sft_flow(pi_ref, r)
        simplex = simplex_grid(r)
        loss = adpo_loss(pi_ref, r, tau=tau)
        expansion = taylor(loss, len(prior))
        bowl = bowl_grid(loss, expansion)
        rays = quadratic_radius(loss, expansion)
        curv = curvature(pi_ref, r, tau)
    q = _target_stages(r, BOWL_TARGET).weight[0, 0]
    minimum = tau * (q.log() - q.log().mean())
    err = curv.assign(diff=(curv["autograd"] - curv["closed_form"]) ** 2, ref=curv["closed_form"] ** 2)
    by_matrix = err.groupby(["point", "target"])[["diff", "ref"]].sum()
    before = path[path["gap"] >= CORNER_EPS]
    values = {
        "tau": tau,
        "corner_eps": CORNER_EPS,
        "flow_steps": len(path) - 1,
        "flow_time": path["t"].iloc[-1],
        "grad_norm_start": path["grad_norm"].iloc[0],
        "grad_norm_min": before["grad_norm"].min(),
        "grad_over_gap_min": (before["grad_norm"] / before["gap"]).min(),
        "final_gap": path["gap"].iloc[-1],
        "nll_spread_at_fixed_p1": simplex.groupby("p1")["loss"].agg(lambda v: v.max() - v.min()).max(),
        "hessian_rel_err": float(np.sqrt(by_matrix["diff"] / by_matrix["ref"]).max()),
        "quad_tol": QUAD_TOL,
        "quad_radius": rays["radius"].min(),
        "quad_radius_max": rays["radius"].max(),
        "anchor_grad_norm": float(expansion[1].norm()),
        "minimum_distance": float(minimum.norm()),
        "minimum_d1": float(minimum[0]),
        "minimum_d2": float(minimum[1]),
        **{f"q{k + 1}": float(q[k]) for k in range(len(q))},
        **{f"prior{k + 1}": p for k, p in enumerate(prior)},
    }
    return {"path": path, "simplex": simplex, "bowl": bowl, "rays": rays, "curvature": curv, "summary": summary(values)}
