"""OPO Fig. 1 computed: the work-dissipation picture on a small discrete pi_k.

pi_k is a K = 5 action distribution with rational probabilities n_y / N. The group of the
``opo`` objective is the N = 20 candidates in which action y appears n_y times, so the
objective's (1/N) sum over candidates (Algorithm 1 line 7) is exactly E_{pi_k}, and its
batch-normalised escort weight is exactly Eq. (5)-(6)'s omega_alpha = rho_alpha / pi_k with
E_{pi_k}[omega] = 1. The response v (one number per action) is found by running the
library's loss to convergence; nothing below re-types the loss.

Configuration matching Eq. (10)-(11): ``ratio="exact"`` (the loss's x is v = pi / pi_k - 1,
not the log-ratio of Eq. 19), ``escort_norm="batch"``, ``center=True`` (Remark 6.2),
``advantage="none"`` (A is given), alpha and mu at the registry's defaults (Sec. 9.1).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import Tensor

from geobench.concepts.tables import Tables, single_thread, summary
from geobench.objectives import GroupBatch, get_objective, make_objective, per_seed_objective

DTYPE = torch.float64
COUNTS = (8, 6, 3, 2, 1)  # pi_k = counts / 20: one common action, one rare
ADVANTAGES = (-0.5, 0.5, 1.0, -1.0, 0.0)  # the rare action is average, the third is best
ETA = 0.5  # step of the L2(pi_k) gradient descent; Cor. 8.2 contracts at |1 - eta mu|
ITERATIONS = 60
RATE_AT = 10  # the contraction rate is read at this iteration, far above round-off
EQ10 = {"ratio": "exact", "escort_norm": "batch", "center": True}
# The other readings the library offers, each against the same closed form.
VARIANTS = {
    "eq10": ("Eq. 10-11: exact ratio, omega normalised to mean 1, centred", EQ10),
    "log": ("Eq. 19: log-ratio surrogate (library default), v = e^Delta - 1", {**EQ10, "ratio": "log"}),
    "zscore": ("Sec. 4.1 read literally: omega z-scored", {**EQ10, "escort_norm": "zscore"}),
    "uncentred": ("no centring (Remark 6.2's projection dropped)", {**EQ10, "center": False}),
}
GRID = 41


def policy(counts: tuple[int, ...] = COUNTS) -> tuple[Tensor, Tensor]:
    """pi_k (K,) and the action of each of the N candidates (N,)."""
    n = torch.tensor(counts)
    return n.to(DTYPE) / n.sum(), torch.repeat_interleave(torch.arange(len(counts)), n)


def escort_closed_form(pi: Tensor, adv: Tensor, alpha: float, temperature: float = 1.0) -> Tensor:
    """omega_alpha = rho_alpha / pi_k with rho_alpha ~ pi_k^alpha exp(A / T)^(1 - alpha) (Eq. 4-5, P* ~ exp(A / T))."""
    rho = pi.pow(alpha) * torch.exp((1.0 - alpha) * adv / temperature)
    return rho / rho.sum() / pi


def _hparams(options: dict[str, Any]) -> dict[str, Any]:
    return {"advantage": "none", "drive": "escort", "escort_ref": True, **options}


def _logp(x: Tensor, ref: Tensor, ratio: str) -> Tensor:
    """log pi of the candidates when the loss's coordinate x (per action, (..., K)) is v or Delta."""
    return ref + (torch.log1p(x) if ratio == "exact" else x)


def descend(
    pi: Tensor, actions: Tensor, adv: Tensor, options: dict[str, Any], eta: float = ETA, iterations: int = ITERATIONS
) -> tuple[Tensor, list[Tensor]]:
    """Gradient descent on the ``opo`` loss in its per-action coordinate x (v or Delta), from x = 0.

    The step is the L2(pi_k) gradient grad_x L / pi_k: the loss is (1/N) sum over candidates,
    so its Euclidean gradient in x_y is pi_k(y) (mu x_y - w_y), and dividing by pi_k gives
    Sec. 8.2's function-space gradient mu x - w. ``options``: the objective's hyperparameters
    beyond ``_hparams``'. Returns the final x (K,) and every iterate.
    """
    loss_fn = make_objective("opo", **_hparams(options))
    ref = pi.log()[actions][None]
    rewards = adv[actions][None]
    x, path = torch.zeros_like(pi), []
    for _ in range(iterations):
        x = x.detach().requires_grad_(True)
        logp = _logp(x[actions], ref[0], options["ratio"])[None]
        loss, _ = loss_fn(GroupBatch.from_sequences(logp, rewards, ref, ref))
        (grad,) = torch.autograd.grad(loss, x)
        x = (x - eta * grad / pi).detach()
        path.append(x)
    return x, path


