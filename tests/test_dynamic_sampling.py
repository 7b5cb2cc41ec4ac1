"""DAPO's dynamic sampling (Algorithm 1): refill until prompts_per_step informative groups, bounded rounds,
judged on accuracy, deterministic per seed, and the step's own prompts shared with every algorithm."""

import copy

import pytest
import torch

import geobench.llm.train as train
from geobench.errors import ConfigError
from geobench.llm.dynamic_sampling import Scored, concat_rollouts, fill_batch
from geobench.llm.rollout import HFRollout, Rollouts, SamplingSettings
from geobench.llm.settings import LLMConfig
from geobench.llm.tasks import Problem

G = 3


def _round(correct: list[list[float]], rewards: list[list[float]] | None = None, tag: int = 0) -> Scored:
    """A graded round whose prompt ids carry (tag, group) so the groups can be told apart."""
    b = len(correct)
    prompt = torch.tensor([[tag, i] for i in range(b) for _ in range(G)])
    completion = torch.ones(b * G, 2, dtype=torch.long)
    rolled = Rollouts(prompt, torch.ones_like(prompt), completion, torch.ones_like(completion), [""] * (b * G),
                      torch.zeros(b * G, dtype=torch.bool), 0.0)  # fmt: skip
    correct_t = torch.tensor(correct)
    return Scored(rolled, correct_t.clone() if rewards is None else torch.tensor(rewards), correct_t)


MIXED, RIGHT, WRONG = [1.0, 0.0, 1.0], [1.0] * G, [0.0] * G


def _origin(batch: Scored) -> list[tuple[int, int]]:
    return [tuple(row) for row in batch.rolled.prompt_ids[::G].tolist()]


def test_fill_batch_refills_to_exactly_the_wanted_informative_groups_in_order():
    first = _round([MIXED, RIGHT, WRONG, MIXED], tag=0)  # 2 of 4 informative
    rounds = {1: _round([WRONG, MIXED, RIGHT, RIGHT], tag=1), 2: _round([MIXED, MIXED, MIXED, WRONG], tag=2)}
    asked = []

    def more(r):
        asked.append(r)
        return rounds[r]

    batch, used = fill_batch(first, more, want=4, max_rounds=10, metric="accuracy")
    assert used == 3 and asked == [1, 2]  # stops as soon as the batch is full
    assert _origin(batch) == [(0, 0), (0, 3), (1, 1), (2, 0)]  # first informative groups, the excess dropped
    assert bool((batch.correct.max(-1).values > batch.correct.min(-1).values).all())
    assert batch.rolled.completion_ids.shape == (4 * G, 2) and len(batch.rolled.texts) == 4 * G


def test_fill_batch_stops_at_max_rounds_with_what_it_collected():
    first = _round([RIGHT, MIXED], tag=0)
    batch, used = fill_batch(first, lambda r: _round([WRONG, RIGHT], tag=r), want=2, max_rounds=3, metric="accuracy")
    assert used == 3 and _origin(batch) == [(0, 1)]
    nothing, used = fill_batch(_round([RIGHT]), lambda r: _round([WRONG]), want=1, max_rounds=2, metric="accuracy")
    assert used == 2 and len(nothing.rewards) == 0
    once, used = fill_batch(first, lambda r: pytest.fail("max_rounds 1 never refills"), 2, 1, "accuracy")
    assert used == 1 and _origin(once) == [(0, 1)]


def test_accuracy_not_the_shaped_reward_decides_which_groups_are_informative():
    """An all-wrong group with a shaped (or overlong-punished) reward spread is dropped on accuracy, kept on reward;
    a group whose correctness varies is kept on accuracy even when its shaped rewards tie."""
    first = _round([WRONG, MIXED], rewards=[[0.1, 0.3, 0.2], [0.5, 0.5, 0.5]])
    on_accuracy, _ = fill_batch(first, lambda r: pytest.fail("full"), want=1, max_rounds=1, metric="accuracy")
    on_reward, _ = fill_batch(first, lambda r: pytest.fail("full"), want=1, max_rounds=1, metric="reward")
    assert _origin(on_accuracy) == [(0, 1)] and _origin(on_reward) == [(0, 0)]


