"""The LLM RL path against the papers: micro-batching, adaptive temperatures, sampler scoring, DAPO filtering."""

import math

import pytest
import torch

from geobench.errors import ConfigError
from geobench.llm.metrics import METRICS
from geobench.llm.rollout import HFRollout, Rollouts, SamplingSettings
from geobench.llm.settings import LLMConfig
from geobench.llm.temperatures import guard_confidence
from geobench.llm.train import accumulate_gradients, train_cell
from geobench.objectives import AGG_MODES, GroupBatch, candidate_confidence, get_objective, make_objective
from geobench.objectives.temperature import distinct_candidates
from tests.conftest import random_batch


@pytest.fixture(scope="module")
def policy(tiny_model):
    from geobench.llm.model import load_policy

    return load_policy(tiny_model)


def _ragged_rollouts(tokenizer, groups: int, g: int, seed: int = 0, truncated_rows=()) -> Rollouts:
    """B*G completions with ragged lengths 1..6 (rows in ``truncated_rows`` are full length, no EOS)."""
    gen = torch.Generator().manual_seed(seed)
    prompts = tokenizer([f"{i}+{i + 1}=" for i in range(groups)], return_tensors="pt", padding=True)
    ids = prompts["input_ids"].repeat_interleave(g, 0)
    n, t = groups * g, 6
    completion = torch.randint(len(tokenizer) // 2, len(tokenizer) - 1, (n, t), generator=gen)
    lengths = torch.randint(1, t + 1, (n,), generator=gen)
    truncated = torch.zeros(n, dtype=torch.bool)
    for row in truncated_rows:
        lengths[row], truncated[row] = t, True
    mask = (torch.arange(t) < lengths.unsqueeze(-1)).long()
    return Rollouts(ids, prompts["attention_mask"].repeat_interleave(g, 0), completion, mask, [""] * n, truncated, 0.0)


def _grads(policy, loss_fn, rolled, rewards, old, per_micro) -> torch.Tensor:
    policy.zero_grad(set_to_none=True)
    mini = torch.arange(rewards.shape[0])
    accumulate_gradients(policy, loss_fn, rolled, rewards, old, mini, per_micro)
    return torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None]).clone()


def _old(policy, rolled, spread=0.3, seed=1):
    """pi_old's log-probs, perturbed so that ratios leave 1 and the clip is active somewhere."""
    with torch.no_grad():
        logp, _ = rolled.logprobs(policy)
    noise = spread * torch.randn(logp.shape, generator=torch.Generator().manual_seed(seed))
    return logp + noise * rolled.completion_mask


@pytest.mark.parametrize("escort_norm", ["batch", "zscore", "group"])
def test_opo_gradient_does_not_depend_on_the_micro_batch_split(policy, escort_norm):
    """OPO Sec. 4.1 normalises omega over the mini-batch: 4 groups, micro-batches of 1, 2 or 4."""
    model, tokenizer = policy
    rolled = _ragged_rollouts(tokenizer, groups=4, g=3)
    rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    old = _old(model, rolled)
    loss_fn = make_objective("opo", escort_norm=escort_norm)
    whole = _grads(model, loss_fn, rolled, rewards, old, 4)
    for per_micro in (1, 2):
        assert torch.allclose(_grads(model, loss_fn, rolled, rewards, old, per_micro), whole, atol=1e-6, rtol=1e-5)
    # the test can tell: normalising omega per micro-batch (the old behaviour) changes the gradient
    if escort_norm != "group":
        per_group = make_objective("opo", escort_norm="group")
        assert not torch.allclose(_grads(model, per_group, rolled, rewards, old, 4), whole, atol=1e-6)


