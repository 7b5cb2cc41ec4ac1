"""--dataset reasoning-gym:<task>: seeded, levels as the difficulty knob, exact-match grading, and one line
without the extra."""

import importlib.util
import random
import sys

import pytest

from geobench.errors import ConfigError
from geobench.llm import gym_tasks
from geobench.llm.grading import is_correct, reward
from geobench.llm.tasks import make_task

TASKS = sorted(gym_tasks.GYM_TASKS)
needs_gym = pytest.mark.skipif(importlib.util.find_spec("reasoning_gym") is None, reason="the reasoning-gym extra")


@pytest.fixture
def no_extra(monkeypatch):
    """reasoning-gym not importable, and no generator cached from an earlier test."""
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    gym_tasks._generator.cache_clear()
    yield
    gym_tasks._generator.cache_clear()


def test_without_the_extra_the_error_names_it(no_extra):
    with pytest.raises(ConfigError) as error:
        make_task("reasoning-gym:chain_sum", (1,))
    assert str(error.value) == (
        "--dataset reasoning-gym:chain_sum needs the reasoning-gym extra: pip install 'geobench[reasoning-gym]'"
    )


def test_the_cli_without_the_extra_is_one_line_exit_2_and_writes_nothing(no_extra, refused, tmp_path):
    out = tmp_path / "run"
    line = refused("llm", "--dataset", "reasoning-gym:gcd", "--levels", "1", "--out", str(out), "--no-draw")
    assert "pip install 'geobench[reasoning-gym]'" in line
    assert not (out / "run.json").exists() and not list(out.rglob("*.csv"))


def test_an_unknown_task_names_the_offered_ones():
    with pytest.raises(ConfigError, match="valid: chain_sum, basic_arithmetic, products, gcd, simple_equations"):
        make_task("reasoning-gym:leg_counting", (1,))


def test_the_exact_match_grader_gives_no_credit_for_a_substring():
    assert not is_correct("\\boxed{11}", "1") and reward("\\boxed{11}", "1", "correct") == 0.0
    assert is_correct("\\boxed{1}", "1") and is_correct("gcd(12,18)=\\boxed{6}", "6")


@needs_gym
def test_reasoning_gyms_own_scorer_would_give_half_credit_for_11_against_1():
    # why the loop grades by exact match: score_answer rewards a longer string that contains the answer
    data = gym_tasks._generator("gcd", 1)
    item = data[0]
    assert data.score_answer("11", {**item, "answer": "1"}) == 0.5


@needs_gym
@pytest.mark.parametrize("task", TASKS)
def test_a_task_is_seeded_and_its_gold_answers_grade_correct(task):
    levels = gym_tasks.GYM_TASKS[task].levels[:2]
    source = make_task(f"reasoning-gym:{task}", levels)
    first = source.sample(60, random.Random(5))
    assert first == source.sample(60, random.Random(5)) != source.sample(60, random.Random(6))
    assert {p.level for p in first} == set(levels)
    assert all(p.prompt.endswith("=") and " " not in p.prompt for p in first)  # for the character model
    assert all(is_correct(source.completion(p), p.answer) for p in first)
    assert not any(is_correct(f"\\boxed{{{p.answer}1}}", p.answer) for p in first)


@needs_gym
@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_levels_set_the_digits_of_chain_sums_terms(level):
    problems = make_task("reasoning-gym:chain_sum", (level,)).sample(50, random.Random(0))
    for problem in problems:
        terms = problem.prompt.rstrip("=").replace("-", "+").split("+")
        assert all(len(t) == level for t in terms) and 2 <= len(terms) <= 3
        assert eval(problem.prompt.rstrip("=")) == int(problem.answer)  # noqa: S307 (digits and + - only)


@needs_gym
def test_a_level_outside_the_knob_is_one_line():
    with pytest.raises(ConfigError, match="simple_equations levels must be among 1,2,3; got 4"):
        make_task("reasoning-gym:simple_equations", (4,))


@needs_gym
def test_a_run_trains_and_evaluates_on_a_gym_task(tiny_model, tmp_path):
    import pandas as pd

    from geobench.llm.sweep import run
    from tests.conftest import tiny_llm_config

    config = tiny_llm_config(tiny_model, algos=("grpo",), steps=1, dataset="reasoning-gym:chain_sum", levels=(1,))
    frame = pd.read_csv(run(config, tmp_path / "run", show_progress=False))
    assert set(frame["task"]) == {"reasoning-gym:chain_sum"} and "heldout_accuracy" in set(frame["metric"])


@needs_gym
def test_without_a_model_a_gym_task_asks_for_one(refused, tmp_path):
    line = refused("llm", "--dataset", "reasoning-gym:gcd", "--levels", "1", "--out", str(tmp_path / "r"), "--no-draw")
    assert "warm start is built for the built-in tasks" in line
