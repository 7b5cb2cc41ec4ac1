"""OPO: escort weights (Eq. 7), the loss gradient, the v-space contraction of Thm 4.3 / Cor. 8.2, the
authors' code form against a restatement of their fork, and v5."""

import pytest
import torch

from geobench.objectives import REGISTRY, GroupBatch, make_objective
from geobench.objectives.aggregation import Totals
from geobench.objectives.opo import AUTHORS_CODE, escort_weights, v5_drive
from tests.conftest import random_batch
from tests.reference_opo_authors import AUTHORS, authors_opo_loss, centred_advantages


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


# --- The authors' code form (drive="code") against tests/reference_opo_authors.py -------------

# The fork's config key -> geobench's hyperparameter (booleans mapped below).
FORK_TO_GEOBENCH = {
    "alpha": "alpha",
    "opo_mu": "mu",
    "opo_direction_scale": "direction_scale",
    "tau": "tau",
    "beta_reward": "reward_temperature",
    "clip_anchored_score": "clip_score",
    "clip_log_ratio": "clip_log_ratio",
    "logit_reg_coef": "logit_reg",
    "use_adaptive_tau": "tau_adaptive",
    "adaptive_tau_alpha": "tau_entropy",
    "adaptive_tau_beta": "tau_reward",
    "adaptive_tau_min": "tau_min",
    "adaptive_tau_max": "tau_max",
    "vocab_size": "vocab_size",
}


def geobench_hparams(config):
    hparams = {ours: config[fork] for fork, ours in FORK_TO_GEOBENCH.items()}
    mean = config["use_length_normalization"]
    return {**hparams, "drive": "code", "advantage": "mean", "seq_logratio": "mean" if mean else "sum"}


def authors_case(seed):
    """A random batch in both layouts: ragged lengths, tied rewards, on- to far off-policy, varied config."""
    gen = torch.Generator().manual_seed(seed)
    pick = lambda options: options[int(torch.randint(len(options), (1,), generator=gen))]  # noqa: E731
    b, g, t = pick([1, 2, 3, 4]), pick([2, 3, 6]), pick([1, 3, 8, 12])
    logp = -torch.rand(b, g, t, generator=gen) * 4
    lengths = torch.randint(1, t + 1, (b, g), generator=gen)
    mask = (torch.arange(t) < lengths.unsqueeze(-1)).float()
    spread = pick([0.0, 0.1, 1.0, 4.0])  # 0: on-policy; 4: far enough off for both clips to bind
    old = logp + spread * (torch.randn(b, g, t, generator=gen) + 2 * torch.randn(b, g, 1, generator=gen))
    levels = pick([2, 3])  # binary or three-valued rewards: ties within groups
    rewards = torch.randint(levels, (b, g), generator=gen).float() / (levels - 1)
    if pick([False, True]):
        rewards[0] = rewards[0, 0]  # a group with no reward spread
    config = {
        **AUTHORS,
        "num_generations": g,
        "alpha": pick([0.75, 0.4, 1.0]),
        "tau": pick([0.5, 0.2, 1.0, 0.1, 2.0]),  # 0.1 and 2.0: the adaptive tau hits its [0.2, 1.5] clamp
        "use_adaptive_tau": pick([True, False]),
        "use_length_normalization": pick([True, False]),
        "opo_direction_scale": pick([1.33, None]),
        "logit_reg_coef": pick([0.01, 0.0]),
        "vocab_size": pick([151936, 20]),  # 20: -s / log|V| leaves [0, 1] and the clamp binds
    }
    return logp, mask, old, rewards, config


