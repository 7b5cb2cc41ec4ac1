"""Nothing silently wrong: diverged runs stop before writing, damaged results are named, never used."""

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from geobench import bandits
from geobench.config import experiment_file, load_config
from geobench.errors import ConfigError, NonFinite
from geobench.results import read_run
from tests.conftest import cli_error, tiny_llm_config


@pytest.fixture
def small():
    config = load_config(bandits.BanditConfig, experiment_file("adpo_fig2"), "quick")
    return dataclasses.replace(
        config, noises=("cauchy",), levels=("light",), methods=("grpo", "opo"), hidden=(16,), seeds=2, steps=4,
        eval_every=2, eval_contexts=64,
    )  # fmt: skip


def test_a_diverging_bandit_run_is_one_line_naming_cell_step_and_quantity_and_writes_nothing(tmp_path):
    config = tmp_path / "lr.toml"
    config.write_text(experiment_file("adpo_fig2").read_text().replace("lr = 5e-4", "lr = 1e30"))
    out = tmp_path / "run"
    line = cli_error(
        *("bandits", "--config", str(config), "--noise", "cauchy", "--level", "light", "--methods", "grpo"),
        *("--seeds", "1", "--steps", "20", "--out", str(out), "--no-draw", "--quiet"),
    )
    assert line.startswith("geobench: error: cell scenario=") and "is nan at step 0: the run diverged" in line
    assert not out.exists()


def test_a_diverging_llm_cell_stops_at_the_step_it_diverges(tiny_model, tmp_path):
    from geobench.llm import run

    config = tiny_llm_config(tiny_model, algos=("opo",), hparams={"opo": {"mu": 1e30}})
    with pytest.raises(NonFinite, match=r"cell variant=opo seed=0: grad_norm is inf at step 1: the run diverged"):
        run(config, tmp_path / "r", show_progress=False)
    assert not (tmp_path / "r" / "metrics.csv").exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "binary"])
