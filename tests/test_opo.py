"""OPO: escort weights (Eq. 7), the loss gradient, and the v-space contraction of Thm 4.3 / Cor. 8.2."""

import pytest
import torch

from geobench.objectives import GroupBatch, make_objective
from geobench.objectives.opo import escort_weights
from tests.conftest import random_batch


def escort_reference(adv, ref_seq, alpha):
    """omega ~ (exp(A) / pi_ref)^(1 - alpha) (Prop. 4.2), normalised to mean 1 per group, in float64."""
    raw = torch.exp((1 - alpha) * adv.double()) * torch.exp(ref_seq.double()) ** (-(1 - alpha))
    return raw / raw.mean(-1, keepdim=True)


@pytest.mark.parametrize("alpha", [0.0, 0.4, 0.75, 1.0])
def test_escort_weights_match_eq7(alpha):
    gen = torch.Generator().manual_seed(0)
    adv = torch.randn(3, 6, generator=gen)
    ref_seq = -torch.rand(3, 6, generator=gen) * 5
    w = escort_weights(adv, ref_seq, alpha, "group", use_ref=True)
    assert torch.allclose(w.double(), escort_reference(adv, ref_seq, alpha), rtol=1e-5)
    wb = escort_weights(adv, ref_seq, alpha, "batch", use_ref=True)
    assert wb.mean().item() == pytest.approx(1.0, rel=1e-6)
    if alpha == 1.0:  # conservative end of the e-geodesic: omega -> 1
        assert torch.allclose(w, torch.ones_like(w))


def test_escort_weights_stay_finite_for_long_sequences():
    adv = torch.tensor([[1.0, -1.0, 0.5]])
    ref_seq = torch.tensor([[-900.0, -1200.0, -1000.0]])  # pi_ref^-(1-alpha) would overflow float32
    w = escort_weights(adv, ref_seq, 0.4, "group", use_ref=True)
    assert torch.isfinite(w).all() and w.sum().item() == pytest.approx(3.0, rel=1e-6)


def test_opo_gradient_is_mu_delta_minus_w(batch):
    """d/dDelta of (1/N) sum [-w Delta + mu/2 Delta^2] = (mu Delta - w) / N on every token."""
    mu, alpha = 1.7, 0.4
    loss, _ = make_objective("opo", alpha=alpha, mu=mu)(batch)
    (grad,) = torch.autograd.grad(loss, batch.logp)
    adv = batch.advantage("zscore")
    w = escort_weights(adv, batch.seq_logp("ref"), alpha, "batch", use_ref=True)
    w = w - w.mean(-1, keepdim=True)
    delta = (batch.seq_logp("policy") - batch.seq_logp("ref")).detach()
    per_seq = (mu * delta - w) / delta.numel()
    assert torch.allclose(grad, per_seq.unsqueeze(-1) * batch.mask, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.2, 0.6])
@pytest.mark.parametrize("mu, eta", [(1.0, 0.5), (2.0, 0.3), (2.0, 0.75)])
def test_gradient_descent_in_v_space_contracts_at_rate_one_minus_eta_mu(alpha, mu, eta):
    """Thm 4.3: v* = (omega - 1) / mu; Cor. 8.2: ||v_m - v*|| = |1 - eta mu|^m ||v_0 - v*||."""
    gen = torch.Generator().manual_seed(1)
    b, g = 2, 5
    ref = -torch.rand(b, g, generator=gen, dtype=torch.float64) * 2
    rewards = torch.randn(b, g, generator=gen, dtype=torch.float64)
    loss_fn = make_objective("opo", alpha=alpha, mu=mu, escort_norm="group", ratio="exact")
    omega = escort_reference(group_z(rewards), ref, alpha)
    v_star = (omega - 1) / mu
    assert (v_star > -1).all()  # Prop. 8.4's positivity condition, so log(1 + v) exists on the path
    v = torch.zeros(b, g, dtype=torch.float64)
    dist0 = (v - v_star).norm()
    for m in range(1, 9):
        v = v.requires_grad_(True)
        batch = GroupBatch.from_sequences(ref + torch.log1p(v), rewards, ref_logp=ref)
        loss, _ = loss_fn(batch)
        (grad,) = torch.autograd.grad(loss, v)
        v = (v - eta * v.numel() * grad).detach()  # the loss averages over N = B G sequences
        assert (v - v_star).norm().item() == pytest.approx(abs(1 - eta * mu) ** m * dist0.item(), rel=1e-9)


def group_z(rewards):
    return (rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True) + 1e-6)


def test_exact_ratio_and_log_surrogate_differ_by_the_drive_term_at_second_order():
    """Lemma A.1 bounds |v - Delta| <= delta^2 e^delta / 2, so the drive term -w v differs from
    -w Delta by -w Delta^2 / 2 + O(Delta^3): the two losses agree to first order only (the
    paper's "O(E[Delta^3])" holds for the quadratic term, not for the drive)."""
    base = random_batch(seed=2, spread=0.0)
    gen = torch.Generator().manual_seed(7)
    noise = torch.randn(base.ref.shape, generator=gen)
    for scale in (1e-2, 1e-3):
        logp = (base.ref + scale * noise).requires_grad_(True)
        b = GroupBatch(logp, base.mask, base.rewards, ref_logp=base.ref)
        exact, _ = make_objective("opo", ratio="exact")(b)
        approx, _ = make_objective("opo", ratio="log")(b)
        w = escort_weights(b.advantage("zscore"), b.seq_logp("ref"), 0.4, "batch", use_ref=True)
        w = w - w.mean(-1, keepdim=True)
        delta = (b.seq_logp("policy") - b.seq_logp("ref")).detach()
        leading = (-w * delta.square() / 2 + 0.5 * delta.pow(3)).mean()  # mu = 1
        remainder = (exact - approx).item() - leading.item()
        assert abs(remainder) < 2 * delta.abs().max().item() ** 3


def test_advantage_drive_without_centring_is_the_toy_objective():
    """drive='advantage', no centring, raw A: loss = -A Delta + mu/2 Delta^2, d/dz = mu z - A."""
    z = torch.linspace(-3, 3, 7, requires_grad=True)
    batch = GroupBatch.from_sequences(z.view(-1, 1), torch.ones(7, 1), ref_logp=torch.zeros(7, 1))
    loss, _ = make_objective("opo", mu=1.0, drive="advantage", advantage="none", center=False)(batch)
    (grad,) = torch.autograd.grad(loss, z)
    assert torch.allclose(grad * 7, z.detach() - 1.0, atol=1e-6)
