"""A cell's identity (issue 21): a changed input recomputes the cell with one line, --rerun recomputes all.

Cases 1-3 of the issue: a teacher whose model file changes, a plugin loss edited between two runs
(toy and battery), a --dataset file edited in place. Then the digests themselves and --rerun.
"""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from geobench import identity
from geobench.experiments import TOY
from geobench.objectives import REGISTRY, get_objective, plugins
from geobench.results import RunDir, read_meta
from geobench.toy import ToyConfig
from geobench.toy import run as run_toy
from tests.conftest import tiny_llm_config

PLUGIN = '''"""A test plugin: a scaled log-likelihood loss."""

from geobench.objectives import Geometry, objective

SCALE = 1.0


@objective("scaled-sft", geometry=Geometry("s", "o", "c", "t"), feedback="sampled", paper="a test")
def scaled_sft(batch):
    logp = (batch.logp * batch.mask).sum(-1)  # (B, G)
    return -SCALE * logp.mean(), {}
'''


def _reload(path: Path) -> None:
    """Register the plugin at ``path`` afresh, as a new process would after the file was edited."""
    for name in plugins._loaded.pop(str(path.resolve()), ()):
        REGISTRY.pop(name, None)
    plugins.load_plugin(str(path))


def _recomputing_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("geobench: recomputing")]


# --- case 2: a plugin loss edited between two runs ---------------------------------------------------


@pytest.fixture
def plugin_file(tmp_path, register_plugin):
    path = tmp_path / "scaled_sft.py"
    path.write_text(PLUGIN)
    register_plugin(path)
    return path


def test_an_edited_plugin_loss_recomputes_its_toy_cells(plugin_file, tmp_path, capsys, committed_unchanged):
    config = ToyConfig(objectives=("scaled-sft", "sft"), readings=("exact",), grid_points=11)
    before = pd.read_csv(run_toy(config, tmp_path / "toy", show_progress=False))
    assert _recomputing_lines(capsys) == []
    plugin_file.write_text(PLUGIN.replace("SCALE = 1.0", "SCALE = 10.0"))
    _reload(plugin_file)
    after = pd.read_csv(run_toy(config, tmp_path / "toy", show_progress=False))
    (line,) = _recomputing_lines(capsys)
    assert line == "geobench: recomputing toy-saturation cell variant=scaled-sft__coordinates=exact: " + (
        "objective scaled-sft changed"
    )
    assert read_meta(tmp_path / "toy")["cells_resumed"] == 1  # sft's cell, whose inputs did not change
    mine = after["variant"] == "scaled-sft"
    assert after[mine]["value"].to_numpy() == pytest.approx(10 * before[mine]["value"].to_numpy())
    pd.testing.assert_frame_equal(after[~mine], before[~mine])


def test_the_battery_does_not_reuse_cells_of_an_edited_plugin(plugin_file, tmp_path, capsys, committed_unchanged):
    from geobench.battery import load_battery, run

    config = dataclasses.replace(load_battery(("scaled-sft",), "tiny", {}), experiments=("toy-saturation",))
    run(config, tmp_path, show_progress=False)
    plugin_file.write_text(PLUGIN.replace("SCALE = 1.0", "SCALE = 10.0"))
    _reload(plugin_file)
    (card,) = run(config, tmp_path, show_progress=False)
    ledger = pd.read_csv(card.parent / "battery.csv").set_index("role")
    assert ledger.loc["objective", "computed"] == ledger.loc["objective", "cells"] > 0  # none reused
    assert ledger.loc["baselines", "computed"] == 0  # the built-in baselines' inputs did not change
    assert any("cell variant=scaled-sft" in line for line in _recomputing_lines(capsys))


# --- case 1: a retrained teacher ------------------------------------------------------------------------


def _perturb_teacher(folder: Path) -> None:
    """Rewrite the teacher's model.zip with its policy weights moved: what a retrained teacher does."""
    import torch

    from geobench.distill.teachers import algo_class

    info = json.loads((folder / "teacher.json").read_text())
    model = algo_class(info["algo"]).load(folder / "model.zip", device="cpu")
    with torch.no_grad():
        for parameter in model.policy.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    model.save(folder / "model.zip")


