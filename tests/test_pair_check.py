"""The per-pair update check (issue 24) and the clip's share of the gradient weight.

Constructed cases where theory says two updates are the same, up to a positive scale, and where it
says they are not; the check leaves the cell's own run bit for bit; pairs.csv as PAIRS_SCHEMA.md.
"""

import copy
import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from geobench.errors import ConfigError
from geobench.llm import run
from geobench.llm.pair_check import PAIR_COLUMNS, checked, cosine, pair_cosines, replay_batch, update_directions
from geobench.llm.rollout import Rollouts
from geobench.llm.settings import LLMConfig
from geobench.llm.train import StepState, _scheduler, _update
from geobench.objectives import GroupBatch, make_objective
from geobench.results import config_hash
from tests.conftest import tiny_llm_config

ALGOS = ("grpo", "gspo", "dapo", "opo", "adpo")
# 4 prompts x 4 completions, 2 epochs x 2 mini-batches = 4 updates, a large lr so that the later
# updates of a batch are well off-policy for the tiny model.
SHAPE = dict(epochs=2, minibatches=2, lr=3e-2, warmup_ratio=0.0, steps=10, group=4, prompts_per_step=4)
MIXED = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 0, 1]]).float()  # 1, 2, 3, 2 correct of 4
EQUAL = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1]]).float()  # 2 correct of 4 in each


@pytest.fixture(scope="module")
def policy(tiny_model):
    from geobench.llm.model import load_policy

    return load_policy(tiny_model)