def test_code_form_is_the_authors_loss_and_gradient_on_random_batches():
    """drive="code" against the restatement of wk222/verlm's OPO loss: 200 batches, loss and grad within 1e-5."""
    cover = {"log-ratio clip": 0, "score clip": 0, "tau clamp": 0, "tied group": 0}
    for seed in range(200):
        logp, mask, old, rewards, config = authors_case(seed)
        b, g, t = logp.shape
        ours = logp.clone().requires_grad_(True)
        loss, metrics = make_objective("opo", **geobench_hparams(config))(GroupBatch(ours, mask, rewards, old_logp=old))
        (grad,) = torch.autograd.grad(loss, ours)
        theirs = logp.view(b * g, t).clone().requires_grad_(True)
        flat = dict(old_log_prob=old.view(b * g, t), response_mask=mask.view(b * g, t), config=config)
        ref_loss, ref_tau = authors_opo_loss(theirs, advantages=centred_advantages(rewards), **flat)
        (ref_grad,) = torch.autograd.grad(ref_loss, theirs)
        assert abs(loss.item() - ref_loss.item()) < 1e-5, seed
        assert (grad.view(b * g, t) - ref_grad).abs().max().item() < 1e-5, seed
        assert metrics["tau"].item() == pytest.approx(ref_tau.item(), abs=1e-6)
        denom = mask.sum(-1).clamp(min=1) if config["use_length_normalization"] else 1.0
        raw = ((logp - old) * mask).sum(-1) / denom
        cover["log-ratio clip"] += bool((raw.abs() > config["clip_log_ratio"]).any())
        clipped = raw.clamp(-config["clip_log_ratio"], config["clip_log_ratio"])
        cover["score clip"] += bool((clipped.abs() / ref_tau > config["clip_anchored_score"]).any())
        bounds = torch.tensor([config["adaptive_tau_min"], config["adaptive_tau_max"]])
        cover["tau clamp"] += config["use_adaptive_tau"] and bool(torch.isclose(ref_tau, bounds).any())
        cover["tied group"] += bool((rewards.std(-1) == 0).any())
    assert min(cover.values()) >= 10, cover  # every clip and edge case is exercised, not just the smooth path


def test_code_form_micro_batch_shares_add_up_as_verl_accumulates_them():
    """With ``totals``, one-group micro-batches' losses add up to the mean of the authors' per-micro-batch
    losses (their adaptive tau and logit regulariser are statistics of the micro-batch, as in verl)."""
    logp, mask, old, rewards, config = authors_case(3)
    logp, mask, old, rewards = (x.repeat(3, *[1] * (x.dim() - 1)) for x in (logp, mask, old, rewards))
    old = old + torch.randn(old.shape, generator=torch.Generator().manual_seed(0))
    b, g, t = logp.shape
    config = {**config, "use_adaptive_tau": True, "logit_reg_coef": 0.01}
    loss_fn = make_objective("opo", **geobench_hparams(config))
    totals = Totals.of(mask)
    ours = logp.clone().requires_grad_(True)
    total = sum(
        loss_fn(GroupBatch(ours[i : i + 1], mask[i : i + 1], rewards[i : i + 1], old[i : i + 1], totals=totals))[0]
        for i in range(b)
    )
    theirs = logp.clone().requires_grad_(True)
    per_micro = [
        authors_opo_loss(theirs[i], old[i], centred_advantages(rewards[i : i + 1]), mask[i], config)[0]
        for i in range(b)
    ]
    accumulated = torch.stack(per_micro).mean()
    assert total.item() == pytest.approx(accumulated.item(), abs=1e-6)
    grads = torch.autograd.grad(total, ours)[0], torch.autograd.grad(accumulated, theirs)[0]
    assert torch.allclose(*grads, atol=1e-7)
    whole, _ = loss_fn(GroupBatch(logp, mask, rewards, old))
    assert abs(whole.item() - total.item()) > 1e-4  # so the split matters, as it does in verl


def test_opo_code_entry_carries_the_authors_configuration():
    """``opo-code`` = ``opo`` with drive="code" and the fork's opo_qwen3_math.yaml values as defaults."""
    defaults = REGISTRY["opo-code"].defaults
    assert REGISTRY["opo-code"].fn is REGISTRY["opo"].fn
    assert {ours: defaults[ours] for ours in FORK_TO_GEOBENCH.values()} == {
        ours: AUTHORS[fork] for fork, ours in FORK_TO_GEOBENCH.items()
    }
    assert (defaults["drive"], defaults["advantage"], defaults["seq_logratio"]) == ("code", "mean", "mean")
    assert REGISTRY["opo"].defaults["drive"] == "escort" and REGISTRY["opo"].defaults["alpha"] == 0.4
    batch = random_batch(b=2, g=6, seed=4)
    by_name, _ = make_objective("opo-code")(batch)
    by_hparams, _ = make_objective("opo", **AUTHORS_CODE)(batch)
    assert by_name.item() == by_hparams.item()