@pytest.mark.parametrize(
    ("algo", "hparams"),
    [("grpo", {"agg": mode}) for mode in AGG_MODES]
    + [("gspo", {}), ("opo", {}), ("adpo", {"tau": torch.tensor([0.3, 0.5, 0.8, 1.1])})],
)
def test_gradient_accumulation_equals_one_whole_mini_batch_pass(policy, algo, hparams):
    """Ragged lengths: the micro-batch losses are shares of the mini-batch loss, not prompt-weighted means."""
    model, tokenizer = policy
    rolled = _ragged_rollouts(tokenizer, groups=4, g=3, seed=2)
    rewards = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0], [1.0, 0.2, 0.0], [0.0, 0.0, 1.0]])
    old = _old(model, rolled, seed=3)
    loss_fn = make_objective(algo, **hparams)
    whole = _grads(model, loss_fn, rolled, rewards, old, 4)
    assert whole.abs().max() > 0
    for per_micro in (1, 3):  # 3 leaves a ragged last micro-batch of one group
        assert torch.allclose(_grads(model, loss_fn, rolled, rewards, old, per_micro), whole, atol=1e-6, rtol=1e-5)


def test_opo_adaptive_tau_moves_within_its_range_as_reward_improves():
    adaptive = LLMConfig().cell_recipe(get_objective("opo").recipe).temperature
    guard = adaptive.guard()
    assert adaptive.hparam == "temperature" and (guard.tau_min, guard.tau_max) == (0.2, 1.5)  # OPO Sec. 9.1's range
    mask = torch.ones(2, 4, 50)
    token_logp = torch.tensor([-0.05, -1.5, -2.5, -3.0]).view(1, 4, 1).expand(2, 4, 50)  # one candidate dominates
    c = guard_confidence(token_logp, mask, "token-mean")
    assert 0.2 < c < 1.0
    taus = [guard.step(c, r) for r in (0.2, 0.3, 0.45, 0.6, 0.75, 0.9)]
    assert taus[0] == 1.5  # no improvement yet: the tightest region
    assert all(0.2 <= tau <= 1.5 for tau in taus)
    assert all(b < a for a, b in zip(taus[1:], taus[2:], strict=False)) and taus[-1] < 1.2
    assert guard.step(c, 0.1) == 1.5  # reward falls: back to the tightest region
    # the objective reports the temperature it ran with
    _, metrics = make_objective("opo", temperature=taus[-1])(random_batch())
    assert float(metrics["tau"]) == pytest.approx(taus[-1])


def test_confidence_of_long_sequences_is_informative_when_length_normalised():
    """ADPO Eq. 12's c: sums of 400 token log-probs saturate the softmax over G; means do not."""
    per_token = torch.tensor([[-0.3, -0.6, -1.0, -1.4], [-0.5, -0.7, -1.2, -1.5]])  # similar per-token probabilities
    seq = per_token * 400
    lengths = torch.full_like(seq, 400)
    assert float(candidate_confidence(seq)) > 0.99  # the literal form: c ~ 1 for any policy
    c = float(candidate_confidence(seq, lengths))
    assert 0.02 < c < 0.5
    token_logp = per_token.unsqueeze(-1).expand(2, 4, 400)
    assert guard_confidence(token_logp, torch.ones_like(token_logp), "token-mean") == pytest.approx(c)
    assert guard_confidence(token_logp, torch.ones_like(token_logp), "sequence") > 0.99


def test_candidate_set_confidence_reads_a_converged_group_as_confident():
    """Sec. 5.1: "high c_t implies the model has converged to a mode". Counted G times, identical samples
    have equal log-probs and the literal form reads them as c = 0; over the distinct completions c = 1."""
    ids = torch.tensor([[[5, 6, 0], [5, 6, 0], [5, 6, 0]], [[5, 6, 0], [5, 6, 7], [5, 6, 9]]])
    mask = torch.tensor([[[1, 1, 0]] * 3, [[1, 1, 0], [1, 1, 1], [1, 1, 0]]])  # row 3's 9 is padding
    distinct = distinct_candidates(ids, mask)
    assert distinct.tolist() == [[True, False, False], [True, True, False]]
    seq = torch.tensor([[-2.0, -2.0, -2.0], [-1.0, -1.0 - math.log(3.0), -1.0]])
    assert float(candidate_confidence(seq[:1])) == pytest.approx(0.0, abs=1e-6)  # literal: 3 equal candidates
    c = candidate_confidence(seq, distinct=distinct)
    p = torch.tensor([0.75, 0.25])  # group 2's two distinct completions, e^-1 : e^-1 / 3
    expected = (1.0 + 1.0 + float((p * p.log()).sum()) / math.log(2.0)) / 2
    assert float(c) == pytest.approx(expected, abs=1e-6)
    token_logp = torch.zeros(2, 3, 3)
    token_logp[..., 0] = seq
    assert guard_confidence(token_logp, mask, "candidate-set", ids) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="token ids"):
        guard_confidence(token_logp, mask, "candidate-set")