def _rollouts(tokenizer, lengths=None, groups: int = 4, g: int = 4, t: int = 6) -> Rollouts:
    """B*G completions of random tokens, ragged lengths 1..t unless ``lengths`` (B*G,) is given."""
    gen = torch.Generator().manual_seed(0)
    prompts = tokenizer([f"{i}+{i + 1}=" for i in range(groups)], return_tensors="pt", padding=True)
    n = groups * g
    completion = torch.randint(len(tokenizer) // 2, len(tokenizer) - 1, (n, t), generator=gen)
    if lengths is None:
        lengths = torch.randint(1, t + 1, (n,), generator=gen)
    mask = (torch.arange(t) < lengths.unsqueeze(-1)).long()
    ids, attention = prompts["input_ids"].repeat_interleave(g, 0), prompts["attention_mask"].repeat_interleave(g, 0)
    return Rollouts(ids, attention, completion, mask, [""] * n, lengths == t, 0.0)


def _state(policy, settings: LLMConfig, algo: str, rewards, rolled) -> StepState:
    """A cell of ``algo`` at its first step (fresh optimizer and schedule) on a given batch and rewards."""
    model = copy.deepcopy(policy[0]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    gen = torch.Generator().manual_seed(0)
    correct = (rewards > 0).float()
    state = StepState(model, optimizer, _scheduler(optimizer, settings), gen, rolled, rewards, correct, None)
    return dataclasses.replace(state, own=replay_batch(state, algo, settings, {}))


def test_clip_mass_is_the_clipped_tokens_share_of_the_unclipped_gradient_weight():
    """|A r| per token: (1, 1.5; 1, 1) with the 1.5 clipped (A > 0, r > 1.2): clip_mass = 1.5 / 4.5."""
    old = torch.zeros(1, 2, 2)
    mask = torch.ones(1, 2, 2)
    rewards = torch.tensor([[1.0, 0.0]])  # z-scored: A = (+1, -1) up to the std's eps
    grpo = make_objective("grpo")
    on_policy = grpo(GroupBatch(old.clone(), mask, rewards, old_logp=old))[1]
    assert on_policy["clip_mass"].item() == 0.0 and on_policy["clip_frac"].item() == 0.0
    logp = old.clone()
    logp[0, 0, 1] = math.log(1.5)
    metrics = grpo(GroupBatch(logp, mask, rewards, old_logp=old))[1]
    assert metrics["clip_frac"].item() == pytest.approx(1 / 4)
    assert metrics["clip_mass"].item() == pytest.approx(1.5 / 4.5, rel=1e-6)
    masked = mask.clone()
    masked[0, 1, 1] = 0.0  # a padding token carries no weight
    metrics = grpo(GroupBatch(logp, masked, rewards, old_logp=old))[1]
    assert metrics["clip_mass"].item() == pytest.approx(1.5 / 3.5, rel=1e-6)
    no_signal = grpo(GroupBatch(logp, mask, torch.ones(1, 2), old_logp=old))[1]
    assert no_signal["clip_mass"].item() == 0.0  # A = 0: no weight anywhere, nothing clipped
    gspo = make_objective("gspo")(GroupBatch(logp, mask, rewards, old_logp=old))[1]
    # GSPO's ratio is the sequence's geometric mean, sqrt(1.5) > 1.2: the whole first sequence clips
    assert gspo["clip_mass"].item() == pytest.approx(2 * math.sqrt(1.5) / (2 * math.sqrt(1.5) + 2), rel=1e-6)


def test_grpo_and_dapo_with_grpos_clip_and_no_filtering_coincide_on_every_update(policy):
    """DAPO's loss with clip-higher at GRPO's 0.2 and its recipe off is GRPO's: cosine 1 on every update."""
    settings = LLMConfig(
        **SHAPE,
        algos=("grpo", "dapo"),
        dynamic_sampling=False,
        overlong_filter=False,
        hparams={"dapo": {"clip_high": 0.2}},
    )
    rolled = _rollouts(policy[1])
    for algo, other in (("grpo", "dapo"), ("dapo", "grpo")):
        cosines = pair_cosines(_state(policy, settings, algo, MIXED, rolled), algo, settings)[other]
        assert len(cosines) == 4 and min(cosines) >= 0.99 and min(cosines) == pytest.approx(1.0, abs=1e-9)


def test_adpo_and_grpo_on_policy_differ_only_by_per_group_weights(policy):
    """On-policy (update 1) ADPO's per-candidate drive is a_b (r_i - mean_b) within each group b of binary
    rewards, GRPO's (r_i - mean_b) / std_b: the same direction when a_b std_b is one constant, i.e. when
    every group has the same number correct (EQUAL), and not when the counts differ (MIXED). The later,
    off-policy updates differ in both cases."""
    settings = LLMConfig(**SHAPE, algos=("grpo", "adpo"))
    rolled = _rollouts(policy[1])
    equal = pair_cosines(_state(policy, settings, "adpo", EQUAL, rolled), "adpo", settings)["grpo"]
    mixed = pair_cosines(_state(policy, settings, "adpo", MIXED, rolled), "adpo", settings)["grpo"]
    assert equal[0] == pytest.approx(1.0, abs=1e-9)
    assert mixed[0] < 0.99
    assert max(equal[1:]) < 0.99 and max(mixed[1:]) < 0.99


def test_grpo_and_gspo_coincide_on_policy_at_equal_lengths_and_differ_off_policy(policy):
    """At ratio 1 and equal lengths GSPO's sequence ratio and seq-mean-token-mean weigh every token as
    GRPO's token-mean does (update 1, cosine 1); off-policy their clips and ratios part (updates 2-4)."""
    settings = LLMConfig(**SHAPE, algos=("grpo", "gspo"))
    same_length = _rollouts(policy[1], lengths=torch.full((16,), 6))
    cosines = pair_cosines(_state(policy, settings, "grpo", MIXED, same_length), "grpo", settings)["gspo"]
    assert cosines[0] == pytest.approx(1.0, abs=1e-9)
    assert max(cosines[1:]) < 0.99
    ragged = pair_cosines(_state(policy, settings, "grpo", MIXED, _rollouts(policy[1])), "grpo", settings)["gspo"]
    assert ragged[0] < 0.99  # ragged lengths: seq-mean-token-mean weighs a short answer's tokens up


def test_replays_restore_the_learner_exactly(policy):
    """Parameters, Adam's moments and step counts, the schedule and the generator are as before the check,
    after a first update has filled Adam's state, and a replay gives the same gradients twice."""
    settings = LLMConfig(**SHAPE, algos=ALGOS)
    state = _state(policy, settings, "grpo", MIXED, _rollouts(policy[1]))
    own = state.own
    _update(
        state.policy,
        state.optimizer,
        state.scheduler,
        own.loss_fn,
        own.rolled,
        own.rewards,
        own.old,
        settings,
        state.gen,
    )
    params = [p.detach().clone() for p in state.policy.parameters()]
    adam = copy.deepcopy(state.optimizer.state_dict())
    gen, lr = state.gen.get_state(), state.scheduler.get_last_lr()
    first = update_directions(state, own, settings)
    pair_cosines(state, "grpo", settings)
    assert all(torch.equal(p, q) for p, q in zip(params, state.policy.parameters(), strict=True))
    after = state.optimizer.state_dict()
    assert adam["state"].keys() == after["state"].keys() and len(adam["state"]) > 0
    for index, moments in adam["state"].items():
        assert all(torch.equal(value, after["state"][index][key]) for key, value in moments.items())
    assert adam["param_groups"] == after["param_groups"] and state.scheduler.last_epoch == 4
    assert torch.equal(gen, state.gen.get_state()) and state.scheduler.get_last_lr() == lr
    assert all(p.grad is None for p in state.policy.parameters())
    again = update_directions(state, own, settings)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def _sweep(model: str, **overrides):
    return tiny_llm_config(model, **{"reward": "shaped", "epochs": 2, "steps": 3, "lr": 1e-2, **overrides})


def test_the_check_leaves_every_cells_run_bit_identical_and_writes_pairs_csv(tiny_model, tmp_path):
    """pair_check_every = 1 checks every step (so a step the check disturbed would show in all later ones):
    metrics.csv is byte for byte the run without the check; pairs.csv has PAIRS_SCHEMA.md's columns."""
    plain = run(_sweep(tiny_model), tmp_path / "plain", show_progress=False).read_bytes()
    checked_run = run(_sweep(tiny_model, pair_check_every=1), tmp_path / "checked", show_progress=False)
    assert checked_run.read_bytes() == plain
    pairs = pd.read_csv(tmp_path / "checked" / "pairs.csv")
    assert tuple(pairs.columns) == PAIR_COLUMNS
    assert set(pairs["experiment"]) == {"llm"} and set(pairs["variant"]) == set(ALGOS)
    assert not (pairs["variant"] == pairs["other"]).any() and set(pairs["other"]) <= set(ALGOS)
    assert set(pairs["step"]) <= {1, 2, 3} and set(pairs["update"]) <= {1, 2, 3, 4} and 1 in set(pairs["update"])
    finite = pairs["cosine"].dropna()  # NaN: a zero gradient on one side (an uninformative mini-batch)
    assert len(finite) and finite.between(-1 - 1e-9, 1 + 1e-9).all() and pairs["seed"].eq(0).all()
    grpo = pairs[pairs["variant"] == "grpo"]
    assert set(grpo["other"]) >= {"gspo", "opo", "adpo"}  # the recipe-free algorithms always update
    meta = json.loads((tmp_path / "checked" / "run.json").read_text())
    assert meta["tables"]["pairs"]["csv"] == "pairs.csv" and meta["tables"]["pairs"]["rows"] == len(pairs)
    timing = pd.read_csv(tmp_path / "checked" / "timing" / "timing.csv")
    metrics = pd.read_csv(checked_run)
    updated = metrics[metrics["metric"] == "loss"]  # DAPO skips a step whose groups it all filters out
    timed = timing[timing["metric"] == "pair_check_time_s"]
    assert len(updated) >= 3 * len(ALGOS) - 2 and len(timed) == len(updated)
    assert set(zip(timed["variant"], timed["step"], strict=True)) == set(
        zip(updated["variant"], updated["step"], strict=True)
    )
    run(_sweep(tiny_model), tmp_path / "checked", show_progress=False)  # the same folder, no check
    assert not (tmp_path / "checked" / "pairs.csv").exists() and "tables" not in json.loads(
        (tmp_path / "checked" / "run.json").read_text()
    )


def test_at_the_first_step_each_cell_replays_every_algorithm_as_that_algorithms_own_cell_updates(tiny_model):
    """At step 1 every cell starts from the warm start with the same prompts and rollouts, so A's replay of X
    must be X's own update, gradient for gradient: the recipe, the hyperparameters, pi_old and the
    temperatures of the replay are the cell's."""
    from geobench.llm.model import load_policy
    from geobench.llm.rollout import HFRollout
    from geobench.llm.tasks import make_task
    from geobench.llm.train import train_cell

    settings = _sweep(tiny_model, steps=1, overlong_cache=4, prompts_per_step=4, max_new_tokens=12)
    task = make_task(settings.dataset, settings.levels)
    replays: dict[str, dict[str, list[torch.Tensor]]] = {}

    def capture(algo):
        def hook(step, state):
            cache: dict = {}
            replays[algo] = {
                x: update_directions(
                    state, state.own if x == algo else replay_batch(state, x, settings, cache), settings
                )
                for x in settings.algos
            }

        return hook

    for algo in settings.algos:
        model, tokenizer = load_policy(tiny_model)
        rollout = HFRollout(tokenizer, settings.sampling())
        train_cell(model, tokenizer, task, rollout, algo, 0, settings, before_update=capture(algo))
    assert set(replays) == set(ALGOS)
    for algo in ALGOS:
        for other in ALGOS:
            own, replayed = replays[other][other], replays[algo][other]
            assert len(own) == len(replayed) and all(torch.equal(a, b) for a, b in zip(own, replayed, strict=True))
        assert any(float(g.norm()) > 0 for g in replays[algo][algo]), algo  # a real update, not all zeros


def test_a_resumed_sweep_merges_the_pairs_of_the_cells_finished_before(tiny_model, tmp_path, monkeypatch):
    from geobench.llm import sweep

    config = _sweep(tiny_model, algos=("grpo", "opo"), steps=1, pair_check_every=1)
    real = sweep.train_cell

    def failing(policy, tokenizer, task, rollout, algo, *args, **kwargs):
        if algo == "opo":
            raise KeyboardInterrupt
        return real(policy, tokenizer, task, rollout, algo, *args, **kwargs)

    monkeypatch.setattr(sweep, "train_cell", failing)
    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "r", show_progress=False)
    monkeypatch.setattr(sweep, "train_cell", real)
    run(config, tmp_path / "r", show_progress=False)
    pairs = pd.read_csv(tmp_path / "r" / "pairs.csv")
    assert set(zip(pairs["variant"], pairs["other"], strict=True)) == {("grpo", "opo"), ("opo", "grpo")}
    assert json.loads((tmp_path / "r" / "run.json").read_text())["cells_resumed"] == 1


def test_a_zero_gradient_has_no_direction_to_compare():
    assert math.isnan(cosine(torch.zeros(3), torch.ones(3))) and math.isnan(cosine(torch.zeros(3), torch.zeros(3)))
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 2.0])) == pytest.approx(1 / math.sqrt(2))


