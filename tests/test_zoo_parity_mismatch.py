"""TIS and IcePop: GRPO exactly where the batch carries no rollout log-probs (every geobench experiment, which
samples with the trained policy), and verl 0.9.1's rollout correction where it does: its ``rollout_is`` token
weights (called) on its vanilla policy loss (called), loss and gradient within 1e-5 in every aggregation mode;
TRL 1.16's token_truncate / token_mask weights restated; closed forms on a hand-built batch.
"""

import pytest
import torch

from geobench.errors import ConfigError
from geobench.objectives import AGG_MODES, GroupBatch, make_objective
from geobench.objectives.zoo_mismatch import RolloutBatch
from tests.test_zoo_parity_sampled import config, core_algos, double_batch, flat, token_adv

rollout_corr = pytest.importorskip("verl.trainer.ppo.rollout_corr_helper")

TOL = 1e-5
SEEDS = range(3)
THRESHOLDS = {"tis": ({"is_cap": 2.0}, 2.0), "icepop": ({"icepop_low": 0.5, "icepop_high": 5.0}, "0.5_5.0")}


def with_rollout(batch: GroupBatch, spread: float | None, seed: int = 0) -> RolloutBatch:
    """``batch`` with rollout log-probs ``spread`` away from pi_old (0: pi_old's; None: no rollout log-probs)."""
    rollout = None
    if spread is not None:
        gen = torch.Generator().manual_seed(100 + seed)
        rollout = batch.old_logp + spread * torch.randn(batch.logp.shape, generator=gen, dtype=batch.logp.dtype)
    return RolloutBatch(
        batch.logp, batch.mask, batch.rewards, batch.old_logp, advantages=batch.advantages, rollout_logp=rollout
    )


@pytest.mark.parametrize("name", ["tis", "icepop"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("form", ["plain", "none", "same"])
def test_without_a_rollout_engine_tis_and_icepop_are_grpo_exactly(name, seed, mode, form):
    """A plain GroupBatch, a RolloutBatch without rollout log-probs, and one whose rollout log-probs are
    pi_old's: k = 1, so loss and gradient are GRPO's to the bit (the leaderboard's "same as grpo here")."""
    batch = double_batch(seed)
    if form != "plain":
        batch = with_rollout(batch, None if form == "none" else 0.0)
    ours, metrics = make_objective(name, agg=mode, dual_clip=3.0)(batch)
    grpo, _ = make_objective("grpo", agg=mode, dual_clip=3.0)(batch)
    assert torch.equal(ours, grpo)
    assert torch.equal(torch.autograd.grad(ours, batch.logp)[0], torch.autograd.grad(grpo, batch.logp)[0])
    assert metrics["mismatch_weight_mean"].item() == 1.0


@pytest.mark.parametrize("name", ["tis", "icepop"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
def test_the_correction_matches_verls_rollout_is_weights_on_its_vanilla_loss(name, seed, mode):
    batch = with_rollout(double_batch(seed), spread=0.8, seed=seed)
    hparams, threshold = THRESHOLDS[name]
    ours, _ = make_objective(name, agg=mode, dual_clip=3.0, **hparams)(batch)
    weights, _ = rollout_corr.compute_rollout_correction_weights(
        flat(batch.old_logp - batch.rollout_logp), flat(batch.mask), rollout_is="token", rollout_is_threshold=threshold
    )
    theirs_in = flat(batch.logp.detach()).clone().requires_grad_(True)
    theirs, _ = core_algos.compute_policy_loss_vanilla(
        flat(batch.old_logp), theirs_in, token_adv(batch), flat(batch.mask), mode, config(), rollout_is_weights=weights
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    g_ours = flat(torch.autograd.grad(ours, batch.logp)[0])
    assert torch.allclose(g_ours, torch.autograd.grad(theirs, theirs_in)[0], atol=TOL)
    # the correction is exercised: some weights are truncated / masked, and the gradient is not GRPO's
    k = (batch.old_logp - batch.rollout_logp).exp()[batch.mask > 0]
    assert ((k > 2.0) if name == "tis" else ((k < 0.5) | (k > 5.0))).any()
    grpo, _ = make_objective("grpo", agg=mode, dual_clip=3.0)(batch)
    assert not torch.allclose(g_ours, flat(torch.autograd.grad(grpo, batch.logp)[0]), atol=1e-3)


@pytest.mark.parametrize("name", ["tis", "icepop"])
@pytest.mark.parametrize("seed", SEEDS)
def test_the_correction_is_trls_token_truncate_and_token_mask(name, seed):
    """TRL: exp((log pi_old - log pi_vllm) mask), clamped at clip_max (token_truncate, default 3.0) or zeroed
    outside [clip_min, clip_max] (token_mask), times the per-token loss; 'bnpo'/'dapo' normalise by the tokens."""
    batch = with_rollout(double_batch(seed), spread=0.8, seed=seed)
    hparams = {"is_cap": 3.0} if name == "tis" else {"icepop_low": 0.5, "icepop_high": 5.0}
    ours, _ = make_objective(name, **hparams)(batch)
    k = ((batch.old_logp - batch.rollout_logp) * batch.mask).exp()
    weight = k.clamp(max=3.0) if name == "tis" else k.masked_fill((k < 0.5) | (k > 5.0), 0.0)
    r = (batch.logp - batch.old_logp).exp()
    a = batch.advantages.unsqueeze(-1)
    per_token = -torch.minimum(r * a, r.clamp(0.8, 1.2) * a) * weight
    theirs = (per_token * batch.mask).sum() / batch.mask.sum()
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    grads = torch.autograd.grad(ours, batch.logp, retain_graph=True)[0], torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(*grads, atol=TOL)


def test_the_weights_in_closed_form():
    """r = 1 on every token, so GRPO's per-token gradient is -A / N; the correction multiplies it by min(k, 2)
    (TIS) or by k inside [0.5, 5] and 0 outside (IcePop)."""
    k = torch.tensor([0.3, 1.5, 3.0, 6.0], dtype=torch.float64).reshape(1, 4, 1)
    logp = torch.full_like(k, -1.0).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]], dtype=torch.float64)
    batch = RolloutBatch(
        logp, torch.ones_like(k), torch.zeros_like(adv), logp.detach(), advantages=adv, rollout_logp=-1.0 - k.log()
    )
    expected = {"tis": [0.3, 1.5, 2.0, 2.0], "icepop": [0.0, 1.5, 3.0, 0.0]}
    for name, weights in expected.items():
        loss, metrics = make_objective(name)(batch)
        grad = torch.autograd.grad(loss, batch.logp)[0].flatten()
        assert torch.allclose(grad, -adv.flatten() * torch.tensor(weights, dtype=torch.float64) / 4, atol=1e-12)
        assert loss.item() == pytest.approx(-(adv.flatten() * torch.tensor(weights, dtype=torch.float64)).mean().item())
    assert make_objective("tis")(batch)[1]["mismatch_truncated_frac"].item() == 0.5
    assert make_objective("icepop")(batch)[1]["mismatch_masked_frac"].item() == 0.5


def test_rollout_log_probs_of_another_shape_are_one_line():
    batch = double_batch(0)
    with pytest.raises(ConfigError, match=r"rollout_logp has shape \(3, 4, 5\), expected \(3, 4, 6\)") as err:
        RolloutBatch(batch.logp, batch.mask, batch.rewards, batch.old_logp, rollout_logp=batch.logp[..., :5].detach())
    assert "\n" not in str(err.value)
