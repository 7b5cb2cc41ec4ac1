"""The sampled-feedback zoo against its references: verl 0.9.1's policy losses and advantage estimators
(called), TRL 1.16's GRPO/RLOO loss types (restated from trl/trainer/grpo_trainer.py and rloo_trainer.py,
whose losses live inside the trainers), and closed forms where no reference exists.

Each comparison runs on conftest's ragged random batches in float64: loss and gradient within 1e-5,
in every aggregation mode the reference supports.
"""

import math

import numpy as np
import pytest
import torch

from geobench.objectives import AGG_MODES, GroupBatch, group_advantages, make_objective
from geobench.objectives.zoo_reinforce import loo_advantages
from tests.conftest import random_batch

core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
verl_config = pytest.importorskip("verl.workers.config")
trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer")

TOL = 1e-5
SEEDS = range(3)


def double_batch(seed: int, t: int = 6, advantages: bool = True, **extra) -> GroupBatch:
    """conftest's ragged batch in float64 with old log-probs 0.4 away (ratios leave every window)."""
    b = random_batch(b=3, g=4, t=t, seed=seed, spread=0.4)
    logp = b.logp.detach().double().requires_grad_(True)
    rewards = b.rewards.double()
    adv = group_advantages(rewards, "zscore") if advantages else None
    return GroupBatch(logp, b.mask.double(), rewards, b.old_logp.double(), advantages=adv, **extra)


def flat(x: torch.Tensor) -> torch.Tensor:
    """(B, G, T) -> (B G, T): verl's rows are the batch's sequences."""
    return x.reshape(-1, x.shape[-1])


def config(clip_low=0.2, clip_high=0.2, dual_clip=3.0, **policy_loss):
    return verl_config.ActorConfig(
        strategy="fsdp",
        clip_ratio=clip_low,
        clip_ratio_low=clip_low,
        clip_ratio_high=clip_high,
        clip_ratio_c=dual_clip,
        ppo_micro_batch_size_per_gpu=1,
        ppo_mini_batch_size=4,
        rollout_n=4,
        policy_loss=verl_config.PolicyLossConfig(**policy_loss),
    )


def token_adv(batch: GroupBatch) -> torch.Tensor:
    return flat(batch.advantages.unsqueeze(-1).expand_as(batch.logp))