def test_opo_authors_temperature_is_their_rule_on_the_escort_temperature():
    """T = clamp(T0 (1 + a h - b c r), 0.2, 1.5) with the authors' a 0.2, b 0.5: it rises when the batch's
    advantages are skewed low (r < 0) and falls when they are skewed high."""
    from geobench.llm.settings import AdaptiveTemperature
    from geobench.llm.temperatures import authors_temperature

    adaptive = LLMConfig(opo_tau_rule="authors").cell_recipe(get_objective("opo").recipe).temperature
    assert adaptive == AdaptiveTemperature("temperature", "authors", 0.2, 1.5)
    mask = torch.ones(1, 3, 4)
    token_logp = torch.full((1, 3, 4), -0.46)  # h = 0.46 / log 100 = 0.1, c = 0.9
    h = 0.46 / math.log(100)
    low = torch.tensor([[2.0, -1.0, -1.0]])  # normalised (1, 0, 0): mean 1/3, r = -1/3
    t = authors_temperature(1.0, token_logp, mask, low, adaptive, 100)
    assert t == pytest.approx(1.0 + 0.2 * h + 0.5 * (1 - h) / 3, abs=1e-6)
    assert authors_temperature(1.0, token_logp, mask, -low, adaptive, 100) < 1.0 < t
    assert authors_temperature(3.0, token_logp, mask, low, adaptive, 100) == pytest.approx(1.5)  # clamped


def test_opo_tau_rule_is_checked():
    with pytest.raises(ConfigError, match="opo_tau_rule must be one of guard, authors"):
        LLMConfig(opo_tau_rule="other")
    assert LLMConfig().opo_tau_rule == "guard" and LLMConfig().tau_confidence == "token-mean"  # the former readings


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 1.0), (1.0, 0.9), (0.7, 0.9)])
def test_trainer_scores_completions_under_the_samplers_processed_distribution(policy, temperature, top_p):
    """pi_old = the distribution HF generate sampled from (its processed scores), not the raw softmax."""
    from geobench.llm.model import completion_logprobs
    from geobench.llm.rollout import _assemble

    model, tokenizer = policy
    sampling = SamplingSettings(temperature, top_p, max_new_tokens=6)
    prompts = ["1+2=", "(3+4)*5-6="]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            **encoded,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=0,
            max_new_tokens=6,
            num_return_sequences=3,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[:, encoded["input_ids"].shape[1] :]
    rolled = _assemble(tokenizer, prompts, 3, new.tolist(), 0.0, sampling)
    sampler = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)  # (N, T, V) processed
    sampler = sampler.gather(-1, new.unsqueeze(-1)).squeeze(-1) * rolled.completion_mask
    with torch.no_grad():
        trainer, entropy = rolled.logprobs(model, with_entropy=True)
        raw, _ = completion_logprobs(
            model, rolled.prompt_ids, rolled.prompt_mask, rolled.completion_ids, rolled.completion_mask
        )
    assert torch.isfinite(trainer).all() and torch.isfinite(entropy).all()
    assert torch.allclose(trainer, sampler, atol=1e-4)
    assert (raw - sampler).abs().max() > 1e-2  # the raw softmax would make pi_old wrong


