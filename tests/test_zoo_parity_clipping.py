"""ASPO and BAPO, which neither TRL 1.16 nor verl 0.9.1 implements: closed forms on hand-built batches, and
the authors' recipes restated (ASPO's per-token loss from the Archer2.0 code, BAPO's Algorithm 1 as a literal
loop) on conftest's ragged random batches in float64, loss and gradient within 1e-5 in every aggregation mode.
"""

import pytest
import torch

from geobench.objectives import AGG_MODES, GroupBatch, aggregate, make_objective, per_seed_objective
from tests.test_zoo_parity_sampled import double_batch

TOL = 1e-5
SEEDS = range(3)


def one_token_batch(ratios, advantages) -> GroupBatch:
    """(1, G, 1) batch with the given ratios r = pi / pi_old and advantages, in float64."""
    r = torch.tensor(ratios, dtype=torch.float64).reshape(1, -1, 1)
    logp = torch.full_like(r, -1.0).requires_grad_(True)
    adv = torch.tensor([advantages], dtype=torch.float64)
    return GroupBatch(logp, torch.ones_like(r), torch.zeros_like(adv), logp.detach() - r.log(), advantages=adv)


def test_aspo_gradient_weights_in_closed_form():
    """-dL/dlog pi = A w / N: A > 0 takes min(1/r, c) below 1 + eps, 0 above; A < 0 takes min(r, c) above
    1 - eps, 0 below. The soft dual clip keeps weight c where PPO's would cut the gradient."""
    ratios = [0.2, 0.5, 1.1, 1.5, 0.5, 0.9, 2.0, 4.0]
    advantages = [1.0] * 4 + [-1.0] * 4
    batch = one_token_batch(ratios, advantages)
    loss, metrics = make_objective("aspo")(batch)
    weights = torch.tensor([3.0, 2.0, 1 / 1.1, 0.0, 0.0, 0.9, 2.0, 3.0], dtype=torch.float64)
    adv = torch.tensor(advantages, dtype=torch.float64)
    grad = torch.autograd.grad(loss, batch.logp)[0].flatten()
    assert torch.allclose(grad, -adv * weights / 8, atol=1e-12)
    values = torch.tensor([3.0, 2.0, 1 / 1.1, 1 / 1.2, 0.8, 0.9, 2.0, 3.0], dtype=torch.float64)
    assert loss.item() == pytest.approx((-adv * values).mean().item(), abs=1e-12)
    assert metrics["dual_clip_frac"].item() == pytest.approx(2 / 8)
    # GRPO pushes the positive token at r = 0.2 with weight 0.2; ASPO with c = 3
    grpo, _ = make_objective("grpo")(batch)
    assert torch.autograd.grad(grpo, batch.logp)[0].flatten()[0].item() == pytest.approx(-0.2 / 8)


def authors_aspo(batch: GroupBatch, clip_low: float, clip_high: float, c: float) -> torch.Tensor:
    """The Archer2.0 per-token ASPO loss restated: flipped ratio -A sg-scaled 1 / min(r, 1 + eps) for A > 0,
    -A max(r, 1 - eps) for A < 0, and -A c log pi where the weight passes c."""
    logp, adv = batch.logp, batch.advantages.unsqueeze(-1).expand_as(batch.logp)
    r = (logp - batch.old_logp).clamp(-20, 20).exp()
    neg_r = r.clamp(min=1 - clip_low)
    pos_r = r.clamp(max=1 + clip_high)
    neg = torch.where(neg_r > c, -adv * c * logp, -adv * neg_r)
    pos = torch.where(1 / pos_r > c, -adv * c * logp, -adv * (pos_r / pos_r.detach()) / pos_r.detach())
    return torch.where(adv < 0, neg, pos)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("c", [1.5, 1e3])
def test_aspo_matches_the_authors_loss(seed, mode, c):
    """Gradients agree everywhere; values too where no weight reaches c (c = 1e3), the authors writing the
    dual-clip branch as -A c log pi, a theta-constant away from our -A c."""
    batch = double_batch(seed)
    ours, _ = make_objective("aspo", clip_low=0.2, clip_high=0.28, dual_clip=c, agg=mode)(batch)
    theirs = aggregate(authors_aspo(batch, 0.2, 0.28, c), batch.mask, mode)
    g_ours = torch.autograd.grad(ours, batch.logp)[0]
    g_theirs = torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(g_ours, g_theirs, atol=TOL) and g_ours.abs().sum() > 0
    if c > 100:
        assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    else:  # the dual clip is exercised
        r = (batch.logp - batch.old_logp).exp()[batch.mask > 0]
        assert ((r < 1 / c) | (r > c)).any()


