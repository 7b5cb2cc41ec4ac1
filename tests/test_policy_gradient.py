"""PPO/GRPO, DAPO, GSPO and TRPO surrogate: reference formulas, closed-form gradients, equivalences."""

import pytest
import torch

from geobench.objectives import GroupBatch, make_objective
from tests.conftest import random_batch


def grpo_reference(batch: GroupBatch, eps: float) -> torch.Tensor:
    """ADPO App. F Eq. (27), written as plain loops over contexts, candidates and tokens."""
    b, g, _ = batch.logp.shape
    total = 0.0
    for i in range(b):
        r = batch.rewards[i]
        adv = (r - r.mean()) / (r.std() + 1e-6)
        for j in range(g):
            n = int(batch.mask[i, j].sum())
            seq = 0.0
            for t in range(n):
                ratio = torch.exp(batch.logp[i, j, t] - batch.old[i, j, t])
                seq = seq + torch.minimum(ratio * adv[j], ratio.clamp(1 - eps, 1 + eps) * adv[j])
            total = total - seq / n
    return total / (b * g)


def test_grpo_matches_eq27_loss_and_gradient():
    batch = random_batch(spread=0.4)
    loss, metrics = make_objective("grpo", agg="seq-mean-token-mean")(batch)
    (grad,) = torch.autograd.grad(loss, batch.logp)
    ref = grpo_reference(batch, 0.2)
    (ref_grad,) = torch.autograd.grad(ref, batch.logp)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    assert torch.allclose(grad, ref_grad, atol=1e-7)
    assert 0 < metrics["clip_frac"].item() < 1  # the fixture reaches both sides of the window


def test_token_mean_gradient_closed_form():
    """d/dlogp_t of token-mean clip loss = -A r / N inside the window, 0 where clipped."""
    logp = torch.zeros(1, 2, 3, requires_grad=True)
    old = torch.tensor([[[0.0, -0.5, 0.5], [0.0, 0.1, -0.1]]])  # ratios 1, e^.5, e^-.5, 1, ...
    adv = torch.tensor([[1.0, -1.0]])
    batch = GroupBatch(logp=logp, mask=torch.ones(1, 2, 3), rewards=adv, old_logp=old, advantages=adv)
    loss, _ = make_objective("ppo", clip_low=0.2, clip_high=0.2)(batch)
    (grad,) = torch.autograd.grad(loss, logp)
    ratio = torch.exp(-old)
    a = adv.unsqueeze(-1).expand_as(ratio)
    inside = ~(((a > 0) & (ratio > 1.2)) | ((a < 0) & (ratio < 0.8)))
    expected = torch.where(inside, -a * ratio / 6, torch.zeros_like(ratio))
    assert torch.allclose(grad, expected, atol=1e-7)


def test_dapo_clip_higher_lets_positive_tokens_grow_further():
    logp = torch.zeros(1, 2, 1, requires_grad=True)
    old = torch.full((1, 2, 1), -0.22)  # ratio e^0.22 = 1.246: outside 1.2, inside 1.28
    adv = torch.tensor([[1.0, 1.0]])
    batch = GroupBatch(logp=logp, mask=torch.ones(1, 2, 1), rewards=adv, old_logp=old, advantages=adv)
    (g_grpo,) = torch.autograd.grad(make_objective("grpo")(batch)[0], logp)
    (g_dapo,) = torch.autograd.grad(make_objective("dapo")(batch)[0], logp)
    assert torch.all(g_grpo == 0)
    assert torch.all(g_dapo < 0)


def test_dual_clip_caps_negative_advantage_loss():
    logp = torch.full((1, 1, 1), 2.0, requires_grad=True)  # ratio e^2 = 7.4 > c = 3
    batch = GroupBatch(
        logp=logp,
        mask=torch.ones(1, 1, 1),
        rewards=torch.zeros(1, 1),
        old_logp=torch.zeros(1, 1, 1),
        advantages=torch.tensor([[-1.0]]),
    )
    loss, _ = make_objective("grpo", dual_clip=3.0)(batch)
    assert loss.item() == pytest.approx(3.0)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad.item() == 0.0
    plain, _ = make_objective("grpo")(batch)
    assert plain.item() == pytest.approx(torch.exp(torch.tensor(2.0)).item(), rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_gspo_equals_grpo_on_length_one_sequences(seed):
    batch = random_batch(b=4, g=5, t=1, seed=seed, spread=0.5)
    for agg in ("token-mean", "seq-mean-token-mean"):
        l_gspo, _ = make_objective("gspo", agg=agg)(batch)
        l_grpo, _ = make_objective("grpo", agg=agg)(batch)
        (g1,) = torch.autograd.grad(l_gspo, batch.logp)
        (g2,) = torch.autograd.grad(l_grpo, batch.logp)
        assert l_gspo.item() == pytest.approx(l_grpo.item(), abs=1e-7)
        assert torch.allclose(g1, g2, atol=1e-7)


def test_gspo_clips_whole_sequences_by_their_mean_log_ratio():
    logp = torch.zeros(1, 2, 4, requires_grad=True)
    # sequence 0: mean log-ratio 0.5 (clipped for A > 0) though one token ratio is < 1
    old = torch.tensor([[[-1.0, -1.0, -0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]])
    adv = torch.tensor([[1.0, 1.0]])
    batch = GroupBatch(logp=logp, mask=torch.ones(1, 2, 4), rewards=adv, old_logp=old, advantages=adv)
    (grad,) = torch.autograd.grad(make_objective("gspo")(batch)[0], logp)
    assert torch.all(grad[0, 0] == 0)
    assert torch.allclose(grad[0, 1], torch.full((4,), -1.0 / 8))


def test_trpo_surrogate_gradient_is_policy_gradient_at_old_policy(batch):
    """At pi = pi_old: d(-E[r A])/dlogp = -A / N for token-mean; KL and its gradient vanish."""
    on_policy = GroupBatch(logp=batch.logp, mask=batch.mask, rewards=batch.rewards)
    loss, metrics = make_objective("trpo")(on_policy)
    (grad,) = torch.autograd.grad(loss, batch.logp)
    adv = batch.rewards - batch.rewards.mean(-1, keepdim=True)
    expected = -adv.unsqueeze(-1) * batch.mask / batch.mask.sum()
    assert torch.allclose(grad, expected, atol=1e-7)
    assert metrics["kl"].item() == pytest.approx(0.0, abs=1e-7)