def test_a_damaged_cell_is_named_and_recomputed(small, tmp_path, capfd, damage):
    clean = bandits.run(small, tmp_path / "clean", show_progress=False).read_bytes()
    out = tmp_path / "damaged"
    bandits.run(small, out, show_progress=False)
    cell = next(p for p in out.glob("cells/*/*.csv") if "variant=grpo" in p.name)
    text = cell.read_bytes()
    cell.write_bytes({"truncate": text[: len(text) // 2], "empty": b"", "binary": b"\x00\xff\xfe" * 50}[damage])
    capfd.readouterr()
    again = bandits.run(small, out, show_progress=False)
    assert f"cell {cell} is damaged" in capfd.readouterr().err
    assert again.read_bytes() == clean
    assert json.loads((out / "run.json").read_text())["cells_resumed"] == 2  # the reference and opo


def test_a_damaged_results_file_is_refused_by_figures_in_one_line(small, tmp_path):
    results = tmp_path / "results"
    csv = bandits.run(small, results / "bandits", show_progress=False)
    assert read_run(results / "bandits") is not None
    csv.write_text(csv.read_text()[: len(csv.read_text()) // 2])
    with pytest.raises(ConfigError, match="does not match its run.json"):
        read_run(results / "bandits")
    line = cli_error("figures", "--results", str(results), "--out", str(tmp_path / "figures"))
    assert "winmass.csv does not match its run.json (damaged or edited since the run): rerun" in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["llm", "--algo", "grpo", "--set", "opo.alpha=0.5"], "'opo' is not among the selected algorithms (grpo)"),
        (["llm", "--algo", "opo", "--set", "opo.escort_ref=maybe"], "opo: escort_ref must be true or false"),
        (["llm", "--algo", "opo", "--set", "opo.mu=inf"], "opo: mu must be in (0, inf); got inf"),
        (["mujoco", "distill", "--steps", "0"], "steps must be a positive integer; got 0"),
        (["mujoco", "distill", "--seeds", "-1"], "seeds must be a positive integer; got -1"),
    ],
)
def test_input_that_used_to_be_accepted_is_refused_before_any_work(tmp_path, args, message):
    line = cli_error(*args, "--out", str(tmp_path / "r"), "--no-draw", "--quiet")
    assert message in line
    assert not (tmp_path / "r").exists()


def test_version():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "geobench", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("geobench ")


def test_boundary_errors_are_one_line(tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[quick\nsteps = 3\n")
    typed = tmp_path / "typed.toml"
    text = experiment_file("opo_fig3").read_text()
    typed.write_text(re.sub(r"grid_points = \d+", 'grid_points = "many"', text, count=1))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (["toy-saturation", "--config", str(bad_toml)], "is not valid TOML"),
        (["toy-saturation", "--config", str(tmp_path)], "(it is a folder)"),
        (["toy-saturation", "--config", str(typed), "--out", str(tmp_path / "t")], "grid_points must be of type int"),
        (["toy-saturation", "--out", str(a_file / "run"), "--no-draw"], f"{a_file / 'run'}"),
        (["mujoco", "evaluate-teacher", "--env", "Hopper-v5", "--episodes", "0"], "--episodes must be a positive"),
    ]
    for args, message in cases:
        assert message in cli_error(*args), args
    assert a_file.read_text() == "not a folder"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The current folder for a probe: a file where a folder is expected, an empty dataset, an empty
    results folder. Returns a snapshot of everything under it (paths and bytes)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "results").mkdir()
    return lambda: {p: p.read_bytes() if p.is_file() else None for p in sorted(tmp_path.rglob("*"))}


A_FILE = "a-file: a-file is a file, not a folder; choose another path"
EMPTY_PATH = "is empty; give a path, or leave the option out for its default"
VERL_DATA = ("verl", "data", "--run", "opo_table1", "--levels", "3", "--dataset", "empty.jsonl")
PROBES = {
    # a folder option naming a file (the figures were drawn after the whole run, then failed)
    "toy --figures file": (["toy-saturation", "--figures", "a-file", "--grid", "3"], f"--figures {A_FILE}"),
    "bandits --figures file": (["bandits", "--figures", "a-file"], f"--figures {A_FILE}"),
    "distill --figures file": (["mujoco", "distill", "--figures", "a-file"], f"--figures {A_FILE}"),
    "llm --figures file": (["llm", "--figures", "a-file"], f"--figures {A_FILE}"),
    "reproduce --figures file": (["reproduce", "--figures", "a-file"], f"--figures {A_FILE}"),
    "figures --out file": (["figures", "--out", "a-file"], f"--out {A_FILE}"),
    "verl --data-dir file": ([*VERL_DATA, "--data-dir", "a-file"], "--data-dir a-file/opo_table1: a-file is a file"),
    "verl --run escapes": ([*VERL_DATA, "--run", "../../etc"], "no verl run '../../etc'; valid: adpo_fig3, opo_table1"),
    "verl --run a path": ([*VERL_DATA, "--run", "../verl/opo_table1"], "no verl run '../verl/opo_table1'; valid:"),
    # sizes that ran out of memory or sat silent for hours
    "toy --grid 1e8": (
        ["toy-saturation", "--grid", "100000000"],
        "grid_points must be at most 100,000; got 100,000,000",
    ),
    "bandits --seeds 1e4": (["bandits", "--seeds", "10000"], "seeds must be at most 1,000; got 10,000 (seeds train"),
    "bandits --hidden 1e5": (["bandits", "--hidden", "64,100000"], "hidden must be at most 4,096; got 100,000"),
    "bandits --steps 1e7": (["bandits", "--steps", "10000000"], "steps must be at most 100,000; got 10,000,000"),
    "llm --seeds 1e4": (["llm", "--seeds", "10000"], "seeds must be at most 1,000; got 10,000"),
    "llm --steps 1e7": (["llm", "--steps", "10000000"], "steps must be at most 100,000; got 10,000,000"),
    "distill --seeds 1e3": (["mujoco", "distill", "--seeds", "1000"], "seeds must be at most 100; got 1,000"),
    "distill --steps 1e8": (["mujoco", "distill", "--steps", "100000000"], "steps must be at most 1,000,000; got"),
    # a results folder that does not exist (figures used to create it and report success)
    "figures --results typo": (
        ["figures", "--results", "resluts"],
        "--results resluts does not exist; give the folder",
    ),
    # empty paths (Path("") is the current folder)
    "toy --out ''": (["toy-saturation", "--out", "", "--grid", "3"], f"--out {EMPTY_PATH}"),
    "bandits --figures ''": (["bandits", "--figures", ""], f"--figures {EMPTY_PATH}"),
    "figures --results ''": (["figures", "--results", ""], f"--results {EMPTY_PATH}"),
    "distill --teachers ''": (["mujoco", "distill", "--teachers", ""], f"--teachers {EMPTY_PATH}"),
    "llm --config ''": (["llm", "--config", ""], f"--config {EMPTY_PATH}"),
    "verl --data-dir ''": ([*VERL_DATA, "--data-dir", ""], f"--data-dir {EMPTY_PATH}"),
    # empty comma lists
    "bandits --noise ''": (["bandits", "--noise", ""], "--noise is empty; give one or more of gaussian-outliers, "),
    "bandits --level ','": (["bandits", "--level", ","], "--level is empty; give one or more of light, medium, heavy"),
    "bandits --methods ''": (["bandits", "--methods", ""], "--methods is empty; give one or more of adpo-listwise"),
    "bandits --hidden ''": (["bandits", "--hidden", ""], "--hidden is empty; give comma-separated integers"),
    "bandits --anchors ''": (["bandits", "--anchors", ""], "--anchors is empty; give comma-separated name=value"),
    "llm --algo ''": (["llm", "--algo", ""], "--algo is empty; give one or more of grpo, gspo, dapo, opo, adpo"),
    "llm --levels ''": (["llm", "--levels", ""], "--levels is empty; give comma-separated integers"),
    "distill --env ''": (["mujoco", "distill", "--env", ""], "--env is empty; give one or more of HalfCheetah-v5"),
    "toy --objectives ''": (["toy-saturation", "--objectives", " "], "--objectives is empty; give one or more of"),
    # an empty local dataset (was blamed on the network)
    "llm --dataset empty": (["llm", "--dataset", "empty.jsonl"], "dataset file empty.jsonl is empty; it needs rows"),
    "verl --dataset empty": ([*VERL_DATA, "--data-dir", "data"], "dataset file empty.jsonl is empty"),
    # names (the teacher probe used to suggest training a teacher for an env that has no settings)
    "evaluate-teacher --env": (["mujoco", "evaluate-teacher", "--env", "nosuch"], "unknown env 'nosuch'; valid: Half"),
    "llm --set unknown key": (["llm", "--algo", "opo", "--set", "opo.nosuch=1"], "unknown hyperparameter 'nosuch'"),
    "llm --profile": (["llm", "--profile", "nosuch"], "unknown profile 'nosuch'; valid: quick, paper"),
}


@pytest.mark.parametrize("args, message", PROBES.values(), ids=PROBES.keys())
def test_bad_input_is_refused_in_one_line_before_anything_is_written(workdir, refused, args, message):
    before = workdir()
    assert message in refused(*args)
    assert workdir() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_figures_folder_is_refused_before_the_run(workdir, refused):
    Path("read-only").mkdir(mode=0o555)
    line = refused("toy-saturation", "--figures", "read-only/figs", "--grid", "3")
    assert "--figures read-only/figs: read-only is not writable" in line
    assert not Path("results/toy-saturation").exists()


@pytest.mark.parametrize(
    "cls, name, setting, message",
    [
        ("ToyConfig", "opo_fig3", {"grid_points": 10**8}, "grid_points must be at most 100,000"),
        ("BanditConfig", "adpo_fig2", {"seeds": 10**4}, "seeds must be at most 1,000"),
        ("BanditConfig", "adpo_fig2", {"methods": []}, "methods is empty; list at least one"),
        ("DistillConfig", "adpo_table2", {"train_states": 10**7}, "train_states must be at most 1,000,000"),
        ("LLMConfig", "opo_table1", {"steps": 10**6}, "steps must be at most 100,000"),
    ],
)
def test_config_files_meet_the_same_caps_as_the_flags(cls, name, setting, message):
    from geobench.distill.sweep import DistillConfig
    from geobench.llm import LLMConfig
    from geobench.toy import ToyConfig

    classes = {"ToyConfig": ToyConfig, "BanditConfig": bandits.BanditConfig, "DistillConfig": DistillConfig}
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config({**classes, "LLMConfig": LLMConfig}[cls], experiment_file(name), "quick", setting)
