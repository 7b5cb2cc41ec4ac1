"""The committed results are what this commit's code produces (issue 21).

For every committed run under ``results/`` one cell, its cheapest, is rerun exactly as its sweep
runs it (:mod:`tests.committed_runs`) and the merged CSV must be the committed file byte for
byte. A run this cannot rerun fails; nothing is skipped. Timing tables are not compared.
"""

from pathlib import Path

import pandas as pd
import pytest

import tests.committed_runs as committed_runs_module
from geobench.experiments import LLM
from tests.committed_runs import ROOT, committed_runs, first_difference, rerun_one_cell
from tests.conftest import tiny_llm_config

RUNS = committed_runs()


def test_the_committed_runs_are_found():
    names = {str(r.relative_to(ROOT / "results")) for r in RUNS}
    assert {"toy-saturation", "bandits", "mujoco", "llm"} <= names
    assert not any(name.endswith("timing") for name in names)
    every = {str(r.relative_to(ROOT / "results")) for r in committed_runs(every_card=True)}
    assert names <= every and all(n.split("/")[1] not in committed_runs_module.SAMPLED_CARDS for n in every - names)


@pytest.mark.parametrize("run", RUNS, ids=[str(r.relative_to(ROOT / "results")) for r in RUNS])
def test_one_cell_of_each_committed_run_reproduces_its_rows(run: Path, tmp_path: Path, register_plugin):
    # register_plugin: a plugin the run's command named (CISPO's card) is unregistered after the test
    rerun = rerun_one_cell(run, tmp_path / "run")
    print(f"{rerun.run}: cell {rerun.cell} in {rerun.seconds:.1f} s")
    assert rerun.differences == {name: None for name in rerun.differences}, (rerun.run, rerun.cell)


def test_a_drifted_value_in_a_copied_csv_is_reported(tmp_path: Path):
    committed = ROOT / "results" / "toy-saturation" / "saturation.csv"
    copy = tmp_path / "saturation.csv"
    lines = committed.read_text().splitlines(keepends=True)
    assert first_difference(committed, committed) is None
    row = lines[1234].split(",")
    row[-1] = f"{float(row[-1]) * (1 + 1e-9) + 1e-12:.10g}\n"  # one value, by its last digits
    copy.write_text("".join(lines[:1234] + [",".join(row)] + lines[1235:]))
    assert (
        first_difference(copy, committed)
        == f"line 1235: rerun {','.join(row).rstrip()!r}, committed {lines[1234].rstrip()!r}"
    )
    copy.write_text("".join(lines[:-1]))  # a dropped row
    assert first_difference(copy, committed) == f"rerun has {len(lines) - 1} lines, committed {len(lines)}"


def test_an_llm_cells_first_steps_rerun_to_the_committed_rows_and_a_drift_is_named(tiny_model, tmp_path, monkeypatch):
    config = tiny_llm_config(tiny_model, steps=4, seeds=1, algos=("grpo", "opo"))
    run = tmp_path / "llm"
    LLM.run(config, run, profile="quick", show_progress=False)
    monkeypatch.setattr(committed_runs_module, "LLM_PREFIX_STEPS", 2)
    rerun = rerun_one_cell(run, tmp_path / "again")
    assert list(rerun.differences) == ["metrics.csv steps <= 2"] and rerun.differences["metrics.csv steps <= 2"] is None
    metrics = pd.read_csv(run / "metrics.csv")
    at = metrics.index[(metrics["variant"] == rerun.cell["variant"]) & (metrics["step"] == 1)][0]
    metrics.loc[at, "value"] += 1e-6  # a drift at step 1 of the rerun cell
    metrics.to_csv(run / "metrics.csv", index=False, float_format="%.10g")
    drifted = rerun_one_cell(run, tmp_path / "drifted").differences["metrics.csv steps <= 2"]
    assert drifted is not None and drifted.startswith("rerun '1,")
