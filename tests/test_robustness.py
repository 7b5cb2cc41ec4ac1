"""Nothing silently wrong: diverged runs stop before writing, damaged results are named, never used."""

import dataclasses
import json
import re

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
