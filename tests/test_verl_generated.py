"""The verl config is generated from the resolved LLMConfig the loop runs: field by field they agree;
OPO's mini-batch statistic is the same on verl's micro-batches as in the loop; DAPO's clip_low."""

import dataclasses
import json

import pytest
import torch

pytest.importorskip("verl")
pytest.importorskip("hydra")

from hydra import compose, initialize_config_module  # noqa: E402
from typer.testing import CliRunner  # noqa: E402
from verl.trainer.ppo.core_algos import get_policy_loss_fn  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass  # noqa: E402

import geobench.integrations.verl as verl_plugin  # noqa: E402
from geobench.cli.main import app  # noqa: E402
from geobench.integrations import verl_config  # noqa: E402
from geobench.integrations.verl_fields import FIELDS  # noqa: E402
from geobench.objectives import GroupBatch, get_objective, group_advantages  # noqa: E402


def composed(run: str, algo: str):
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(config_name="ppo_trainer", overrides=verl_config.overrides(run, algo))


def at(cfg, key: str):
    for part in key.lstrip("+").split("."):
        cfg = cfg[part]
    return cfg


def expected(config, algo: str) -> dict:
    """What each verl key must hold, written from the LLMConfig field by field (independently of FIELDS)."""
    hp = {**get_objective(algo).defaults, **dict(config.hparams.get(algo, {}))}
    actor = "actor_rollout_ref.actor"
    out = {
        "actor_rollout_ref.model.path": config.model,
        "data.train_batch_size": config.prompts_per_step,
        f"{actor}.ppo_mini_batch_size": config.prompts_per_step // config.minibatches,
        f"{actor}.ppo_epochs": config.epochs,
        "actor_rollout_ref.rollout.n": config.group,
        "data.max_response_length": config.max_new_tokens,
        "actor_rollout_ref.rollout.temperature": config.temperature,
        "actor_rollout_ref.rollout.top_p": config.top_p,
        f"{actor}.optim.lr": config.lr,
        f"{actor}.optim.lr_scheduler_type": config.lr_schedule,
        f"{actor}.optim.lr_warmup_steps_ratio": config.warmup_ratio,
        f"{actor}.optim.weight_decay": config.weight_decay,
        f"{actor}.optim.clip_grad": config.max_grad_norm,
        "trainer.total_training_steps": config.steps,
        "trainer.test_freq": config.eval_every,
        "algorithm.adv_estimator": "grpo",
        "algorithm.norm_adv_by_std_in_grpo": hp["advantage"] == "zscore",
        f"{actor}.policy_loss.loss_mode": {"grpo": "vanilla", "dapo": "vanilla", "gspo": "gspo"}.get(
            algo, f"geobench_{algo}"
        ),
        "reward.custom_reward_function.reward_kwargs.kind": config.reward,
        "reward.custom_reward_function.reward_kwargs.max_chars": config.max_new_tokens,
    }
    for ours, theirs in (("clip_low", "clip_ratio_low"), ("clip_high", "clip_ratio_high"), ("agg", "loss_agg_mode")):
        if ours in hp:
            out[f"{actor}.{theirs}"] = hp[ours]
    return out


RUNS = [(run, algo) for run in verl_config.runs() for algo in verl_config.algos_of(run)]