def test_concatenated_rounds_score_as_in_their_own_batches(tiny_model):
    from geobench.llm.model import load_policy

    policy, tokenizer = load_policy(tiny_model)
    rollout = HFRollout(tokenizer, SamplingSettings(max_new_tokens=5))
    short = rollout.generate(policy, ["1+1=", "2+2="], 2, seed=0)
    long = rollout.generate(policy, ["123+456=", "7+8="], 2, seed=1)  # a wider prompt
    both = concat_rollouts([short, long], tokenizer.pad_token_id)
    assert both.texts == short.texts + long.texts and both.truncated.tolist() == [*short.truncated, *long.truncated]
    with torch.no_grad():
        joint, _ = both.logprobs(policy)
        parts = [r.logprobs(policy)[0] for r in (short, long)]
    for rows, alone in zip((slice(0, 4), slice(4, 8)), parts, strict=True):
        width = alone.shape[1]
        assert torch.allclose(joint[rows, :width], alone, atol=1e-5)
        assert (joint[rows, width:] == 0).all()


PROMPTS = {"right": "1+1=", "wrong": "2+2=", "mixed": "3+3="}


class _Kinds:
    """A task of three kinds of prompt: always right, always wrong, and mixed (alternating within a group)."""

    name = "kinds"

    def __init__(self, weights=(1, 1, 1)):
        self.weights, self.calls = weights, []

    def sample(self, n, rng):
        kinds = rng.choices(list(PROMPTS), weights=self.weights, k=n)
        problems = [Problem(PROMPTS[kind], kind, 1) for kind in kinds]
        self.calls.append((id(rng), problems))
        return problems


@pytest.fixture
def graded(monkeypatch):
    """Correctness by the prompt's kind (the answer), alternating for "mixed"; a shaped reward that always varies."""
    calls, shaped = iter(range(10**9)), iter(range(10**9))

    def is_correct(text, answer):
        return answer == "right" or (answer == "mixed" and next(calls) % 2 == 0)

    monkeypatch.setattr(train, "is_correct", is_correct)
    monkeypatch.setattr(train, "reward", lambda text, answer, kind, max_chars: 0.01 * next(shaped))


def _run(policy, task, algo, **settings):
    model, tokenizer = policy
    base = dict(steps=3, prompts_per_step=4, group=G, eval_prompts=2, eval_every=3, max_new_tokens=3)
    config = LLMConfig(**{**base, **settings})
    rollout = HFRollout(tokenizer, SamplingSettings(max_new_tokens=3))
    trained = []
    real_update = train._update

    def update(policy, optimizer, scheduler, loss_fn, rolled, rewards, *rest):
        trained.append((rolled, rewards))
        return real_update(policy, optimizer, scheduler, loss_fn, rolled, rewards, *rest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "_update", update)
        rows = train.train_cell(copy.deepcopy(model), tokenizer, task, rollout, algo, 0, config)
    return rows, trained


def _values(rows, metric):
    return [row["value"] for row in rows if row["metric"] == metric]


@pytest.fixture(scope="module")
def policy(tiny_model):
    from geobench.llm.model import load_policy

    return load_policy(tiny_model)


def test_dapo_trains_on_exactly_prompts_per_step_informative_groups(policy, graded):
    task = _Kinds()
    rows, trained = _run(policy, task, "dapo", max_gen_batches=10, filter_metric="accuracy")
    assert _values(rows, "groups_kept") == [4.0] * 3 and all(r >= 2 for r in _values(rows, "gen_rounds"))
    assert len(trained) == 3
    for rolled, rewards in trained:  # reward "correct": the rewards are the correctness
        assert rewards.shape == (4, G) and bool((rewards.max(-1).values > rewards.min(-1).values).all())
        assert rolled.completion_ids.shape[0] == 4 * G
    again, _ = _run(policy, _Kinds(), "dapo", max_gen_batches=10, filter_metric="accuracy")
    untimed = {"update_time_s", "rollout_tokens_per_s"}
    assert [r for r in again if r["metric"] not in untimed] == [r for r in rows if r["metric"] not in untimed]


def test_refilling_leaves_the_steps_own_prompts_those_of_every_algorithm(policy, graded):
    dapo, grpo = _Kinds(), _Kinds()
    _run(policy, dapo, "dapo", max_gen_batches=10, filter_metric="accuracy")
    _run(policy, grpo, "grpo")
    stream = grpo.calls[1][0]  # call 0 draws the held-out prompts, call 1 the first step's
    steps = [problems for rng, problems in grpo.calls if rng == stream]
    assert len(steps) == 3 and len(dapo.calls) > 4  # dapo drew refills
    assert [problems for rng, problems in dapo.calls if rng == dapo.calls[1][0]] == steps