def test_the_check_runs_at_steps_one_and_every_kth_after_and_is_refused_where_it_cannot_run():
    assert [s for s in range(1, 61) if checked(s, 20)] == [1, 21, 41]
    assert not any(checked(s, 0) for s in range(1, 61))
    with pytest.raises(ConfigError, match="pair_check_every must be >= 0"):
        LLMConfig(pair_check_every=-1)
    with pytest.raises(ConfigError, match="needs --engine geobench") as error:
        LLMConfig(pair_check_every=20, engine="trl")
    assert "\n" not in str(error.value)


def test_a_run_alone_with_pair_with_gets_the_cosines_the_joint_run_gives_it(tiny_model, tmp_path):
    """The battery runs an objective alone and names the baselines in ``pair_with``: its cells replay them
    without training them, so its pairs rows are the ones its cells have in a run of them all, and its
    metrics are the run without any check. At its default the field is out of the config hash."""
    joint = _sweep(tiny_model, algos=("grpo", "opo", "adpo"), steps=2, pair_check_every=1)
    alone = joint.compare_with(joint.algos)  # every algorithm already trains: nothing to add
    assert alone is joint and config_hash(joint) == config_hash(dataclasses.replace(joint, pair_with=()))
    alone = dataclasses.replace(joint, algos=("opo",)).compare_with(joint.algos)
    assert alone.pair_with == ("grpo", "adpo") and alone.compared == ("opo", "grpo", "adpo")
    assert config_hash(alone) != config_hash(dataclasses.replace(alone, pair_with=()))
    run(joint, tmp_path / "joint", show_progress=False)
    metrics = run(alone, tmp_path / "alone", show_progress=False)
    mine = pd.read_csv(tmp_path / "joint" / "pairs.csv").query("variant == 'opo'").reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "alone" / "pairs.csv"), mine)
    plain = run(dataclasses.replace(alone, pair_with=(), pair_check_every=0), tmp_path / "plain", show_progress=False)
    assert metrics.read_bytes() == plain.read_bytes()
    with pytest.raises(ConfigError, match="pair_with .* needs pair_check_every > 0"):
        dataclasses.replace(alone, pair_check_every=0)
