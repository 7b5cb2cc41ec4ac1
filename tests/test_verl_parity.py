"""Parity with verl's reference implementations (``verl.trainer.ppo.core_algos``).

Identical random tensors — ragged masks, positive and negative advantages, ratios inside
and outside the clip window — go to geobench and to verl; losses and gradients must agree
to 1e-6. Skipped where verl is not installed (`make test` installs it: the `verl` extra).
"""

import numpy as np
import pytest
import torch

core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
actor_config = pytest.importorskip("verl.workers.config").ActorConfig

from geobench.objectives import AGG_MODES, GroupBatch, aggregate, group_advantages, make_objective  # noqa: E402

B, G, T = 3, 4, 7


def tensors(seed: int):
    """(B, G, T) log-probs with ragged masks; old log-probs 0.4 away so many ratios leave the window."""
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, G, T, generator=gen, dtype=torch.float64) * 3
    old = logp + 0.4 * torch.randn(B, G, T, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (B, G), generator=gen)
    mask = (torch.arange(T) < lengths.unsqueeze(-1)).double()
    rewards = torch.randint(0, 3, (B, G), generator=gen).double()
    return logp, old, mask, rewards


def config(clip_low: float, clip_high: float, dual_clip: float):
    return actor_config(
        strategy="fsdp",
        clip_ratio=clip_low,
        clip_ratio_low=clip_low,
        clip_ratio_high=clip_high,
        clip_ratio_c=dual_clip,
        ppo_micro_batch_size_per_gpu=1,
        ppo_mini_batch_size=4,
        rollout_n=G,
    )


def flat(x: torch.Tensor) -> torch.Tensor:
    """(B, G, T) -> (B G, T): verl's rows are the batch's sequences."""
    return x.reshape(B * G, -1)


@pytest.mark.parametrize("seed", range(4))
def test_group_zscore_advantages_match_compute_grpo_outcome_advantage(seed):
    _, _, mask, rewards = tensors(seed)
    token_rewards = torch.zeros(B * G, T, dtype=torch.float64)
    token_rewards[:, 0] = rewards.flatten()
    index = np.repeat(np.arange(B), G)
    for norm in (True, False):
        theirs, _ = core_algos.compute_grpo_outcome_advantage(
            token_rewards, flat(mask), index, norm_adv_by_std_in_grpo=norm
        )
        ours = group_advantages(rewards, "zscore" if norm else "mean")
        assert torch.allclose(flat(ours.unsqueeze(-1) * mask), theirs, atol=1e-6)


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregation_matches_agg_loss(mode):
    logp, _, mask, _ = tensors(1)
    mask[0, 0] = 0.0  # an empty sequence
    theirs = core_algos.agg_loss(flat(logp), flat(mask), mode)
    assert aggregate(logp, mask, mode).item() == pytest.approx(theirs.item(), abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("clip_low, clip_high, dual_clip", [(0.2, 0.2, 3.0), (0.2, 0.28, 3.0), (0.2, 0.28, 1e9)])
def test_clipped_surrogate_matches_compute_policy_loss_vanilla(seed, mode, clip_low, clip_high, dual_clip):
    logp, old, mask, rewards = tensors(seed)
    adv = group_advantages(rewards, "zscore")
    ours_in = logp.clone().requires_grad_(True)
    theirs_in = flat(logp).clone().requires_grad_(True)
    batch = GroupBatch(logp=ours_in, mask=mask, rewards=rewards, old_logp=old, advantages=adv)
    ours, metrics = make_objective(
        "grpo", clip_low=clip_low, clip_high=clip_high, dual_clip=None if dual_clip > 1e8 else dual_clip, agg=mode
    )(batch)
    theirs, their_metrics = core_algos.compute_policy_loss_vanilla(
        flat(old),
        theirs_in,
        flat(adv.unsqueeze(-1).expand(B, G, T)),
        flat(mask),
        mode,
        config(clip_low, clip_high, dual_clip),
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    (g_ours,) = torch.autograd.grad(ours, ours_in)
    (g_theirs,) = torch.autograd.grad(theirs, theirs_in)
    assert torch.allclose(flat(g_ours), g_theirs, atol=1e-6)
    assert metrics["clip_frac"].item() > 0  # the window is exercised


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mode", ["seq-mean-token-mean", "token-mean"])
def test_gspo_matches_compute_policy_loss_gspo(seed, mode):
    logp, old, mask, rewards = tensors(seed)
    adv = group_advantages(rewards, "zscore")
    ours_in = logp.clone().requires_grad_(True)
    theirs_in = flat(logp).clone().requires_grad_(True)
    batch = GroupBatch(logp=ours_in, mask=mask, rewards=rewards, old_logp=old, advantages=adv)
    ours, _ = make_objective("gspo", agg=mode)(batch)
    theirs, _ = core_algos.compute_policy_loss_gspo(
        flat(old), theirs_in, flat(adv.unsqueeze(-1).expand(B, G, T)), flat(mask), mode, config(0.2, 0.2, 3.0)
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    (g_ours,) = torch.autograd.grad(ours, ours_in)
    (g_theirs,) = torch.autograd.grad(theirs, theirs_in)
    assert torch.allclose(flat(g_ours), g_theirs, atol=1e-6)