def test_bounded_rounds_stop_and_log_what_was_kept(policy, graded):
    hopeless = _Kinds(weights=(1, 1, 0))  # no group is ever informative
    rows, trained = _run(policy, hopeless, "dapo", max_gen_batches=3, filter_metric="accuracy")
    assert _values(rows, "gen_rounds") == [3.0] * 3 and _values(rows, "groups_kept") == [0.0] * 3
    assert trained == [] and not _values(rows, "loss")  # nothing to train on: no update
    rare = _Kinds(weights=(6, 6, 1))
    rows, _ = _run(policy, rare, "dapo", max_gen_batches=2, filter_metric="accuracy")
    assert all(k < 4 for k in _values(rows, "groups_kept")) and _values(rows, "gen_rounds") == [2.0] * 3


def test_the_shaped_reward_does_not_rescue_an_all_right_or_all_wrong_group_on_accuracy(policy, graded):
    """The shaped rewards vary in every group; on accuracy only the "mixed" prompts are trained on."""
    _, tokenizer = policy

    def trained_prompts(trained):
        return {
            text
            for rolled, _ in trained
            for text in tokenizer.batch_decode(rolled.prompt_ids, skip_special_tokens=True)
        }

    _, on_accuracy = _run(policy, _Kinds(), "dapo", reward="shaped", max_gen_batches=10, filter_metric="accuracy")
    assert trained_prompts(on_accuracy) == {PROMPTS["mixed"]} and all(len(r) == 4 for _, r in on_accuracy)
    _, on_reward = _run(policy, _Kinds(), "dapo", reward="shaped", filter_metric="reward")
    assert trained_prompts(on_reward) == set(PROMPTS.values())  # every group's shaped rewards differ: all kept


def test_dynamic_sampling_settings_are_checked():
    with pytest.raises(ConfigError, match="max_gen_batches must be >= 1"):
        LLMConfig(max_gen_batches=0)
    with pytest.raises(ConfigError, match="filter_metric must be one of accuracy, reward"):
        LLMConfig(filter_metric="score")
    with pytest.raises(ConfigError, match="max_gen_batches must be at most 100"):
        LLMConfig(max_gen_batches=101)
    assert LLMConfig().max_gen_batches == 1 and LLMConfig().filter_metric == "reward"  # the former behaviour


def test_trl_refuses_the_refill_in_one_line():
    pytest.importorskip("trl")
    from geobench.llm.trl_engine import trl_settings
    from geobench.objectives import get_objective

    with pytest.raises(ConfigError, match="--engine trl cannot refill dapo's filtered batch"):
        trl_settings(get_objective("dapo"), LLMConfig(max_gen_batches=4))
    assert trl_settings(get_objective("grpo"), LLMConfig(max_gen_batches=4))  # grpo does not filter
    assert trl_settings(get_objective("dapo"), LLMConfig(max_gen_batches=4, dynamic_sampling=False))


def test_trl_filters_on_accuracy_graded_beside_its_rewards(tiny_model, tmp_path, monkeypatch):
    """Correctness alternates within every group while TRL's task reward is 0 everywhere: on accuracy every
    group is kept and the loss runs; on TRL's advantages (the reward) every group goes and there is no loss."""
    pytest.importorskip("trl")
    from geobench.llm import trl_engine
    from geobench.llm.model import load_policy
    from geobench.llm.tasks import make_task

    calls = iter(range(10**9))
    monkeypatch.setattr(trl_engine, "is_correct", lambda text, answer: next(calls) % 2 == 0)
    logged = {}
    for metric in ("accuracy", "reward"):
        config = LLMConfig(
            model=tiny_model, steps=1, prompts_per_step=2, group=G, max_new_tokens=3, eval_prompts=2, minibatches=1,
            filter_metric=metric,
        )  # fmt: skip
        policy, tokenizer = load_policy(tiny_model)
        task = make_task("arithmetic", (4,))  # a random model gets none right: TRL's rewards are all 0
        rows = trl_engine.train_cell(policy, tokenizer, task, "dapo", 0, config, str(tmp_path / metric))
        logged[metric] = {row["metric"] for row in rows}
    assert "loss" in logged["accuracy"] and "loss" not in logged["reward"]
