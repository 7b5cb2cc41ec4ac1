"""The interleaved update-time benchmark (issue 21 item 7) and the claim rule that reads it."""

import numpy as np
import pandas as pd
import pytest

from geobench.errors import ConfigError
from geobench.experiments import UPDATE_TIME
from geobench.llm.update_timing import METRIC, UpdateTimingConfig, run
from geobench.report.claims import RULES
from geobench.report.llm_report import LLMRun
from geobench.report.stats import NOT_TESTABLE

RULE = RULES["interleaved_ratio_above"]
ARGS = dict(subject="grpo", versus="adpo", metric=METRIC, threshold="1.75")


def _run(grpo: list[float] | None, adpo: list[float]) -> LLMRun:
    """An LLM run with both algorithms and, unless ``grpo`` is None, their interleaved update times."""
    frame = pd.DataFrame({"variant": ["grpo", "adpo"], "seed": 0, "step": 1, "metric": "reward_mean", "value": 0.5})
    if grpo is None:
        return LLMRun(frame)
    rows = [
        {"variant": algo, "seed": 0, "step": step, "metric": METRIC, "value": value}
        for algo, values in (("grpo", grpo), ("adpo", adpo))
        for step, value in enumerate(values, start=1)
    ]
    return LLMRun(frame, update_times=pd.DataFrame(rows))


def test_the_rule_reproduces_a_paired_speedup_under_load_that_hits_both_alike():
    load = np.array([1.0, 3.0, 1.5, 6.0, 2.0, 1.0, 4.0, 2.5])  # the machine's load per repetition
    outcome = RULE(_run(list(3.0 * load), list(load)), **ARGS)
    assert outcome.verdict == "reproduced" and outcome.ours.startswith("3.00x")
    assert outcome.fields == {"repetitions": 8}


def test_the_rule_refutes_equal_times_and_leaves_straddling_ones_inconclusive():
    load = [1.0, 1.2, 0.9, 1.1, 1.0, 1.05]
    assert RULE(_run(load, load), **ARGS).verdict == "not reproduced"
    assert RULE(_run([1.0, 4.0, 1.0, 4.0], [1.0, 1.0, 1.0, 1.0]), **ARGS).verdict == "inconclusive"


def test_the_rule_without_the_benchmark_says_not_testable_and_without_the_algorithms_gives_no_line():
    outcome = RULE(_run(None, []), **ARGS)
    assert outcome.verdict == NOT_TESTABLE and "llm-update-time" in outcome.rule
    assert RULE(_run(None, []), **{**ARGS, "subject": "gspo"}) is None


def test_the_stage_config_is_the_tables_and_refuses_one_algorithm():
    config = UPDATE_TIME.load("quick")
    assert config.algos == ("grpo", "adpo") and config.hparams["adpo"]["tau"] == 0.8
    with pytest.raises(ConfigError, match="two or more"):
        UpdateTimingConfig(algos=("grpo",))


def test_the_benchmark_writes_interleaved_rows_deterministic_but_for_the_times(tiny_model, tmp_path):
    config = UpdateTimingConfig(repetitions=3, prompts=2, group=3, tokens=4, model=tiny_model)
    frames = [pd.read_csv(run(config, tmp_path / f"run{i}", show_progress=False)) for i in range(2)]
    first = frames[0]
    assert list(first.columns) == ["experiment", "variant", "seed", "step", "metric", "value"]
    assert set(first["experiment"]) == {"llm-update-time"}
    times = first[first["metric"] == METRIC]
    assert sorted(times["variant"]) == ["adpo"] * 3 + ["grpo"] * 3 and (times["value"] > 0).all()
    assert sorted(set(times["step"])) == [1, 2, 3]
    untimed = [f[f["metric"] != METRIC].reset_index(drop=True) for f in frames]
    assert len(untimed[0]) == 6 and np.isfinite(untimed[0]["value"]).all()
    pd.testing.assert_frame_equal(untimed[0], untimed[1])
    keys = [f[f["metric"] == METRIC].drop(columns="value").reset_index(drop=True) for f in frames]
    pd.testing.assert_frame_equal(keys[0], keys[1])


def test_table4_shows_the_interleaved_speedup_beside_the_cells():
    from geobench.report.llm_tables import table4

    load = [1.0, 3.0, 1.5, 6.0]
    run = _run(list(3.0 * np.array(load)), load)
    frame = pd.DataFrame(
        {"variant": ["grpo", "adpo"], "seed": 0, "step": 1, "metric": "update_time_s", "value": [0.3, 0.1]}
    )
    paper = pd.DataFrame({"variant": ["adpo"], "micro_batch": [8], "update_time_s": [19.7]})
    rows = {line.split(" | ")[0].strip("| "): line for line in table4(frame, paper, "1", run.update_times).splitlines()}
    assert "| 3.00x [3.00, 3.00] |" in rows["GRPO"] and "| 1.00x | 1.00x |" in rows["ADPO"]
    assert "| - |" in table4(frame, paper, "1").splitlines()[-1]  # no benchmark: no interleaved speedup
