"""TRPO's natural-gradient step: conjugate gradient, direction F^-1 g, and the KL radius."""

import pytest
import torch

from geobench.errors import ConfigError
from geobench.objectives import GroupBatch, conjugate_gradient, make_objective, natural_gradient_step, sample_kl


def test_conjugate_gradient_solves_spd_system():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, 8, generator=gen, dtype=torch.float64)
    spd = a @ a.T + 0.5 * torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: spd @ v, b, iters=50, tol=1e-20)
    assert torch.allclose(x, torch.linalg.solve(spd, b), atol=1e-9)


def bandit_problem(seed=0, n=64, d=3, k=4):
    """A linear softmax policy, one sampled action per context; returns theta and batch(theta)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    theta = (0.1 * torch.randn(d, k, generator=gen, dtype=torch.float64)).requires_grad_(True)
    probs = torch.softmax(x @ theta.detach(), -1)
    actions = torch.multinomial(probs, 1, generator=gen)  # (n, 1)
    true_best = (x @ torch.randn(d, k, generator=gen, dtype=torch.float64)).argmax(-1, keepdim=True)
    rewards = (actions == true_best).double()
    old = torch.log_softmax(x @ theta.detach(), -1).gather(-1, actions)

    def batch(params=theta):
        logp = torch.log_softmax(x @ params, -1).gather(-1, actions)
        return GroupBatch.from_sequences(logp, rewards, old_logp=old)

    return theta, batch


@pytest.mark.parametrize("max_kl", [1e-3, 1e-2])
def test_step_stays_inside_kl_radius_and_improves_surrogate(max_kl):
    theta, batch = bandit_problem()
    loss_fn = make_objective("trpo", advantage="none")
    before = loss_fn(batch())[0].item()
    step = natural_gradient_step([theta], lambda: loss_fn(batch())[0], lambda: sample_kl(batch()), max_kl=max_kl)
    assert step.accepted
    kl = sample_kl(batch()).item()
    assert kl <= max_kl
    assert kl > 0.3 * max_kl  # the quadratic model is good here: most of the radius is used
    assert loss_fn(batch())[0].item() < before


def test_step_direction_is_natural_gradient():
    theta, batch = bandit_problem(seed=1)
    start = theta.detach().clone()
    loss_fn = make_objective("trpo", advantage="none")
    damping = 1e-3
    g = torch.autograd.grad(loss_fn(batch())[0], theta)[0].flatten()
    fisher = torch.autograd.functional.hessian(
        lambda t: sample_kl(batch(t)), theta.detach().clone()
    ).reshape(g.numel(), g.numel())
    expected = torch.linalg.solve(fisher + damping * torch.eye(g.numel(), dtype=g.dtype), -g)
    natural_gradient_step(
        [theta], lambda: loss_fn(batch())[0], lambda: sample_kl(batch()), max_kl=1e-4, damping=damping, cg_iters=50
    )
    moved = (theta.detach() - start).flatten()
    cosine = moved @ expected / (moved.norm() * expected.norm())
    assert cosine.item() > 0.999


def test_bad_radius_is_a_config_error():
    theta, batch = bandit_problem()
    with pytest.raises(ConfigError, match="max_kl"):
        natural_gradient_step([theta], lambda: batch().logp.sum(), lambda: sample_kl(batch()), max_kl=0.0)
