"""SFT, KD, ADPO and the pairwise family: closed-form gradients, App. C optimum, App. D equivalence."""

import pytest
import torch
import torch.nn.functional as F

from geobench.objectives import GroupBatch, make_objective
from tests.conftest import random_batch


@pytest.mark.parametrize("tau", [0.25, 0.8, 2.0])
def test_adpo_top1_on_two_candidates_is_dpo_with_beta_one_over_tau(tau):
    """ADPO App. D: -log p~(y_w | {y_w, y_l}) = -log sigmoid(beta * margin), beta = 1 / tau."""
    batch = random_batch(b=5, g=2, t=4, seed=1)
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 2 + [[1.0, 0.0]])
    batch = GroupBatch(batch.logp, batch.mask, rewards, batch.old_logp, batch.ref_logp)
    l_adpo, _ = make_objective("adpo", tau=tau, target="top1")(batch)
    l_dpo, _ = make_objective("dpo", beta=1.0 / tau)(batch)
    (g_adpo,) = torch.autograd.grad(l_adpo, batch.logp)
    (g_dpo,) = torch.autograd.grad(l_dpo, batch.logp)
    assert l_adpo.item() == pytest.approx(l_dpo.item(), rel=1e-6)
    assert torch.allclose(g_adpo, g_dpo, atol=1e-7)
    # ... and the Plackett-Luce target reduces to the same thing on a pair.
    l_pl, _ = make_objective("adpo", tau=tau, target="plackett-luce")(batch)
    assert l_pl.item() == pytest.approx(l_dpo.item(), rel=1e-6)


def test_adpo_gradient_is_p_minus_q_over_tau(batch):
    """ADPO Eq. (13)-(14): dL/ds_i = (softmax(u)_i - q_i) / (tau B), on every token of y_i."""
    tau, beta_r = 0.7, 0.5
    loss, _ = make_objective("adpo", tau=tau, target="softmax", beta_r=beta_r, advantage="none")(batch)
    (grad,) = torch.autograd.grad(loss, batch.logp)
    u = (batch.seq_logp("policy") - batch.seq_logp("ref")).detach() / tau
    q = torch.softmax(batch.rewards / beta_r, -1)
    per_seq = (torch.softmax(u, -1) - q) / (tau * batch.logp.shape[0])
    assert torch.allclose(grad, per_seq.unsqueeze(-1) * batch.mask, atol=1e-7)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_adpo_optimum_is_reference_times_target_to_the_tau(tau):
    """ADPO App. C: the minimiser over a full outcome space is pi* ~ pi_ref * q^tau."""
    gen = torch.Generator().manual_seed(3)
    k = 6
    ref = torch.log_softmax(torch.randn(1, k, generator=gen, dtype=torch.float64), -1)
    rewards = torch.randn(1, k, generator=gen, dtype=torch.float64)
    theta = torch.zeros(1, k, dtype=torch.float64, requires_grad=True)
    loss_fn = make_objective("adpo", tau=tau, target="softmax", beta_r=1.0, advantage="none")
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        batch = GroupBatch.from_sequences(torch.log_softmax(theta, -1), rewards, ref_logp=ref)
        loss, _ = loss_fn(batch)
        loss.backward()
        return loss

    opt.step(closure)
    q = torch.softmax(rewards, -1)
    expected = torch.softmax(ref + tau * torch.log(q), -1)
    assert torch.allclose(torch.softmax(theta, -1).detach(), expected, atol=1e-8)


def test_sft_is_negative_log_likelihood_over_a_full_outcome_space():
    theta = torch.randn(4, 5, requires_grad=True)
    rewards = torch.zeros(4, 5)
    best = torch.tensor([0, 3, 2, 4])
    rewards[torch.arange(4), best] = 1.0
    loss, _ = make_objective("sft")(GroupBatch.from_sequences(torch.log_softmax(theta, -1), rewards))
    assert loss.item() == pytest.approx(F.cross_entropy(theta, best).item(), rel=1e-6)


def test_kd_gradient_is_student_minus_teacher():
    s = torch.log_softmax(torch.randn(3, 4), -1).requires_grad_(True)
    scores = torch.randn(3, 4)
    loss, _ = make_objective("kd", temperature=2.0)(GroupBatch.from_sequences(s, scores))
    (grad,) = torch.autograd.grad(loss, s)
    expected = (torch.softmax(s.detach(), -1) - torch.softmax(scores / 2.0, -1)) / 3
    assert torch.allclose(grad.squeeze(-1) if grad.dim() == 3 else grad, expected, atol=1e-7)


def test_dpo_gradient_closed_form():
    """d/dDelta_w of -log sigmoid(beta (Delta_w - Delta_l)) = -beta sigmoid(-beta m)."""
    beta = 0.5
    logp = torch.tensor([[0.3, -0.2], [-1.0, 0.4]], requires_grad=True)
    ref = torch.tensor([[0.0, 0.1], [-0.5, 0.2]])
    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss, metrics = make_objective("dpo", beta=beta)(GroupBatch.from_sequences(logp, rewards, ref_logp=ref))
    (grad,) = torch.autograd.grad(loss, logp)
    delta = logp.detach() - ref
    m = delta[:, 0] - delta[:, 1]
    g_w = -beta * torch.sigmoid(-beta * m) / 2
    assert torch.allclose(grad, torch.stack([g_w, -g_w], -1), atol=1e-7)
    assert metrics["pair_accuracy"].item() == pytest.approx(0.5)


def test_dpo_soft_tends_to_dpo_and_adpo_pairwise_is_dpo_soft_with_beta_one_over_tau():
    batch = random_batch(b=3, g=4, t=2, seed=5)
    hard, _ = make_objective("dpo", beta=0.5)(batch)
    soft, _ = make_objective("dpo-soft", beta=0.5, label_temperature=1e-4)(batch)
    ties = (batch.rewards.unsqueeze(-1) == batch.rewards.unsqueeze(-2)).triu(1).sum().item()
    assert ties > 0  # tied pairs: hard DPO skips them, soft DPO gives them label 1/2
    untied = random_batch(b=3, g=4, t=2, seed=5)
    rewards = torch.arange(12.0).view(3, 4)[:, torch.randperm(4, generator=torch.Generator().manual_seed(0))]
    untied = GroupBatch(untied.logp, untied.mask, rewards, untied.old_logp, untied.ref_logp)
    hard, _ = make_objective("dpo", beta=0.5)(untied)
    soft, _ = make_objective("dpo-soft", beta=0.5, label_temperature=1e-4)(untied)
    assert soft.item() == pytest.approx(hard.item(), rel=1e-5)
    pair, _ = make_objective("adpo-pairwise", tau=2.0, beta_r=0.7, advantage="none")(batch)
    dsoft, _ = make_objective("dpo-soft", beta=0.5, label_temperature=0.7)(batch)
    assert pair.item() == pytest.approx(dsoft.item(), rel=1e-6)