def _inner(pi: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """<a, b> in L2(pi_k): E_{pi_k}[a b] over the last axis."""
    return (pi * a * b).sum(-1)


def plane(pi: Tensor, v_star: Tensor) -> Tensor:
    """An L2(pi_k)-orthonormal basis (2, K) of a plane in the tangent space E_{pi_k}[v] = 0.

    e1 = v* / |v*|; e2 is the centred indicator of the most likely action, orthogonalised
    against e1 (both are centred, so the plane lies in the tangent space).
    """
    e1 = v_star / _inner(pi, v_star, v_star).sqrt()
    e2 = (torch.arange(len(pi)) == pi.argmax()).to(DTYPE)
    e2 = e2 - _inner(pi, e2, torch.ones_like(pi))
    e2 = e2 - _inner(pi, e2, e1) * e1
    return torch.stack([e1, e2 / _inner(pi, e2, e2).sqrt()])


def landscape(
    pi: Tensor, actions: Tensor, adv: Tensor, basis: Tensor, extent: float, alpha: float, mu: float
) -> pd.DataFrame:
    """The loss L_alpha and the dissipation energy (mu/2) E[v^2] on the plane ``basis`` (2, K),
    over coordinates a in [-0.75, 1.75] ``extent``, b in [-1.25, 1.25] ``extent``.

    The dissipation is the same objective at alpha = 1, where omega = 1 and the centred
    drive vanishes. Points where some v <= -1 (no policy) are left out.
    """
    a, b = torch.meshgrid(
        torch.linspace(-0.75 * extent, 1.75 * extent, GRID, dtype=DTYPE),
        torch.linspace(-1.25 * extent, 1.25 * extent, GRID, dtype=DTYPE),
        indexing="ij",
    )
    v = torch.stack([a.flatten(), b.flatten()], -1) @ basis
    keep = (v > -1).all(-1)
    v, a, b = v[keep], a.flatten()[keep], b.flatten()[keep]
    s = len(v)
    ref = pi.log()[actions].expand(s, 1, -1)
    logp = _logp(v[:, actions], ref[:, 0], "exact").unsqueeze(1)
    rewards = adv[actions].expand(s, 1, -1)

    def loss(at_alpha: float) -> Tensor:
        return per_seed_objective("opo", alpha=at_alpha, mu=mu, **_hparams(EQ10))(logp, rewards, ref, ref)

    return pd.DataFrame({"a": a, "b": b, "loss": loss(alpha).numpy(), "dissipation": loss(1.0).numpy()})


def compute(counts: tuple[int, ...] = COUNTS, advantages: tuple[float, ...] = ADVANTAGES) -> Tables:
    """Every number of OPO Fig. 1: tables response, variants, descent, landscape and summary."""
    defaults = get_objective("opo").defaults
    alpha, mu = float(defaults["alpha"]), float(defaults["mu"])
    with single_thread():
        pi, actions = policy(counts)
        adv = torch.tensor(advantages, dtype=DTYPE)
        omega = escort_closed_form(pi, adv, alpha, float(defaults["temperature"]))
        v_closed = (omega - 1.0) / mu
        responses, rows, path = {}, [], []
        for name, (description, options) in VARIANTS.items():
            x, iterates = descend(pi, actions, adv, options)
            v = x if options["ratio"] == "exact" else torch.expm1(x)
            responses[f"v_{name}"] = v.numpy()
            rows.append(
                {
                    "variant": name,
                    "description": description,
                    "mean_v": float(_inner(pi, v, torch.ones_like(v))),
                    "max_err": float((v - v_closed).abs().max()),
                }
            )
            path = iterates if name == "eq10" else path
        norm = float(_inner(pi, v_closed, v_closed).sqrt())
        basis = plane(pi, v_closed)
        grid = landscape(pi, actions, adv, basis, norm, alpha, mu)
        iterates = torch.stack(path)  # (M, K)
        coords = (pi * iterates) @ basis.T  # L2(pi_k) coordinates in the plane, (M, 2)
        dist = _inner(pi, iterates - v_closed, iterates - v_closed).sqrt()
    m = torch.arange(1, len(path) + 1)
    descent = pd.DataFrame(
        {
            "iteration": m.numpy(),
            "a": coords[:, 0].numpy(),
            "b": coords[:, 1].numpy(),
            "distance": dist.numpy(),
            "contraction": (abs(1 - ETA * mu) ** m.to(DTYPE) * norm).numpy(),
        }
    )
    response = pd.DataFrame(
        {"action": range(1, len(pi) + 1), "pi_k": pi, "advantage": adv, "omega": omega, "v_closed": v_closed}
    )
    variants = pd.DataFrame(rows)
    eq10 = variants.set_index("variant").loc["eq10"]
    values = {
        "alpha": alpha,
        "mu": mu,
        "eta": ETA,
        "iterations": ITERATIONS,
        "candidates": len(actions),
        "max_err": eq10["max_err"],
        "mean_v": eq10["mean_v"],
        "mean_omega": float(_inner(pi, omega, torch.ones_like(omega))),
        "min_v": float(v_closed.min()),
        "v_norm": norm,
        "rate": float(dist[RATE_AT - 1] / norm) ** (1.0 / RATE_AT),  # Cor. 8.2's |1 - eta mu|, above round-off
    }
    return {
        "response": response.assign(**responses),
        "variants": variants,
        "descent": descent,
        "landscape": grid,
        "summary": summary(values),
    }