@pytest.mark.parametrize(
    "rho_target, bounds, grad",
    [
        # rho(1.2) = 1.2 / 3.05 < 0.4 <= rho(1.25) = 1.25 / 3.1: one c_high step; r = 2.5 stays clipped
        (0.4, (0.6, 1.25), [0.0, 0.85 / 3, 1.0 / 3]),
        # unreachable: c_high walks to 3.0 (36 steps), then c_low to 0.9 (15), cutting the r = 0.85 token
        (0.9, (0.9, 3.0), [-2.5 / 3, 0.0, 1.0 / 3]),
    ],
)
def test_bapo_walks_the_bounds_of_algorithm_1_in_closed_form(rho_target, bounds, grad):
    batch = one_token_batch([2.5, 0.85, 1.0], [1.0, -1.0, -1.0])
    loss, metrics = make_objective("bapo", rho_target=rho_target)(batch)
    assert metrics["clip_low_bound"].item() == pytest.approx(bounds[0], abs=1e-12)
    assert metrics["clip_high_bound"].item() == pytest.approx(bounds[1], abs=1e-12)
    pos = min(2.5, bounds[1])
    assert metrics["positive_share"].item() == pytest.approx(pos / (pos + max(0.85, bounds[0]) + 1.0), abs=1e-12)
    g = torch.autograd.grad(loss, batch.logp)[0].flatten()
    assert torch.allclose(g, torch.tensor(grad, dtype=torch.float64), atol=1e-12)


def algorithm_1(ratio, adv, mask, rho_target, a_low=0.6, b_low=0.9, a_high=1.2, b_high=3.0, d_high=0.05, d_low=0.02):
    """BAPO Algorithm 1 as the paper writes it, a while loop with Eq. 8's positive share."""

    def rho(c_low, c_high):
        pos = (adv.clamp(min=0) * ratio.clamp(max=c_high) * mask).sum()
        neg = ((-adv).clamp(min=0) * ratio.clamp(min=c_low) * mask).sum()
        return (pos / (pos + neg)).item()

    c_low, c_high = a_low, a_high
    while rho(c_low, c_high) < rho_target and c_low + d_low <= b_low + 1e-9:
        if c_high + d_high <= b_high + 1e-9:
            c_high += d_high
        else:
            c_low += d_low
    return c_low, c_high


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("rho_target", [0.3, 0.36, 0.6, 0.99])
def test_bapo_is_ppos_clip_at_the_bounds_of_the_literal_algorithm(seed, mode, rho_target):
    batch = double_batch(seed)
    ratio = (batch.logp - batch.old_logp).exp()
    adv = batch.advantages.unsqueeze(-1).expand_as(ratio)
    c_low, c_high = algorithm_1(ratio.detach(), adv, batch.mask, rho_target)
    ours, metrics = make_objective("bapo", rho_target=rho_target, agg=mode)(batch)
    assert metrics["clip_low_bound"].item() == pytest.approx(c_low, abs=1e-9)
    assert metrics["clip_high_bound"].item() == pytest.approx(c_high, abs=1e-9)
    theirs = aggregate(torch.maximum(-adv * ratio, -adv * ratio.clamp(c_low, c_high)), batch.mask, mode)
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    grads = torch.autograd.grad(ours, batch.logp)[0], torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(*grads, atol=TOL) and grads[0].abs().sum() > 0


def test_bapo_stops_where_the_share_is_met_and_otherwise_walks_both_bounds_to_their_ends():
    """The targets above reach the three outcomes (seed 0): met at the start, met during the c_high walk, never
    met. Raising c_low adds |A| max(r, c_low) to the negative sum, so it can only lower Eq. 8's share: once
    the walk reaches c_low it runs to b-."""
    batch = double_batch(0)
    states = []
    for target in (0.3, 0.36, 0.99):
        metrics = make_objective("bapo", rho_target=target)(batch)[1]
        states.append((metrics["clip_low_bound"].item(), metrics["clip_high_bound"].item(), metrics["positive_share"]))
    (low0, high0, share0), (low1, high1, share1), (low2, high2, share2) = states
    assert (low0, high0) == pytest.approx((0.6, 1.2)) and share0 >= 0.3
    assert low1 == pytest.approx(0.6) and 1.2 < high1 < 3.0 and share1 >= 0.36
    assert (low2, high2) == pytest.approx((0.9, 3.0)) and share2 < 0.99


@pytest.mark.parametrize("name, hparams", [("aspo", {}), ("bapo", {"rho_target": 0.7})])
def test_the_clipping_losses_run_per_seed_under_vmap_as_in_the_bandits(name, hparams):
    gen = torch.Generator().manual_seed(0)
    logp = torch.randn(3, 4, 5, generator=gen).log_softmax(-1).requires_grad_(True)  # (S, B, G)
    old = logp.detach() + 0.3 * torch.randn(3, 4, 5, generator=gen)
    rewards = torch.randint(0, 3, (3, 4, 5), generator=gen).float()
    losses = per_seed_objective(name, **hparams)(logp, rewards, old, old)
    for s in range(3):
        one = GroupBatch.from_sequences(logp[s], rewards[s], old_logp=old[s], ref_logp=old[s])
        assert losses[s].item() == pytest.approx(make_objective(name, **hparams)(one)[0].item(), abs=1e-6)
