"""The preference zoo against TRL 1.16: DPOTrainer's loss types and CPOTrainer's simpo / sigmoid + NLL.

TRL computes these losses inside ``DPOTrainer._compute_loss`` and ``CPOTrainer.cpo_loss`` from the
chosen and rejected completions' summed log-probs; the references below restate those formulas on
(chosen, rejected) tensors built pair by pair with plain loops (not geobench's pair index), on
conftest's ragged random batches with ties, in float64. Loss and gradient agree within 1e-5.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from geobench.objectives import GroupBatch, make_objective
from tests.conftest import random_batch

pytest.importorskip("trl")

TOL = 1e-5


def double_batch(seed: int, g: int = 4, t: int = 6) -> GroupBatch:
    b = random_batch(b=3, g=g, t=t, seed=seed, spread=0.5)
    logp = b.logp.detach().double().requires_grad_(True)
    return GroupBatch(logp, b.mask.double(), b.rewards.double(), b.old_logp.double(), b.ref_logp.double())


def trl_pairs(batch: GroupBatch, anchored: bool = True):
    """TRL's inputs, one row per decided pair: chosen/rejected summed log-probs (minus the reference's
    when ``anchored``) and completion lengths."""
    s = (batch.logp * batch.mask).sum(-1)
    ref = (batch.ref_logp * batch.mask).sum(-1)
    n = batch.mask.sum(-1)
    rows = []
    for b in range(s.shape[0]):
        for i in range(s.shape[1]):
            for j in range(i + 1, s.shape[1]):
                ri, rj = batch.rewards[b, i].item(), batch.rewards[b, j].item()
                if ri == rj:
                    continue
                w, lo = (i, j) if ri > rj else (j, i)
                rows.append((b, w, lo))
    assert rows, "the batch must have decided pairs"

    def pick(x, k):
        return torch.stack([x[row[0], row[k]] for row in rows])

    c, r = pick(s, 1), pick(s, 2)
    if anchored:
        c, r = c - pick(ref, 1), r - pick(ref, 2)
    return c, r, pick(n, 1), pick(n, 2)


# TRL 1.16 DPOTrainer._compute_loss, per pair (c, r: chosen / rejected log-ratios; nc, nr: lengths).
REFERENCES = {
    "ipo": lambda c, r, nc, nr, beta: (c / nc - r / nr - 1 / (2 * beta)) ** 2,
    "hinge": lambda c, r, nc, nr, beta: torch.relu(1 - beta * (c - r)),
    "nca-pair": lambda c, r, nc, nr, beta: (
        -F.logsigmoid(beta * c) - 0.5 * F.logsigmoid(-beta * c) - 0.5 * F.logsigmoid(-beta * r)
    ),
    "bco-pair": lambda c, r, nc, nr, beta: -F.logsigmoid(beta * c) - F.logsigmoid(-beta * r),
    "sppo-hard": lambda c, r, nc, nr, beta: (c - 0.5 / beta) ** 2 + (r + 0.5 / beta) ** 2,
    "apo-zero": lambda c, r, nc, nr, beta: 1 - torch.sigmoid(beta * c) + torch.sigmoid(beta * r),
    "apo-down": lambda c, r, nc, nr, beta: torch.sigmoid(beta * c) + 1 - torch.sigmoid(beta * (c - r)),
    "sigmoid-norm": lambda c, r, nc, nr, beta: -F.logsigmoid(beta * (c / nc - r / nr)),
}


def compare(ours, theirs, batch):
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    g_ours = torch.autograd.grad(ours, batch.logp, retain_graph=True)[0]
    g_theirs = torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(g_ours, g_theirs, atol=TOL) and g_ours.abs().sum() > 0
    assert g_ours[batch.mask == 0].abs().sum() == 0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta", [0.1, 0.7])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_dpo_loss_types_match_trl(name, beta, seed):
    batch = double_batch(seed)
    ours, _ = make_objective(name, beta=beta)(batch)
    compare(ours, REFERENCES[name](*trl_pairs(batch), beta).mean(), batch)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_robust_matches_trl_and_is_dpo_without_flips(seed, eps):
    batch = double_batch(seed)
    c, r, _, _ = trl_pairs(batch)
    m = 0.1 * (c - r)
    theirs = ((-(1 - eps) * F.logsigmoid(m) - (-eps * F.logsigmoid(-m))) / (1 - 2 * eps)).mean()
    compare(make_objective("robust", flip_rate=eps)(batch)[0], theirs, batch)
    no_flips, _ = make_objective("robust", flip_rate=0.0)(batch)
    assert no_flips.item() == pytest.approx(make_objective("dpo")(batch)[0].item(), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("eps", [1e-3, 0.2])
def test_exo_pair_matches_trl(seed, eps):
    batch = double_batch(seed)
    c, r, _, _ = trl_pairs(batch)
    x = 0.1 * (c - r)
    theirs = torch.sigmoid(x) * (F.logsigmoid(x) - math.log1p(-eps)) + torch.sigmoid(-x) * (
        F.logsigmoid(-x) - math.log(eps)
    )
    compare(make_objective("exo-pair", exo_epsilon=eps)(batch)[0], theirs.mean(), batch)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_discopop_matches_trl(seed, tau):
    batch = double_batch(seed)
    c, r, _, _ = trl_pairs(batch)
    x = 0.1 * (c - r)
    s = torch.sigmoid(x / tau)
    theirs = (-F.logsigmoid(x) * (1 - s) + torch.exp(-x) * s).mean()
    compare(make_objective("discopop", discopop_tau=tau)(batch)[0], theirs, batch)


@pytest.mark.parametrize("seed", range(3))
def test_simpo_matches_trls_cpo_trainer_simpo_and_ignores_the_reference(seed):
    batch = double_batch(seed)
    beta, gamma = 2.0, 1.0
    c, r, nc, nr = trl_pairs(batch, anchored=False)
    logits = (c / nc - r / nr) - gamma / beta  # CPOTrainer: average log-probs, logits - simpo_gamma / beta
    compare(make_objective("simpo")(batch)[0], (-F.logsigmoid(beta * logits)).mean(), batch)
    moved = GroupBatch(batch.logp, batch.mask, batch.rewards, batch.old_logp, batch.ref_logp + 1.0)
    assert make_objective("simpo")(moved)[0].item() == make_objective("simpo")(batch)[0].item()


@pytest.mark.parametrize("seed", range(3))
def test_cpo_matches_trls_cpo_trainer_on_one_pair_per_context(seed):
    """G = 2: TRL's batch of pairs. NLL = mean -log pi over the chosen completions' tokens."""
    batch = double_batch(seed, g=2)
    rewards = batch.rewards.clone()
    rewards[:, 0] = rewards[:, 1] + 1.0  # every context decided
    batch = GroupBatch(batch.logp, batch.mask, rewards, batch.old_logp, batch.ref_logp)
    c, r, nc, _ = trl_pairs(batch, anchored=False)
    theirs = (-F.logsigmoid(0.1 * (c - r))).mean() + 1.0 * (-c.sum() / nc.sum())
    compare(make_objective("cpo")(batch)[0], theirs, batch)


def test_no_decided_pair_is_a_zero_loss_with_zero_gradient():
    batch = double_batch(0)
    tied = GroupBatch(batch.logp, batch.mask, torch.ones_like(batch.rewards), batch.old_logp, batch.ref_logp)
    for name in [*REFERENCES, "robust", "exo-pair", "discopop", "simpo", "cpo"]:
        loss, _ = make_objective(name)(tied)
        assert loss.item() == 0.0
        assert torch.autograd.grad(loss, tied.logp, allow_unused=True)[0].abs().sum() == 0