def against_verl(name, hparams, verl_loss, mode, cfg, batch):
    """Our loss and gradient vs verl's policy loss ``verl_loss`` on the same tensors."""
    ours, _ = make_objective(name, **hparams)(batch)
    theirs_in = flat(batch.logp.detach()).clone().requires_grad_(True)
    theirs, _ = core_algos.get_policy_loss_fn(verl_loss)(
        flat(batch.old_logp), theirs_in, token_adv(batch), flat(batch.mask), mode, cfg
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    (g_ours,) = torch.autograd.grad(ours, batch.logp)
    (g_theirs,) = torch.autograd.grad(theirs, theirs_in)
    assert torch.allclose(flat(g_ours), g_theirs, atol=TOL)
    assert g_ours.abs().sum() > 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("horizon", [None, 16])
def test_dr_grpo_is_verls_vanilla_loss_with_token_sums_over_a_constant_horizon(seed, horizon):
    batch = double_batch(seed, advantages=False)
    batch = GroupBatch(
        batch.logp, batch.mask, batch.rewards, batch.old_logp, advantages=group_advantages(batch.rewards, "mean")
    )
    cfg = config()
    cfg.global_batch_info["loss_scale_factor"] = horizon
    against_verl("dr-grpo", {"horizon": horizon}, "vanilla", "seq-mean-token-sum-norm", cfg, batch)


@pytest.mark.parametrize("seed", SEEDS)
def test_dr_grpo_is_trls_dr_grpo_sum_over_sequences_times_max_completion_length(seed):
    batch = double_batch(seed)
    ours, _ = make_objective("dr-grpo", horizon=16)(batch)
    # TRL: -min(r A, clip(r) A) summed over real tokens / (number of sequences * max_completion_length)
    r = (batch.logp - batch.old_logp).exp()
    a = batch.advantages.unsqueeze(-1)
    per_token = -torch.minimum(r * a, r.clamp(0.8, 1.2) * a)
    theirs = (per_token * batch.mask).sum() / (12 * 16)
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    grads = torch.autograd.grad(ours, batch.logp, retain_graph=True)[0], torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(*grads, atol=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_dr_grpo_is_ppo_on_one_token_batches(seed):
    batch = double_batch(seed, t=1, advantages=False)
    ours, _ = make_objective("dr-grpo")(batch)
    ppo, _ = make_objective("ppo")(batch)
    assert ours.item() == pytest.approx(ppo.item(), abs=1e-12)
    long, _ = make_objective("dr-grpo")(double_batch(seed, advantages=False))
    assert long.item() != pytest.approx(make_objective("ppo")(double_batch(seed, advantages=False))[0].item())


@pytest.mark.parametrize("seed", SEEDS)
def test_bnpo_is_grpo_with_token_mean(seed):
    batch = double_batch(seed)
    against_verl("bnpo", {}, "vanilla", "token-mean", config(), batch)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("clip", [(0.4, 0.4), (0.1, 0.3)])
def test_gmpo_matches_verl_geo_mean_whose_clip_is_in_log_space(seed, clip):
    batch = double_batch(seed)
    against_verl("gmpo", {"clip_low": clip[0], "clip_high": clip[1]}, "geo_mean", "token-mean", config(*clip), batch)
    # the log-space window is exercised: some token log-ratios lie outside [-clip_low, clip_high]
    log_ratio = (batch.logp - batch.old_logp)[batch.mask > 0]
    assert ((log_ratio < -clip[0]) | (log_ratio > clip[1])).any()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
def test_cispo_verl_matches_verls_two_sided_clip(seed, mode):
    against_verl("cispo-verl", {"agg": mode}, "cispo", mode, config(0.2, 0.28), double_batch(seed))


@pytest.mark.parametrize("seed", SEEDS)
def test_cispo_trl_is_trls_one_sided_absolute_cap_and_differs_from_verls(seed):
    batch = double_batch(seed)
    ours, _ = make_objective("cispo-trl", weight_cap=1.1)(batch)
    r = (batch.logp - batch.old_logp).exp()
    theirs = (-r.clamp(max=1.1).detach() * batch.advantages.unsqueeze(-1) * batch.logp * batch.mask).sum()
    theirs = theirs / batch.mask.sum()
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    g_ours = torch.autograd.grad(ours, batch.logp)[0]
    assert torch.allclose(g_ours, torch.autograd.grad(theirs, batch.logp)[0], atol=TOL)
    # TRL's cap is absolute and one-sided; verl's window [0.8, 1.28] also lifts small weights
    verl_form, _ = make_objective("cispo-verl")(batch)
    assert not torch.allclose(g_ours, torch.autograd.grad(verl_form, batch.logp)[0], atol=1e-3)


@pytest.mark.parametrize("seed", SEEDS)
def test_sapo_matches_verl_and_trl(seed):
    batch = double_batch(seed)
    against_verl("sapo", {}, "sapo", "seq-mean-token-mean", config(), batch)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
def test_gpg_matches_verls_advantage_estimator_and_loss(seed, mode):
    batch = double_batch(seed, advantages=False)
    b, g, t = batch.logp.shape
    rewards = batch.rewards.clone()
    rewards[0] = 0.0  # an all-zero group: alpha = N / #nonzero counts it
    token_rewards = torch.zeros(b * g, t, dtype=torch.float64)
    token_rewards[:, 0] = rewards.flatten()
    adv, _ = core_algos.compute_gpg_outcome_advantage(token_rewards, flat(batch.mask), np.repeat(np.arange(b), g))
    ours_batch = GroupBatch(batch.logp, batch.mask, rewards, batch.old_logp)
    theirs_batch = GroupBatch(batch.logp, batch.mask, rewards, batch.old_logp, advantages=adv.view(b, g, t)[..., 0])
    ours, _ = make_objective("gpg", agg=mode)(ours_batch)
    theirs_in = flat(batch.logp.detach()).clone().requires_grad_(True)
    theirs, _ = core_algos.compute_policy_loss_gpg(
        flat(batch.old_logp), theirs_in, adv, flat(batch.mask), mode, config()
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    assert torch.allclose(flat(torch.autograd.grad(ours, batch.logp)[0]), torch.autograd.grad(theirs, theirs_in)[0])
    assert theirs_batch.advantages.abs().sum() > 0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", AGG_MODES)
def test_clip_cov_matches_verl_when_every_eligible_token_is_drawn(seed, mode):
    """verl draws the k tokens with randperm; ours with a fixed hash. With k >= the eligible count both take
    every eligible token, so loss and gradient agree whatever the draw."""
    batch = double_batch(seed)
    cfg = config(clip_cov_ratio=0.9, clip_cov_lb=0.0, clip_cov_ub=5.0)
    ours, metrics = make_objective("clip-cov", clip_cov_ratio=0.9, clip_cov_lb=0.0, agg=mode)(batch)
    theirs_in = flat(batch.logp.detach()).clone().requires_grad_(True)
    theirs, _ = core_algos.compute_policy_loss_clip_cov(
        flat(batch.old_logp), theirs_in, token_adv(batch), flat(batch.mask), mode, cfg
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    g_ours = flat(torch.autograd.grad(ours, batch.logp)[0])
    assert torch.allclose(g_ours, torch.autograd.grad(theirs, theirs_in)[0], atol=TOL)
    grpo, _ = make_objective("grpo", agg=mode)(batch)
    assert metrics["cov_dropped"] > 0
    assert not torch.allclose(g_ours, flat(torch.autograd.grad(grpo, batch.logp)[0]))  # some tokens were detached


@pytest.mark.parametrize("seed", range(4))
def test_clip_cov_drops_exactly_k_eligible_tokens_and_is_pure(seed):
    from geobench.objectives import clipped_surrogate
    from geobench.objectives.zoo_covariance import cov_scores

    batch = double_batch(seed)
    hparams = {"clip_cov_ratio": 0.1, "clip_cov_lb": 0.0}
    loss, metrics = make_objective("clip-cov", **hparams)(batch)
    grad = torch.autograd.grad(loss, batch.logp)[0]
    grpo, _ = make_objective("grpo")(batch)
    g_grpo = torch.autograd.grad(grpo, batch.logp)[0]
    dropped = (grad == 0) & (g_grpo != 0)  # the dropped tokens that had a gradient (A != 0)
    token_adv = batch.advantages.unsqueeze(-1).expand_as(batch.logp)
    _, clipped = clipped_surrogate((batch.logp - batch.old_logp).exp(), token_adv, 0.2, 0.2, None)
    cov = cov_scores(token_adv, batch.logp, batch.mask)
    k = max(1, int(0.1 * batch.mask.sum().item()))
    eligible = (cov > 0.0) & (cov < 5.0) & (batch.mask > 0) & ~clipped
    assert metrics["cov_dropped"].item() == min(k, eligible.sum().item())
    assert dropped.sum().item() <= metrics["cov_dropped"].item() and not (dropped & ~eligible).any()
    assert torch.equal(grad[~dropped], g_grpo[~dropped])
    again, _ = make_objective("clip-cov", **hparams)(batch)
    assert again.item() == loss.item()


@pytest.mark.parametrize("name", ["clip-cov", "kl-cov"])
def test_the_covariance_losses_run_per_seed_under_vmap_as_in_the_bandits(name):
    from geobench.objectives import per_seed_objective

    gen = torch.Generator().manual_seed(0)
    logp = torch.randn(3, 4, 5, generator=gen).log_softmax(-1).requires_grad_(True)  # (S, B, G)
    old = logp.detach() + 0.3 * torch.randn(3, 4, 5, generator=gen)
    rewards = torch.randint(0, 3, (3, 4, 5), generator=gen).float()
    hparams = {"clip_cov_ratio": 0.2, "clip_cov_lb": 0.0} if name == "clip-cov" else {"kl_cov_ratio": 0.2}
    losses = per_seed_objective(name, **hparams)(logp, rewards, old, old)
    for s in range(3):
        one = GroupBatch.from_sequences(logp[s], rewards[s], old_logp=old[s], ref_logp=old[s])
        assert losses[s].item() == pytest.approx(make_objective(name, **hparams)(one)[0].item(), abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
def test_kl_cov_matches_verl(seed, mode):
    batch = double_batch(seed)
    against_verl(
        "kl-cov",
        {"kl_cov_ratio": 0.2, "kl_coef": 0.7, "agg": mode},
        "kl_cov",
        mode,
        config(kl_cov_ratio=0.2, ppo_kl_coef=0.7),
        batch,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_rloo_matches_trls_rloo_trainer_and_verls_leave_one_out_baseline(seed):
    batch = double_batch(seed, advantages=False)
    b, g, t = batch.logp.shape
    token_rewards = torch.zeros(b * g, t, dtype=torch.float64)
    token_rewards[:, 0] = batch.rewards.flatten()
    verl_adv, _ = core_algos.compute_rloo_outcome_advantage(token_rewards, flat(batch.mask), np.repeat(np.arange(b), g))
    assert torch.allclose(flat(loo_advantages(batch.rewards).unsqueeze(-1) * batch.mask), verl_adv, atol=1e-12)
    ours, _ = make_objective("rloo")(batch)
    # TRL: baseline (sum_j R_j - R_i) / (G - 1); ratio exp(sum_t log r); -min(rho A, clip(rho) A), mean
    baseline = (batch.rewards.sum(-1, keepdim=True) - batch.rewards) / (g - 1)
    adv = batch.rewards - baseline
    rho = ((batch.logp - batch.old_logp) * batch.mask).sum(-1).exp()
    theirs = -torch.minimum(rho * adv, rho.clamp(0.8, 1.2) * adv).mean()
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    grads = torch.autograd.grad(ours, batch.logp, retain_graph=True)[0], torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(*grads, atol=TOL) and grads[0].abs().sum() > 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
def test_reinforce_pp_matches_verls_baseline_estimator_with_the_vanilla_loss(seed, mode):
    batch = double_batch(seed, advantages=False)
    b, g, t = batch.logp.shape
    token_rewards = torch.zeros(b * g, t, dtype=torch.float64)
    token_rewards[:, 0] = batch.rewards.flatten()
    index = np.repeat(np.arange(b), g)
    adv, _ = core_algos.compute_reinforce_plus_plus_baseline_outcome_advantage(token_rewards, flat(batch.mask), index)
    ours, _ = make_objective("reinforce-pp", agg=mode)(batch)
    theirs_in = flat(batch.logp.detach()).clone().requires_grad_(True)
    theirs, _ = core_algos.compute_policy_loss_vanilla(
        flat(batch.old_logp), theirs_in, adv, flat(batch.mask), mode, config()
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    assert torch.allclose(flat(torch.autograd.grad(ours, batch.logp)[0]), torch.autograd.grad(theirs, theirs_in)[0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
def test_dro_matches_verl(seed, mode):
    against_verl("dro", {"beta": 0.6, "agg": mode}, "dro", mode, config(dro_beta=0.6), double_batch(seed))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_opos_advantage_drive_limit_is_verls_dro_with_beta_mu_on_one_token_batches(seed, mu):
    """-A Delta + (mu/2) Delta^2 with Delta = log pi - log pi_ref, pi_ref = pi_old, T = 1: gradient
    (mu Delta - A) grad log pi, verl's dro with beta = mu. The losses differ by A log pi_old, a
    theta-constant, so gradients are compared."""
    batch = double_batch(seed, t=1)  # ref_logp None: the anchor is pi_old (on-policy)
    opo, _ = make_objective("opo", drive="advantage", mu=mu, center=False)(batch)
    dro, _ = make_objective("dro", beta=mu)(batch)
    g_opo = torch.autograd.grad(opo, batch.logp)[0]
    g_dro = torch.autograd.grad(dro, batch.logp)[0]
    assert torch.allclose(g_opo, g_dro, atol=TOL) and g_opo.abs().sum() > 0
    centred, _ = make_objective("opo", drive="advantage", mu=mu)(batch)  # z-scored A is already group-centred
    assert torch.allclose(torch.autograd.grad(centred, batch.logp)[0], g_dro, atol=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_kimi_kl_gradient_is_the_papers_update_in_closed_form(seed):
    """No public reference: d/d log pi_t of (1/N) sum_i (A_i - tau log r_i)^2 / (2 tau) is
    -(A_i - tau log r_i) / N on every real token of sequence i, 0 on padding."""
    batch = double_batch(seed, advantages=False)
    tau = 0.3
    loss, _ = make_objective("kimi-kl", tau=tau)(batch)
    adv = batch.rewards - batch.rewards.mean(-1, keepdim=True)
    log_r = ((batch.logp - batch.old_logp) * batch.mask).sum(-1)
    expected = -((adv - tau * log_r) / adv.numel()).unsqueeze(-1) * batch.mask
    assert torch.allclose(torch.autograd.grad(loss, batch.logp)[0], expected.detach(), atol=1e-12)
    assert loss.item() == pytest.approx(((adv - tau * log_r).square() / (2 * tau)).mean().item(), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spread", [0.05, 0.4])
def test_vespo_matches_trls_gamma_weights_and_normaliser(seed, spread):
    batch = double_batch(seed)
    if spread != 0.4:  # a batch near pi_old, where phi(w) ~ 1
        batch = GroupBatch(
            batch.logp,
            batch.mask,
            batch.rewards,
            batch.logp.detach() + spread * (batch.old_logp - batch.logp.detach()),
            advantages=batch.advantages,
        )
    ours, _ = make_objective("vespo")(batch)
    log_ratio = flat(batch.logp.detach() - batch.old_logp)
    adv = batch.advantages.reshape(-1, 1)
    phi = trl_grpo.GRPOTrainer.get_gamma_weights(adv, log_ratio, flat(batch.mask), None)  # (B G, 1)
    theirs = (-phi * adv * flat(batch.logp) * flat(batch.mask)).sum() / batch.mask.sum()
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    grads = torch.autograd.grad(ours, batch.logp, retain_graph=True)[0], torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(*grads, atol=TOL) and grads[0].abs().sum() > 0


def test_vespos_sequence_ratio_is_the_summed_log_ratio_not_gspos_mean():
    """phi(w) with w = exp(sum_t log r): on a sequence of T tokens of log-ratio d each, w = e^{T d}."""
    from geobench.objectives.zoo_reinforce import vespo_weights

    d, t = 0.1, 5
    phi = vespo_weights(torch.tensor([1.0]), torch.tensor([t * d]), 2.0, 3.0, 3.0, 2.0)
    w = math.exp(t * d)
    assert phi.item() == pytest.approx(math.exp(3.0 + 2.0 * math.log(w) - 3.0 * w), rel=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("name", ["dppo-tv", "dppo-kl"])
def test_dppo_matches_verl_and_drops_tokens_past_the_divergence_bound(name, mode, seed):
    batch = double_batch(seed)
    hparams = {"div_low": 0.05, "div_high": 0.1, "weight_cap": 1.3, "agg": mode}
    against_verl(name, hparams, name.replace("-", "_"), mode, config(0.05, 0.1, dual_clip=1.3), batch)
    _, metrics = make_objective(name, **hparams)(batch)
    assert 0 < metrics["clip_frac"].item() < 1


@pytest.mark.parametrize("seed", SEEDS)
def test_luspo_is_trls_sequence_level_loss_scaled_by_length(seed):
    batch = double_batch(seed)
    ours, _ = make_objective("luspo")(batch)
    # TRL, importance_sampling_level="sequence": rho = exp(mean_t log r) per sequence, -min(rho A, clip(rho) A)
    # broadcast over the sequence's tokens, summed per sequence, mean over sequences
    mask = batch.mask
    rho = (((batch.logp - batch.old_logp) * mask).sum(-1) / mask.sum(-1)).exp().unsqueeze(-1)
    a = batch.advantages.unsqueeze(-1)
    per_token = -torch.minimum(rho * a, rho.clamp(0.8, 1.2) * a)
    theirs = (per_token * mask).sum(-1).mean()
    assert ours.item() == pytest.approx(theirs.item(), abs=TOL)
    grads = torch.autograd.grad(ours, batch.logp, retain_graph=True)[0], torch.autograd.grad(theirs, batch.logp)[0]
    assert torch.allclose(*grads, atol=TOL) and grads[0].abs().sum() > 0


def test_the_group_std_epsilons_differ_between_trl_and_verl_on_a_low_spread_group():
    """geobench's z-score uses verl's 1e-6; TRL's GRPO adds 1e-4 (OpenRLHF 1e-9). On a group with std 1e-3
    the two differ by ~10 %: parity tests pass advantages explicitly rather than recomputing them."""
    rewards = torch.tensor([[1.0, 1.0, 1.0, 1.002]], dtype=torch.float64)
    ours = group_advantages(rewards, "zscore")
    centred, std = rewards - rewards.mean(-1, keepdim=True), rewards.std(-1, keepdim=True)
    assert torch.allclose(ours, centred / (std + 1e-6), atol=1e-12)
    assert not torch.allclose(ours, centred / (std + 1e-4), rtol=1e-2)