@pytest.mark.parametrize("name", ["opo-code", "opo-v5"])
def test_named_forms_are_pure_scalar_losses_with_detached_metrics(name):
    batch = random_batch(b=2, g=3, t=4, seed=11)
    loss_fn = make_objective(name)
    loss, metrics = loss_fn(loss_fn.prepare(batch))
    (grad,) = torch.autograd.grad(loss, batch.logp)
    assert loss.dim() == 0 and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert grad[batch.mask == 0].abs().sum() == 0
    assert all(not v.requires_grad and v.dim() == 0 for v in metrics.values())


# --- OPO v5 (arXiv 2601.12415v5): unnormalised escort, centred over the mini-batch ------------


def test_v5_loss_on_a_hand_computed_case():
    """alpha = 0.5, mu = 1, T = 1, one token per sequence, B = 2 groups of G = 2 (N = 4).

    Rewards (1, 0) and (1, 1) -> group-centred A = (0.5, -0.5), (0, 0) (v5: no std).
    log pi_ref = A - 2 ln k with k = (4, 1), (2, 1), so w~ = exp(0.5 A - 0.5 log pi_ref) = k:
    w~ = (4, 1, 2, 1), batch mean 2, g = w~ - 2 = (2, -1, 0, -1) (centred over all four, not
    per group: per group it would be (1.5, -1.5, 0.5, -0.5)).
    Delta = (0.5, 0, 1, -1): per-sequence -g Delta + Delta^2 / 2 = -0.875, 0, 0.5, -0.5,
    loss = -0.875 / 4 = -0.21875; dL/dDelta = (Delta - g) / 4 = (-0.375, 0.25, 0.25, 0).
    """
    adv = torch.tensor([[0.5, -0.5], [0.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[4.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    ref = adv - 2 * k.log()
    delta = torch.tensor([[0.5, 0.0], [1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    loss_fn = make_objective("opo-v5", alpha=0.5, mu=1.0)
    batch = GroupBatch.from_sequences(ref + delta, rewards, ref_logp=ref)
    prepared = loss_fn.prepare(batch)
    assert torch.allclose(prepared.drive, torch.tensor([[2.0, -1.0], [0.0, -1.0]], dtype=torch.float64))
    loss, _ = loss_fn(prepared)
    assert loss.item() == pytest.approx(-0.21875, abs=1e-12)
    (grad,) = torch.autograd.grad(loss, delta)
    assert torch.allclose(grad, torch.tensor([[-0.375, 0.25], [0.25, 0.0]], dtype=torch.float64))


def test_v5_drive_is_v4s_batch_centred_escort_scaled_by_the_mean_unnormalised_weight():
    """The scale does not cancel: g_v5 = mean(w~) (omega - 1), omega the batch-normalised (mean-1) escort."""
    batch = random_batch(b=3, g=4, t=6, seed=8)
    adv, ref = batch.advantage("mean"), batch.seq_logp("ref")
    g = v5_drive(adv, ref, 0.4, use_ref=True, temperature=1.0, center=True)
    w_bar = torch.exp(0.6 * (adv.double() - ref.double())).mean()
    omega = escort_weights(adv, ref, 0.4, "batch", use_ref=True).double()
    assert torch.allclose(g.double(), w_bar * (omega - 1.0), rtol=1e-5)
    assert w_bar.item() > 10  # already so for six tokens: v5's drive is v4's scaled up


def test_the_prepared_drive_is_the_losses_and_the_drive_refuses_a_key_it_does_not_take():
    """opo_prepare hands the drive its own hyperparameters only; a stray key is a TypeError, not ignored."""
    import inspect

    from geobench.objectives.opo import opo_drive

    batch = random_batch(b=2, g=4, seed=7)
    bound = make_objective("opo", alpha=0.3, escort_ref=False)
    prepared = bound.prepare(batch)
    hparams = {k: v for k, v in bound.hparams.items() if k in inspect.signature(opo_drive).parameters}
    assert torch.equal(prepared.drive, opo_drive(batch, **hparams))
    assert torch.allclose(bound(prepared)[0], bound(batch)[0])
    with pytest.raises(TypeError, match="mu"):
        opo_drive(batch, **hparams, mu=1.0)
