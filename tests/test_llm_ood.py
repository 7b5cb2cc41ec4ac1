"""OPO v5 Experiment 2 (out of distribution): held-out levels apart from the training ones, the table's
binomial intervals, and the report's section without the run."""

import json
import math
import random
from pathlib import Path

import pandas as pd
import pytest

from geobench.llm.data import eval_task, held_out_problems
from geobench.llm.tasks import make_task
from geobench.report.llm_artifacts import build_opo_v5_ood
from geobench.report.llm_ood import accuracy_text, ood_table, wilson_interval
from tests.conftest import tiny_llm_config

PAPER = pd.DataFrame(
    [{"variant": "grpo", "reward": 0.544, "val_solved": 44, "val_problems": 100, "grad_norm": 0.674, "entropy": 0.115}]
)


def test_held_out_problems_come_from_the_eval_levels_only():
    config = tiny_llm_config("unused", dataset="column-addition", levels=(1, 2, 3), eval_levels=(4,), eval_prompts=300)
    task = make_task(config.dataset, config.levels)
    held = eval_task(task, config.dataset, config.levels, config.eval_split, config.eval_levels)
    for seed in (0, 1):
        held_out = held_out_problems(task, held, config.eval_prompts, seed)
        assert len(held_out) == 300 and {p.level for p in held_out} == {4}
        assert all(len(a) == 4 for p in held_out for a in p.prompt.rstrip("=").split("+"))
    assert {p.level for p in task.sample(500, random.Random(0))} == {1, 2, 3}  # training prompts: never level 4


def test_empty_eval_levels_are_the_training_task_as_before():
    config = tiny_llm_config("unused", dataset="column-addition", levels=(1, 2), eval_prompts=50)
    assert config.eval_levels == ()
    task = make_task(config.dataset, config.levels)
    held = eval_task(task, config.dataset, config.levels, config.eval_split, config.eval_levels)
    assert held is task
    assert held_out_problems(task, held, config.eval_prompts, 3) == task.sample(50, random.Random(10_000 + 3))


def test_a_run_evaluates_on_the_eval_levels_and_trains_on_the_others(tiny_model, tmp_path, monkeypatch):
    import geobench.llm.train as train
    from geobench.llm.sweep import run

    seen = []
    real = train.sampled_accuracy

    def spy(policy, tokenizer, problems, *args, **kwargs):
        seen.extend(problems)
        return real(policy, tokenizer, problems, *args, **kwargs)

    monkeypatch.setattr(train, "sampled_accuracy", spy)
    config = tiny_llm_config(tiny_model, algos=("grpo",), dataset="column-addition", levels=(1,), eval_levels=(2,))
    out = tmp_path / "results" / "llm-opo-v5-ood"
    run(config, out, show_progress=False)
    assert seen and {p.level for p in seen} == {2}
    prompts = [json.loads(line)["prompt"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert prompts and all(len(a) == 1 for p in prompts for a in p.rstrip("=").split("+"))
    (table,) = build_opo_v5_ood(tmp_path / "results", tmp_path / "figures")  # the section's table, from its CSV
    text = table.read_text()
    assert "RL on level 1; validation accuracy (greedy) on 4 problems per seed at level 2" in text
    assert "/4) |" in text and "(44/100)" in text


def test_an_eval_level_the_task_lacks_is_one_line(tmp_path):
    from geobench.errors import ConfigError
    from geobench.llm.sweep import run

    with pytest.raises(ConfigError, match="levels must be among"):
        run(tiny_llm_config("unused", dataset="column-addition", eval_levels=(7,)), tmp_path / "run")
    assert not (tmp_path / "run" / "run.json").exists()


def _closed_form_wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # the score interval's bounds are the roots p of (k/n - p)^2 = z^2 p (1 - p) / n
    a, b, c = 1 + z * z / n, -(2 * k / n + z * z / n), (k / n) ** 2
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize("k, n", [(48, 100), (44, 100), (0, 10), (10, 10), (1, 2), (137, 400)])
def test_wilson_interval_is_the_score_interval(k, n):
    low, high = wilson_interval(k, n)
    expected = _closed_form_wilson(k, n)
    assert low == pytest.approx(max(0.0, expected[0]), abs=1e-12) and high == pytest.approx(expected[1], abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_known_values():
    assert wilson_interval(48, 100) == pytest.approx((0.38465, 0.57683), abs=1e-5)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)  # not [0, 0] as the normal one


def _synthetic_run() -> pd.DataFrame:
    rows = []
    for seed, final in ((0, 0.30), (1, 0.40)):  # 200 problems a seed: 60 + 80 = 140 of 400 solved
        rows += [{"variant": "grpo", "seed": seed, "step": 0, "metric": "heldout_accuracy", "value": 0.10}]
        rows += [{"variant": "grpo", "seed": seed, "step": 30, "metric": "heldout_accuracy", "value": final}]
        for step in range(1, 31):
            for metric, value in (("reward_mean", 0.5), ("grad_norm", 0.25), ("entropy", 0.1)):
                rows.append({"variant": "grpo", "seed": seed, "step": step, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def test_ood_table_pools_seeds_into_one_binomial_count_beside_the_papers():
    table = ood_table(_synthetic_run(), PAPER, eval_prompts=200)
    low, high = _closed_form_wilson(140, 400)
    assert f"0.350 [{low:.3f}, {high:.3f}] (140/400)" in table
    assert accuracy_text(44, 100) in table and "0.440 [0.347, 0.538] (44/100)" in table
    assert "0.300, 0.400" in table and "| 0.100 |" in table  # per seed, and at step 0
    assert "0.544" in table and "0.674" in table


def test_the_section_says_not_run_without_the_run(tmp_path):
    from geobench.report.build import build_all
    from geobench.report.reproduction import build_report

    results, figures = tmp_path / "results", tmp_path / "figures"
    results.mkdir()
    figures.mkdir()
    with pytest.raises(FileNotFoundError, match="llm-opo-v5-ood"):
        build_opo_v5_ood(results, figures)
    _, skipped = build_all(results, figures)
    assert "opo_v5_ood" in skipped and not (figures / "opo_v5_ood.md").exists()
    report = build_report(results, figures, results / "REPORT.md")
    section = report[report.index("### OPO v5 Experiment 2") :].split("\n### ")[0]
    assert "**Not run.** `results/llm-opo-v5-ood/` has no run.json" in section


@pytest.mark.parametrize("split, size", [("", 4), ("test", 2)])
def test_on_math_the_held_out_problems_are_the_eval_levels_of_the_split(split, size):
    fixture = str(Path(__file__).parent / "data" / "math_fixture.jsonl")
    task = make_task(fixture, (3,))
    held = eval_task(task, fixture, (3,), split, (4,))
    held_out = held_out_problems(task, held, 100, 0)
    assert len(held_out) == size and {p.level for p in held_out} == {4}  # distinct, at most the split's
    assert not {p.prompt for p in held_out} & {p.prompt for p in task.problems}