def test_trl_engine_honours_or_refuses_the_objectives_own_settings():
    pytest.importorskip("trl")
    from geobench.llm.trl_engine import overlong_reward, trl_settings

    grpo, dapo = get_objective("grpo"), get_objective("dapo")
    assert trl_settings(grpo, LLMConfig())["scale_rewards"] == "group"
    mean = trl_settings(dapo, LLMConfig(hparams={"dapo": {"advantage": "mean"}}))
    assert mean == {"scale_rewards": "none", "mask_truncated_completions": True}
    assert not trl_settings(dapo, LLMConfig(overlong_filter=False))["mask_truncated_completions"]
    assert not trl_settings(grpo, LLMConfig())["mask_truncated_completions"]  # grpo's recipe has no overlong part
    with pytest.raises(ConfigError, match=r"advantage = 'none'.*hparams\.dapo\.advantage") as error:
        trl_settings(dapo, LLMConfig(hparams={"dapo": {"advantage": "none"}}))
    assert "\n" not in str(error.value) and "--engine geobench" in str(error.value)
    with pytest.raises(ConfigError, match="top_p"):
        trl_settings(grpo, LLMConfig(top_p=0.9))
    assert overlong_reward(10, 4)(completion_ids=[[1] * 5, [1] * 8, [1] * 10]) == pytest.approx([0.0, -0.5, -1.0])


def test_dapo_overlong_filter_gives_truncated_responses_zero_gradient(policy):
    model, tokenizer = policy
    truncated = (1, 4)
    rolled = _ragged_rollouts(tokenizer, groups=2, g=3, seed=4, truncated_rows=truncated)
    rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    filtered = rolled.mask_truncated()
    assert filtered.completion_mask[list(truncated)].sum() == 0 and filtered.completion_mask[0].sum() > 0
    logp, _ = filtered.logprobs(model)
    logp.retain_grad()
    batch = GroupBatch(logp.view(2, 3, -1), filtered.completion_mask.view(2, 3, -1), rewards)
    make_objective("dapo")(batch)[0].backward()
    assert (logp.grad[list(truncated)] == 0).all() and logp.grad.abs().sum() > 0
    # the truncated completions' tokens have no influence on the parameters' gradient
    other = _ragged_rollouts(tokenizer, groups=2, g=3, seed=4, truncated_rows=truncated)
    other.completion_ids[list(truncated)] = other.completion_ids[list(truncated)].flip(-1)
    loss_fn = make_objective("dapo")
    with_filter = [_grads(model, loss_fn, r.mask_truncated(), rewards, None, 2) for r in (rolled, other)]
    without = [_grads(model, loss_fn, r, rewards, None, 2) for r in (rolled, other)]
    assert torch.allclose(*with_filter, atol=1e-7) and not torch.allclose(*without, atol=1e-6)


@pytest.mark.parametrize(
    ("algo", "overrides", "tau_range"),
    [
        ("adpo", {"adpo_tau_rule": "entropy-reward"}, (0.1, 5.0)),  # the authors' per-prompt rule
        ("opo", {}, (0.2, 1.5)),  # OPO Sec. 9.1's adaptive tau, on by default
        ("adpo", {"tau_confidence": "candidate-set"}, (0.1, 0.8 + 1e-6)),  # Eq. 12 on distinct completions
        ("opo", {"opo_tau_rule": "authors"}, (0.2, 1.5)),  # the OPO authors' adaptive tau on the escort T
        ("dapo", {"dynamic_sampling": False}, None),
    ],
)
def test_train_cell_runs_the_selectable_rules_with_micro_batches_and_logs_the_regime_metrics(
    policy, algo, overrides, tau_range
):
    import copy

    from geobench.llm.tasks import make_task

    model, tokenizer = policy
    settings = LLMConfig(
        steps=2, prompts_per_step=2, group=3, micro_batch=1, eval_prompts=2, eval_every=2, lr=1e-3, **overrides
    )
    rollout = HFRollout(tokenizer, SamplingSettings(temperature=0.9, top_p=0.95, max_new_tokens=4))
    rows = train_cell(copy.deepcopy(model), tokenizer, make_task("arithmetic", (1,)), rollout, algo, 0, settings)
    by_metric: dict[str, list[float]] = {}
    for row in rows:
        by_metric.setdefault(row["metric"], []).append(row["value"])
    assert set(by_metric) <= set(METRICS)  # the one declared schema
    for name in ("completion_length_std", "truncated_frac", "reward_levels", "ratio_one_frac"):
        assert len(by_metric[name]) == 2, name
    assert all(0 <= v <= 1 for v in by_metric["truncated_frac"] + by_metric["ratio_one_frac"])
    assert all(v >= 1 for v in by_metric["reward_levels"]) and all(v >= 0 for v in by_metric["completion_length_std"])
    assert all(math.isfinite(v) for v in by_metric["loss"])
    if tau_range is not None:
        assert len(by_metric["tau"]) == 2 and all(tau_range[0] <= v <= tau_range[1] for v in by_metric["tau"])