@pytest.mark.parametrize("run, algo", RUNS)
def test_generated_verl_config_is_the_loops_config_field_by_field(run, algo):
    config = verl_config.llm_config(run)
    cfg = composed(run, algo)
    want = expected(config, algo)
    assert {f.key.lstrip("+") for f in FIELDS} - {"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"} >= set(want)
    for key, value in want.items():
        assert at(cfg, key) == value, key
    micro = at(cfg, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu")
    assert micro % config.group == 0  # whole groups
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    if algo not in ("grpo", "dapo", "gspo"):  # geobench's loss gets the run's own hyperparameters
        own = {k: v for k, v in dict(config.hparams.get(algo, {})).items() if k not in ("clip_low", "clip_high")}
        assert dict(actor.policy_loss.hparams) == own


def test_the_profiles_choices_reach_verl():
    opo = verl_config.llm_config("opo_table1")
    adpo = verl_config.llm_config("adpo_fig3")
    dapo = composed("opo_table1", "dapo").actor_rollout_ref.actor
    assert (dapo.clip_ratio_low, dapo.clip_ratio_high) == (0.0, 0.28)  # the authors' DAPO config (item 1)
    assert "opo-code" in opo.algos and not opo.opo_adaptive_tau  # item 2, item 3
    assert (opo.lr_schedule, opo.weight_decay) == ("constant", 0.01)  # verl's defaults, the authors' engine
    grpo = composed("adpo_fig3", "grpo").actor_rollout_ref.actor
    assert grpo.loss_agg_mode == "seq-mean-token-mean" and grpo.optim.lr_scheduler_type == "cosine"
    assert (adpo.adpo_tau_rule, adpo.adpo_tau_entropy, adpo.adpo_tau_reward) == ("entropy-reward", 0.2, 0.5)
    assert verl_config.departures_of("adpo_fig3", "adpo") and not verl_config.departures_of("opo_table1", "opo")


def _verl_call(loss_mode, old, logp, adv, mask, config):
    return get_policy_loss_fn(loss_mode)(
        old_log_prob=old,
        log_prob=logp,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode=config.loss_agg_mode,
        config=config,
        rollout_is_weights=None,
    )


def _mini_batch(seed: int, groups: int, g: int, t: int = 5):
    gen = torch.Generator().manual_seed(seed)
    n = groups * g
    lengths = torch.randint(1, t + 1, (n,), generator=gen)
    mask = (torch.arange(t) < lengths.unsqueeze(-1)).float()
    logp = (-torch.rand(n, t, generator=gen) * 2).requires_grad_(True)
    old = logp.detach() + 0.1 * torch.randn(n, t, generator=gen)
    rewards = torch.randint(0, 2, (groups, g), generator=gen).float()
    rewards[:, 0] = 1 - rewards[:, 1]  # every group carries signal
    adv = group_advantages(rewards, "zscore").reshape(n, 1).expand(n, t) * mask
    return old, logp, adv, mask, rewards


def test_opo_escort_over_verls_micro_batches_equals_the_loops_mini_batch(monkeypatch):
    config = omega_conf_to_dataclass(composed("opo_table1", "opo").actor_rollout_ref.actor)
    g = config.rollout_n
    old, logp, adv, mask, rewards = _mini_batch(0, 4, g)
    # The loop: prepare over the whole mini-batch, the loss on it (accumulate_gradients is exactly this).
    bound = get_objective("opo").bind(alpha=0.4, mu=1.0)
    shape = (4, g, logp.shape[-1])
    whole = GroupBatch(logp.view(shape), mask.view(shape), rewards, old_logp=old.view(shape))
    loop_loss, _ = bound(bound.prepare(whole))
    (loop_grad,) = torch.autograd.grad(loop_loss, logp)
    # verl: two data-parallel ranks of two groups each; each rank's loss is on its own rows, and the
    # gradients are averaged over ranks (FSDP). The gather hands each rank both ranks' inputs.
    pieces = [slice(0, 2 * g), slice(2 * g, 4 * g)]
    # verl 0.9's engine passes the global mini-batch counts; each rank's loss is its share x dp_size.
    info = {"dp_size": 2, "batch_num_tokens": int(mask.sum()), "global_batch_size": 4 * g}
    config = dataclasses.replace(config, global_batch_info=info)
    inputs = [verl_plugin.prepare_inputs(verl_plugin.group_batch(old[p], logp[p], adv[p], mask[p], g)) for p in pieces]
    grads = torch.zeros_like(logp)
    for rank, piece in enumerate(pieces):
        monkeypatch.setattr(verl_plugin, "_all_gather", lambda local: inputs)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda r=rank: r)
        loss, _ = _verl_call("geobench_opo", old[piece], logp[piece], adv[piece], mask[piece], config)
        (grad,) = torch.autograd.grad(loss, logp)
        grads += grad / len(pieces)
    assert torch.allclose(grads, loop_grad, atol=1e-6)
    # A micro-batch smaller than the GPU's share of the mini-batch is refused, naming the setting.
    monkeypatch.setattr(verl_plugin, "_all_gather", lambda local: [local])
    with pytest.raises(ValueError, match="ppo_micro_batch_size_per_gpu"):
        _verl_call("geobench_opo", old[pieces[0]], logp[pieces[0]], adv[pieces[0]], mask[pieces[0]], config)
    # Without the gather (each micro-batch normalised alone) the gradient is not the loop's.
    config = dataclasses.replace(config, global_batch_info={})
    monkeypatch.setattr(verl_plugin, "_all_gather", lambda local: [local])
    alone = torch.zeros_like(logp)
    for piece in pieces:
        loss, _ = _verl_call("geobench_opo", old[piece], logp[piece], adv[piece], mask[piece], config)
        alone += torch.autograd.grad(loss, logp)[0] / len(pieces)
    assert not torch.allclose(alone, loop_grad, atol=1e-4)


