"""The column-addition task: traces are correct, graded by math-verify, and vary in length."""

import random

import pytest

from geobench.errors import ConfigError
from geobench.llm.grading import extract_answer, is_correct
from geobench.llm.tasks import ColumnAdditionTask, column_addition, column_trace, make_task


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_every_trace_step_is_right_and_ends_in_the_boxed_sum(level):
    rng = random.Random(level)
    for _ in range(200):
        problem = column_addition(rng, level)
        a, b = (int(x) for x in problem.prompt.rstrip("=").split("+"))
        assert len(str(a)) == len(str(b)) == level and int(problem.answer) == a + b
        *steps, boxed = column_trace(problem).split(";")
        assert len(steps) == level and is_correct(boxed, problem.answer)
        carry = 0
        for step in steps:  # each column: digits (+ carry) = their sum, carry passed on
            terms, total = step.split("=")
            assert sum(int(t) for t in terms.split("+")) == int(total)
            assert int(terms.split("+")[-1]) == carry or carry == 0
            carry = int(total) // 10


def test_the_known_example():
    problem = column_addition(random.Random(0), 3)
    problem = type(problem)(prompt="457+386=", answer="843", level=3)
    assert column_trace(problem) == "7+6=13;5+8+1=14;4+3+1=8;\\boxed{843}"
    assert extract_answer(column_trace(problem)) == "843"


def test_warm_start_completions_mix_both_styles_at_the_stated_rate():
    task = ColumnAdditionTask((3,), trace_fraction=0.3)
    rng = random.Random(0)
    completions = [task.completion(p, rng) for p in task.sample(2000, rng)]
    traces = sum(";" in c for c in completions) / len(completions)
    assert traces == pytest.approx(0.3, abs=0.03)
    lengths = {len(c) for c in completions}
    assert min(lengths) <= 12 and max(lengths) >= 30  # two behaviours of different length


def test_task_is_seeded_and_checks_its_knobs():
    task = make_task("column-addition", (2, 4))
    assert task.sample(5, random.Random(1)) == task.sample(5, random.Random(1))
    assert {p.level for p in task.sample(200, random.Random(2))} == {2, 4}
    with pytest.raises(ConfigError, match="levels must be among 1,2,3,4"):
        ColumnAdditionTask((5,))
    with pytest.raises(ConfigError, match="trace_fraction must be in"):
        ColumnAdditionTask((1,), trace_fraction=1.5)