def test_a_changed_teacher_recomputes_its_students(tiny_distill, tiny_teacher, tmp_path, capsys, committed_unchanged):
    from geobench.distill.sweep import run

    teachers = tmp_path / "teachers"
    shutil.copytree(tiny_teacher, teachers)
    config = dataclasses.replace(tiny_distill, methods=("kd",), teachers_dir=str(teachers))
    before = pd.read_csv(run(config, tmp_path / "distill", show_progress=False))
    _perturb_teacher(teachers / "Hopper-v5")
    after = pd.read_csv(run(config, tmp_path / "distill", show_progress=False))
    (line,) = _recomputing_lines(capsys)
    assert line == "geobench: recomputing mujoco cell env=Hopper-v5__variant=kd: teacher Hopper-v5 model.zip changed"
    assert read_meta(tmp_path / "distill")["cells_resumed"] == 0
    assert not before["value"].equals(after["value"])


# --- case 3: a --dataset file edited in place -------------------------------------------------------------


def _write_dataset(path: Path, answer: int) -> None:
    rows = [
        {"problem": f"What is {answer}+{i}?", "solution": f"$\\boxed{{{answer + i}}}$", "level": "Level 3"}
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_an_edited_dataset_recomputes_the_llm_cells(tiny_model, tmp_path, capsys, committed_unchanged):
    pytest.importorskip("datasets")
    from geobench.llm.sweep import run

    data = tmp_path / "d.jsonl"
    _write_dataset(data, 1)
    config = tiny_llm_config(tiny_model, algos=("grpo",), steps=1, dataset=str(data), levels=(3,))
    before = pd.read_csv(run(config, tmp_path / "llm", show_progress=False))
    assert read_meta(tmp_path / "llm")["inputs"]["dataset"] == identity.file_digest(data)
    _write_dataset(data, 7)
    after = pd.read_csv(run(config, tmp_path / "llm", show_progress=False))
    (line,) = _recomputing_lines(capsys)
    assert line == "geobench: recomputing llm cell variant=grpo__seed=0: dataset changed"
    for folder in ("llm", "llm/timing"):  # the metrics and the timing of one cell agree on its inputs
        meta = read_meta(tmp_path / folder)
        assert meta["cells_resumed"] == 0 and meta["inputs"]["dataset"] == identity.file_digest(data)
    assert not before["value"].equals(after["value"])


# --- the digests ------------------------------------------------------------------------------------------


def test_a_file_digest_changes_with_one_byte_and_a_folder_digest_with_any_file(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"\x00" * 1000)
    (folder / "config.json").write_text("{}")
    file_before, folder_before = identity.file_digest(folder / "model.bin"), identity.file_digest(folder)
    (tmp_path / "unrelated.txt").write_text("x")
    assert identity.file_digest(folder) == folder_before
    (folder / "model.bin").write_bytes(b"\x00" * 999 + b"\x01")
    assert identity.file_digest(folder / "model.bin") != file_before
    assert identity.file_digest(folder) != folder_before
    again = identity.file_digest(folder)
    (folder / "tokenizer.json").write_text("{}")
    assert identity.file_digest(folder) != again
    assert identity.file_digest(tmp_path / "absent") == "absent"


def test_a_file_is_read_once_while_its_size_and_mtime_stay(tmp_path, monkeypatch):
    path = tmp_path / "model.zip"
    path.write_bytes(b"weights")
    reads = []
    real = identity._sha256_file
    monkeypatch.setattr(identity, "_sha256_file", lambda p: reads.append(p) or real(p))
    first = identity.file_digest(path)
    assert identity.file_digest(path) == first and len(reads) == 1


def test_an_objective_digest_covers_the_code_it_imports_and_nothing_else(tmp_path, monkeypatch, register_plugin):
    package = tmp_path / "myplug"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("FACTOR = 2.0\n")
    (package / "unrelated.py").write_text("X = 1\n")
    (package / "loss.py").write_text(
        PLUGIN.replace("from geobench", "from myplug.helper import FACTOR\nfrom geobench")
        .replace("scaled-sft", "helper-sft")
        .replace("-SCALE", "-FACTOR * SCALE")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "myplug", raising=False)
    register_plugin("myplug.loss")
    entry = get_objective("helper-sft")
    sources = identity.objective_sources(entry)
    assert {"myplug.loss", "myplug.helper", "geobench.objectives.registry"} <= set(sources)
    assert "myplug.unrelated" not in sources and "geobench.bandits.env" not in sources
    before = identity.objective_digest(entry)
    (package / "unrelated.py").write_text("X = 2\n")
    assert identity.objective_digest(entry) == before
    (package / "helper.py").write_text("FACTOR = 3.0\n")
    assert identity.objective_digest(entry) != before
    assert identity.objective_digest(dataclasses.replace(entry, defaults={"extra": 1})) != identity.objective_digest(
        entry
    )


def test_a_built_in_objective_digest_follows_its_own_modules():
    grpo = identity.objective_sources(get_objective("grpo"))
    assert "geobench.objectives.policy_gradient" in grpo and "geobench.objectives.opo" not in grpo
    assert identity.objective_digest(get_objective("grpo")) != identity.objective_digest(get_objective("ppo"))


# --- RunDir: inputs beside the cells, run.json, --rerun ---------------------------------------------------


def _rows(value: float) -> list[dict]:
    return [{"variant": "a", "seed": 0, "step": 0, "metric": "m", "value": value}]


def test_a_cell_is_reused_only_with_the_same_inputs_and_its_csv_bytes_do_not_change(tmp_path, capsys):
    config = ToyConfig(objectives=("sft",), readings=("exact",), grid_points=11)
    inputs = {"teacher": "1"}
    plain = RunDir(tmp_path / "plain", "x", config)
    tracked = RunDir(tmp_path / "tracked", "x", config, inputs=lambda key: dict(inputs))
    for run_dir in (plain, tracked):
        run_dir.write_cell({"variant": "a"}, _rows(0.5))
    cell = tracked.cell_path({"variant": "a"})
    assert cell.read_bytes() == plain.cell_path({"variant": "a"}).read_bytes()
    assert json.loads(cell.with_name("variant=a.inputs.json").read_text()) == inputs
    assert tracked.done({"variant": "a"})
    csv = tracked.finish("x", "custom")
    meta = read_meta(tmp_path / "tracked")
    assert meta["inputs"] == inputs and meta["identity"] == identity.run_identity(meta["config_hash"], inputs)
    assert csv.read_bytes() == plain.finish("x", "custom").read_bytes()
    inputs["teacher"] = "2"
    assert not tracked.done({"variant": "a"}) and not cell.exists()
    assert capsys.readouterr().err == "geobench: recomputing x cell variant=a: teacher changed\n"


def test_a_cell_written_before_inputs_were_recorded_is_recomputed(tmp_path, capsys):
    config = ToyConfig(objectives=("sft",), readings=("exact",), grid_points=11)
    run_dir = RunDir(tmp_path, "x", config, inputs=lambda key: {"objective sft": "d"})
    run_dir.write_cell({"variant": "a"}, _rows(0.5))
    run_dir.cell_path({"variant": "a"}).with_name("variant=a.inputs.json").unlink()
    assert not run_dir.done({"variant": "a"})
    assert capsys.readouterr().err == "geobench: recomputing x cell variant=a: its inputs were not recorded\n"


def test_rerun_recomputes_every_cell(tmp_path, monkeypatch, capsys, committed_unchanged):
    from geobench.cli.main import main

    args = ["geobench", "toy-saturation", "--out", str(tmp_path), "--grid", "5", "--objectives", "sft,dpo"]
    args += ["--no-draw", "--quiet"]
    for extra, resumed in (([], 0), ([], 4), (["--rerun"], 0)):  # 2 objectives x 2 readings
        monkeypatch.setattr(sys, "argv", args + extra)
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code in (0, None)
        assert read_meta(tmp_path)["cells_resumed"] == resumed
    assert "--rerun: recomputing every cell" in capsys.readouterr().err


def test_a_committed_run_is_reusable_only_at_its_identity(tmp_path, plugin_file):
    config = ToyConfig(objectives=("scaled-sft",), readings=("exact",), grid_points=11)
    run_toy(config, tmp_path, show_progress=False)
    assert TOY.reusable(tmp_path, config)
    assert not TOY.reusable(tmp_path, dataclasses.replace(config, grid_points=12))
    plugin_file.write_text(PLUGIN + "\n# an edit\n")
    assert not TOY.reusable(tmp_path, config)


def test_battery_rerun_reuses_no_committed_baseline(committed_unchanged):
    from geobench.battery import load_battery, plan

    plans, _ = plan(
        load_battery(("kd",), "quick", {}), "kd", Path(__file__).resolve().parents[1] / "results", rerun=True
    )
    assert plans and not any(p.baseline_reused for p in plans)
    assert all(p.baseline_out.parent.name == "quick" for p in plans)  # results/battery/baselines/quick/<name>