@pytest.mark.parametrize("algo", ["adpo", "grpo"])
def test_micro_batch_losses_under_verls_global_counts_add_up_to_the_mini_batch_loss(algo):
    # verl 0.9 sums the micro-batch gradients of a mini-batch: geobench's loss must be each one's share.
    run = "adpo_fig3"
    config = omega_conf_to_dataclass(composed(run, algo).actor_rollout_ref.actor)
    g = config.rollout_n
    old, logp, adv, mask, _ = _mini_batch(2, 4, g)
    whole, _ = _verl_call(f"geobench_{algo}", old, logp, adv, mask, config)
    info = {"dp_size": 1, "batch_num_tokens": int(mask.sum()), "global_batch_size": 4 * g}
    shared = dataclasses.replace(config, global_batch_info=info)
    parts = [slice(0, g), slice(g, 4 * g)]
    total = sum(_verl_call(f"geobench_{algo}", old[p], logp[p], adv[p], mask[p], shared)[0] for p in parts)
    assert torch.allclose(total, whole, atol=1e-6)
    grads = [torch.autograd.grad(v, logp)[0] for v in (total, whole)]
    assert torch.allclose(*grads, atol=1e-6)


def test_opo_code_tau_on_the_anchored_logits_is_the_same_under_verl_and_in_the_loop():
    config = omega_conf_to_dataclass(composed("opo_table1", "opo-code").actor_rollout_ref.actor)
    g = config.rollout_n
    old, logp, adv, mask, rewards = _mini_batch(1, 2, g)
    loss, metrics = _verl_call("geobench_opo-code", old, logp, adv, mask, config)
    shape = (2, g, logp.shape[-1])
    advantages = group_advantages(rewards, "zscore")
    loop = GroupBatch(logp.view(shape), mask.view(shape), rewards, old_logp=old.view(shape), advantages=advantages)
    expected, loop_metrics = get_objective("opo-code").bind()(loop)
    assert loop_metrics["tau"] != 0.5  # the adaptive tau acted (its base is 0.5)
    assert metrics["actor/geobench/tau"] == pytest.approx(float(loop_metrics["tau"]), abs=1e-6)
    assert torch.allclose(torch.autograd.grad(loss, logp)[0], torch.autograd.grad(expected, logp)[0], atol=1e-6)


@pytest.mark.parametrize("loss_mode", ["vanilla", "geobench_dapo"])
def test_dapo_clip_low_zero_stops_negative_advantage_tokens_below_ratio_one(loss_mode):
    # verl: clip_ratio_low is the epsilon below 1, ratio clipped to [1 - clip_low, 1 + clip_high]; with
    # A < 0 the loss max(-A r, -A clip(r)) takes the clipped branch for r < 1 - clip_low: no gradient.
    base = omega_conf_to_dataclass(composed("opo_table1", "dapo").actor_rollout_ref.actor)
    g = base.rollout_n
    ratio = torch.tensor([0.9, 1.1] + [1.0] * (g - 2)).log().unsqueeze(-1)  # (G, 1) one token each
    adv = torch.tensor([-1.0, -1.0] + [0.5] * (g - 2)).unsqueeze(-1)
    grads = {}
    for low in (0.0, 0.2):
        config = dataclasses.replace(base, clip_ratio_low=low)
        logp = torch.zeros(g, 1, requires_grad=True)
        loss, _ = _verl_call(loss_mode, logp.detach() - ratio, logp, adv, torch.ones(g, 1), config)
        grads[low] = torch.autograd.grad(loss, logp)[0].squeeze(-1)
    assert grads[0.0][0] == 0 and grads[0.2][0] != 0  # A < 0, r = 0.9: clipped at 1 - 0 = 1, inside 1 - 0.2
    assert grads[0.0][1] != 0 and grads[0.0][1] == grads[0.2][1]  # A < 0, r = 1.1: unclipped either way


