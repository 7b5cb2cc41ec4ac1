"""The executor layer: the same bytes whatever runs the cells, resume across executors, failures."""

import dataclasses
import json
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from geobench import bandits
from geobench.config import experiment_file, load_config
from geobench.errors import CellsFailed, ConfigError
from geobench.executor import Cell, ExecutorConfig, run_cells
from tests.conftest import tiny_llm_config

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; the executor leaves an existing one running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ExecutorConfig("ray", workers=2)
    ray.shutdown()


EXECUTORS = {"serial": ExecutorConfig("serial"), "processes": ExecutorConfig("processes", workers=2)}


@pytest.fixture
def bandit_config():
    config = load_config(bandits.BanditConfig, experiment_file("adpo_fig2"), "quick")
    return dataclasses.replace(
        config,
        noises=("cauchy",),
        levels=("light", "heavy"),
        methods=("adpo-listwise-raw", "grpo"),
        hidden=(32,),
        seeds=2,
        steps=6,
        eval_every=3,
        eval_contexts=128,
    )


def test_bandit_sweep_is_byte_identical_under_every_executor(bandit_config, tmp_path, local_ray):
    outputs = {
        name: bandits.run(bandit_config, tmp_path / name, show_progress=False, executor=executor).read_bytes()
        for name, executor in {**EXECUTORS, "ray": local_ray}.items()
    }
    assert outputs["processes"] == outputs["serial"] and outputs["ray"] == outputs["serial"]


def test_llm_sweep_is_byte_identical_under_every_executor(tiny_model, tmp_path, local_ray):
    from geobench.llm import run

    config = tiny_llm_config(tiny_model, algos=("grpo", "opo"), steps=1)
    outputs = {
        name: run(config, tmp_path / name, show_progress=False, executor=executor).read_bytes()
        for name, executor in {**EXECUTORS, "ray": local_ray}.items()
    }
    assert outputs["processes"] == outputs["serial"] and outputs["ray"] == outputs["serial"]


def _cells_on_disk(folder):
    """Finished cells: a CSV with its checksum beside it (a kill between the two leaves a cell to redo)."""
    return [p for p in folder.glob("cells/*/*.csv") if p.with_name(p.name + ".sha256").exists()]


def test_a_killed_process_sweep_resumes_serially_with_only_the_missing_cells(tmp_path):
    """SIGKILL the whole process group mid-sweep; a serial rerun computes only what is missing."""
    command = [sys.executable, "-m", "geobench", "bandits", "--noise", "cauchy", "--level", "all", "--hidden", "32"]
    command += ["--methods", "adpo-listwise-raw,grpo", "--seeds", "2", "--steps", "150", "--no-draw", "--quiet"]
    command += ["--executor", "processes", "--workers", "2", "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(_cells_on_disk(tmp_path / "killed")) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(_cells_on_disk(tmp_path / "killed"))
    assert 3 <= finished < 7, f"the sweep was not interrupted mid-way ({finished} cells)"

    overrides = {"noises": ("cauchy",), "methods": ("adpo-listwise-raw", "grpo"), "hidden": (32,), "seeds": 2}
    config = load_config(bandits.BanditConfig, experiment_file("adpo_fig2"), "quick", {**overrides, "steps": 150})
    resumed = bandits.run(config, tmp_path / "killed", show_progress=False)
    meta = json.loads((tmp_path / "killed" / "run.json").read_text())
    assert meta["cells_resumed"] == finished and meta["cells"] == 7  # 6 method cells + the reference
    clean = bandits.run(config, tmp_path / "clean", show_progress=False)
    assert resumed.read_bytes() == clean.read_bytes()


def _children(pid):
    """Live processes whose parent is ``pid`` (from /proc, so no extra dependency)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_sigterm_stops_a_process_sweep_and_its_workers_with_exit_143(tmp_path):
    """SIGTERM to the driver alone (as a scheduler sends it) unwinds like Ctrl-C: no orphaned workers."""
    command = [sys.executable, "-m", "geobench", "bandits", "--noise", "cauchy", "--level", "all", "--hidden", "32"]
    command += ["--methods", "adpo-listwise-raw,grpo", "--seeds", "2", "--steps", "400", "--no-draw", "--quiet"]
    command += ["--executor", "processes", "--workers", "2", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(_cells_on_disk(tmp_path / "run")) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert proc.poll() is None and workers, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].startswith("geobench: terminated by signal 15"), stderr
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the driver"
    assert _cells_on_disk(tmp_path / "run"), "finished cells are kept"


@pytest.mark.parametrize("kind", ["serial", "processes", "ray"])
def test_a_failing_cell_is_named_and_the_others_are_written(kind, local_ray):
    executor = local_ray if kind == "ray" else EXECUTORS[kind]
    ok = {"value": [1.0]}
    cells = [
        Cell({"cell": "first"}, pd.DataFrame, (ok,)),
        Cell({"cell": "broken"}, operator.truediv, (1, 0)),
        Cell({"cell": "last"}, pd.DataFrame, (ok,)),
    ]
    written = []
    with pytest.raises(CellsFailed) as failure:
        run_cells(cells, lambda key, rows: written.append(key["cell"]), executor, description="t", show_progress=False)
    assert sorted(written) == ["first", "last"]
    assert "1 of 3 cells failed" in str(failure.value)
    assert "cell cell=broken failed: ZeroDivisionError: division by zero" in str(failure.value)


def test_failed_cells_end_the_command_with_one_line_and_exit_status_1(monkeypatch, capsys, tmp_path):
    from geobench import cli
    from geobench.bandits import sweep

    def failing(*args, **kwargs):
        raise CellsFailed("1 of 2 cells failed (the others were written): cell variant=grpo failed: ValueError: x")

    monkeypatch.setattr(sweep, "run", failing)  # the catalog's runner, imported by name when the command runs
    out = ["--out", str(tmp_path / "bandits")]  # were the patch to miss, nothing is written into the checkout
    monkeypatch.setattr(sys, "argv", ["geobench", "bandits", "--noise", "cauchy", "--no-draw", "--quiet", *out])
    with pytest.raises(SystemExit) as exit_status:
        cli.main()
    assert exit_status.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "geobench: error: 1 of 2 cells failed (the others were written): cell variant=grpo failed: ValueError: x"
    ]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"kind": "dask"}, "unknown executor 'dask'; valid: serial, processes, ray"),
        ({"threads": 0}, "need --workers >= 0 and --threads >= 1; got 0, 0"),
    ],
)
def test_bad_executor_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        ExecutorConfig(**settings)