def test_llm_settings_reject_unknown_rules():
    with pytest.raises(ConfigError, match="adpo_tau_rule"):
        LLMConfig(adpo_tau_rule="other")
    with pytest.raises(ConfigError, match="tau_confidence"):
        LLMConfig(tau_confidence="other")


def test_a_plugin_objective_declaring_dapos_recipe_gets_its_groups_filtered(policy, register_plugin):
    """The loop reads the recipe, not the name: DAPO's loss with DAPO's recipe runs as dapo, row for row."""
    import copy
    from pathlib import Path

    from geobench.llm.tasks import make_task

    register_plugin(Path(__file__).parent / "plugins" / "dapo_recipe.py")
    model, tokenizer = policy
    settings = LLMConfig(
        steps=3, prompts_per_step=4, group=3, eval_prompts=2, eval_every=3, lr=1e-3, reward="shaped", overlong_cache=2
    )
    rollout = HFRollout(tokenizer, SamplingSettings(max_new_tokens=4))
    task = make_task("arithmetic", (1,))
    rows = {
        algo: train_cell(copy.deepcopy(model), tokenizer, task, rollout, algo, 0, settings)
        for algo in ("dapo", "clip-higher-filtered", "clip-higher")
    }
    kept = [row["value"] for row in rows["clip-higher-filtered"] if row["metric"] == "groups_kept"]
    assert len(kept) == 3 and any(0 < k < 4 for k in kept)  # some groups dropped, some kept
    timed = {"update_time_s", "rollout_tokens_per_s"}
    untimed = {algo: [r for r in algo_rows if r["metric"] not in timed] for algo, algo_rows in rows.items()}
    assert untimed["clip-higher-filtered"] == untimed["dapo"]
    assert not any(row["metric"] == "groups_kept" for row in rows["clip-higher"])
    assert untimed["clip-higher"] != untimed["dapo"]


def test_a_recipe_adapting_what_the_objective_or_the_loop_lacks_is_refused(monkeypatch):
    from geobench.objectives import REGISTRY, Geometry, Objective, Recipe, objective
    from geobench.objectives.policy_gradient import ppo_clip

    geometry = Geometry("s", "o", "c", "t")
    with pytest.raises(ValueError, match="adapts 'tau', which is not a hyperparameter of ppo_clip"):
        objective("x-test", geometry=geometry, feedback="sampled", paper="a test",
                  recipe=Recipe(adaptive_temperature="tau"))(ppo_clip)  # fmt: skip
    assert "x-test" not in REGISTRY
    clip = Recipe(adaptive_temperature="clip_low")  # a hyperparameter, but no temperature the loop can adapt
    monkeypatch.setitem(REGISTRY, "x-test", Objective("x-test", ppo_clip, geometry, "sampled", "a test", recipe=clip))
    with pytest.raises(ConfigError, match="x-test's recipe adapts 'clip_low', which geobench llm cannot"):
        LLMConfig(algos=("x-test",))