def test_verl_data_and_command_on_a_math_fixture(tmp_path):
    rows = [
        {"problem": f"What is {i} + {i}?", "level": "Level 3", "type": "Algebra", "solution": f"\\boxed{{{2 * i}}}"}
        for i in range(1, 6)
    ]
    fixture = tmp_path / "math.jsonl"
    fixture.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    data = runner.invoke(
        app,
        [
            "verl",
            "data",
            "--run",
            "opo_table1",
            "--dataset",
            str(fixture),
            "--levels",
            "3",
            "--data-dir",
            str(tmp_path / "d"),
        ],
    )
    assert data.exit_code == 0, data.output
    assert (tmp_path / "d" / "opo_table1" / "train.parquet").exists()
    out = runner.invoke(
        app, ["verl", "command", "--run", "opo_table1", "--algo", "opo", "--data-dir", str(tmp_path / "d")]
    )
    assert out.exit_code == 0, out.output
    words = out.output.split()
    assert f"data.train_files={tmp_path / 'd' / 'opo_table1' / 'train.parquet'}" in words
    config = verl_config.llm_config("opo_table1")
    for key, value in expected(config, "opo").items():
        assert f"{'+' if key.startswith('reward.custom_reward_function.reward_kwargs') else ''}{key}={value}" in words


def test_loop_and_verl_give_opo_the_same_parameter_gradient_on_one_mini_batch(tiny_model, monkeypatch):
    """The loop: 4 groups, micro-batches of 1 group (accumulate_gradients). verl: 2 data-parallel
    ranks of 2 groups, each rank's loss through the plugin, gradients averaged over ranks."""
    from geobench.llm.model import load_policy
    from geobench.llm.train import accumulate_gradients
    from tests.test_llm_departures import _old, _ragged_rollouts

    model, tokenizer = load_policy(tiny_model)
    g = 3
    rolled = _ragged_rollouts(tokenizer, groups=4, g=g)
    rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    old = _old(model, rolled)
    params = list(model.parameters())

    def flat():
        return torch.cat([p.grad.flatten() for p in params if p.grad is not None]).clone()

    model.zero_grad(set_to_none=True)
    accumulate_gradients(model, get_objective("opo").bind(alpha=0.4, mu=1.0), rolled, rewards, old, torch.arange(4), 1)
    loop = flat()

    config = omega_conf_to_dataclass(composed("opo_table1", "opo").actor_rollout_ref.actor)
    config = dataclasses.replace(config, rollout_n=g)
    mask = rolled.completion_mask.float()
    adv = group_advantages(rewards, "zscore").reshape(-1, 1) * mask
    info = {"dp_size": 2, "batch_num_tokens": int(mask.sum()), "global_batch_size": 4 * g}
    config = dataclasses.replace(config, global_batch_info=info)
    pieces = [torch.arange(0, 2 * g), torch.arange(2 * g, 4 * g)]
    inputs = [verl_plugin.prepare_inputs(verl_plugin.group_batch(old[p], old[p], adv[p], mask[p], g)) for p in pieces]
    monkeypatch.setattr(verl_plugin, "_all_gather", lambda local: inputs)
    model.zero_grad(set_to_none=True)
    for rank, rows in enumerate(pieces):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda r=rank: r)
        logp, _ = rolled.logprobs(model, rows)
        loss, _ = _verl_call("geobench_opo", old[rows], logp, adv[rows], mask[rows], config)
        (loss / len(pieces)).backward()  # FSDP averages the ranks' gradients
    assert torch.allclose(flat(), loop, atol=1e-6, rtol=1e-5)
