"""TRPO's natural-gradient step: conjugate gradient, direction F^-1 g, and the KL radius."""

import pytest
import torch

from geobench.errors import ConfigError
from geobench.objectives import GroupBatch, conjugate_gradient, make_objective, natural_gradient_step, sample_kl


def test_conjugate_gradient_solves_spd_systems_row_by_row():
    gen = torch.Generator().manual_seed(0)
    mats, rhs = [], []
    for _ in range(3):
        a = torch.randn(8, 8, generator=gen, dtype=torch.float64)
        mats.append(a @ a.T + 0.5 * torch.eye(8, dtype=torch.float64))
        rhs.append(torch.randn(8, generator=gen, dtype=torch.float64))
    stacked, b = torch.stack(mats), torch.stack(rhs)
    x = conjugate_gradient(lambda v: torch.einsum("spq,sq->sp", stacked, v), b, iters=50, tol=1e-20)
    assert torch.allclose(x, torch.linalg.solve(stacked, b), atol=1e-9)


def bandit_problem(seed=0, n=64, d=3, k=4):
    """A linear softmax policy, one sampled action per context.

    Returns flat parameters theta (1, d k) and loss/KL functions (S, d k) -> (S,).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    theta = 0.1 * torch.randn(d, k, generator=gen, dtype=torch.float64)
    actions = torch.multinomial(torch.softmax(x @ theta, -1), 1, generator=gen)  # (n, 1)
    true_best = (x @ torch.randn(d, k, generator=gen, dtype=torch.float64)).argmax(-1, keepdim=True)
    rewards = (actions == true_best).double()
    old = torch.log_softmax(x @ theta, -1).gather(-1, actions)
    surrogate = make_objective("trpo", advantage="none")

    def batch(flat_row):
        logp = torch.log_softmax(x @ flat_row.view(d, k), -1).gather(-1, actions)
        return GroupBatch.from_sequences(logp, rewards, old_logp=old)

    def loss_fn(flat):
        return torch.stack([surrogate(batch(row))[0] for row in flat])

    def kl_fn(flat):
        return torch.stack([sample_kl(batch(row)) for row in flat])

    return theta.reshape(1, -1), loss_fn, kl_fn


@pytest.mark.parametrize("max_kl", [1e-3, 1e-2])
def test_step_stays_inside_kl_radius_and_improves_surrogate(max_kl):
    theta, loss_fn, kl_fn = bandit_problem()
    new, step = natural_gradient_step(theta, loss_fn, kl_fn, max_kl=max_kl)
    assert step.accepted.all()
    kl = kl_fn(new).item()
    assert kl <= max_kl
    assert kl > 0.3 * max_kl  # the quadratic model is good here: most of the radius is used
    assert loss_fn(new).item() < loss_fn(theta).item()
    assert step.kl.item() == pytest.approx(kl)


def test_step_direction_is_natural_gradient():
    theta, loss_fn, kl_fn = bandit_problem(seed=1)
    damping = 1e-3
    point = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(point).sum(), point)
    fisher = torch.autograd.functional.hessian(lambda t: kl_fn(t.view(1, -1)).sum(), theta[0])
    expected = torch.linalg.solve(fisher + damping * torch.eye(g.numel(), dtype=g.dtype), -g[0])
    new, _ = natural_gradient_step(theta, loss_fn, kl_fn, max_kl=1e-4, damping=damping, cg_iters=50)
    moved = (new - theta)[0]
    cosine = moved @ expected / (moved.norm() * expected.norm())
    assert cosine.item() > 0.999


def test_batched_rows_equal_separate_steps():
    """S problems stepped together give each the update it gets alone (seeds stay independent)."""
    problems = [bandit_problem(seed=s) for s in range(3)]
    theta = torch.cat([p[0] for p in problems])

    def loss_fn(flat):
        return torch.cat([p[1](flat[i : i + 1]) for i, p in enumerate(problems)])

    def kl_fn(flat):
        return torch.cat([p[2](flat[i : i + 1]) for i, p in enumerate(problems)])

    together, step = natural_gradient_step(theta, loss_fn, kl_fn, max_kl=5e-3, cg_iters=30)
    for i, (row, f_loss, f_kl) in enumerate(problems):
        alone, _ = natural_gradient_step(row, f_loss, f_kl, max_kl=5e-3, cg_iters=30)
        assert torch.allclose(together[i], alone[0], atol=1e-10)
    assert step.accepted.shape == (3,)


def test_bad_radius_is_a_config_error():
    theta, loss_fn, kl_fn = bandit_problem()
    with pytest.raises(ConfigError, match="max_kl"):
        natural_gradient_step(theta, loss_fn, kl_fn, max_kl=0.0)
