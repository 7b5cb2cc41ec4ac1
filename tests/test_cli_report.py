"""The command line and the report builders: outputs on disk, one-line errors, missing runs."""

import json
import re

import pytest
from typer.testing import CliRunner

from geobench.cli import app
from geobench.experiments import BANDITS, LLM, MUJOCO, TOY
from geobench.objectives import REGISTRY
from geobench.report import build_all
from tests.conftest import cli_error

runner = CliRunner()


def test_toy_command_writes_csv_run_json_and_figures(tmp_path):
    out, figs = tmp_path / "toy-saturation", tmp_path / "figures"
    result = runner.invoke(
        app, ["toy-saturation", "--out", str(out), "--figures", str(figs), "--grid", "101", "--quiet", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "saturation.csv").exists() and (out / "run.json").exists()
    assert (figs / "opo_fig3.png").stat().st_size > 10_000 and (figs / "opo_fig3.pdf").exists()
    assert (out / "saturation.csv").read_text().splitlines()[1].split(",")[5] == "3"  # the seed column


@pytest.mark.parametrize(
    "args, message",
    [
        (["toy-saturation", "--profile", "fast"], "unknown profile 'fast'; valid: quick, paper"),
        (["toy-saturation", "--objectives", "opo,ppo2"], "unknown algorithm 'ppo2'; valid: adpo"),
        (["toy-saturation", "--config", "/nonexistent.toml"], "config file /nonexistent.toml not found"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message):
    assert message in cli_error(*args, "--out", str(tmp_path / "x"))


def test_objectives_command_lists_the_registry():
    result = runner.invoke(app, ["objectives"], terminal_width=250)
    assert result.exit_code == 0
    for name in REGISTRY:
        assert name in result.output


def test_objectives_at_80_columns_show_every_name_and_default_whole():
    result = runner.invoke(app, ["objectives"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(map(len, result.output.splitlines())) <= 80 and "…" not in result.output
    for name, entry in REGISTRY.items():
        assert f" {name} " in result.output
        for key, value in entry.defaults.items():
            assert f"{key}={value}" in result.output, (name, key)


# Each option whose help quotes the profiles' values: the command's experiment and the setting.
PROFILE_DEFAULTS = {
    ("toy-saturation", "--grid"): (TOY, "grid_points"),
    ("bandits", "--seeds"): (BANDITS, "seeds"),
    ("bandits", "--steps"): (BANDITS, "steps"),
    ("mujoco distill", "--seeds"): (MUJOCO, "seeds"),
    ("mujoco distill", "--steps"): (MUJOCO, "steps"),
    ("llm", "--seeds"): (LLM, "seeds"),
    ("llm", "--steps"): (LLM, "steps"),
    ("llm", "--dataset"): (LLM, "dataset"),
    ("llm", "--rollout"): (LLM, "rollout"),
    ("llm", "--engine"): (LLM, "engine"),
    ("llm", "--reward"): (LLM, "reward"),
    ("llm", "--prompts"): (LLM, "prompts_per_step"),
    ("llm", "--group"): (LLM, "group"),
    ("llm", "--max-new-tokens"): (LLM, "max_new_tokens"),
}


def test_help_quotes_the_profiles_values_as_the_resolved_configs_have_them():
    import typer

    commands = {}
    for name, command in typer.main.get_command(app).commands.items():
        for sub, leaf in getattr(command, "commands", {"": command}).items():
            commands[f"{name} {sub}".strip()] = leaf
    quoted = {}
    for name, command in commands.items():
        for param in command.params:
            match = re.search(r"\(quick: ([^,]+), paper: ([^)]+)\)", param.help or "")
            if match:
                quoted[name, param.opts[0]] = match.groups()
    assert set(quoted) == set(PROFILE_DEFAULTS)  # a new quoted value needs its entry above
    for (name, option), (experiment, setting) in PROFILE_DEFAULTS.items():
        actual = tuple(str(getattr(experiment.load(profile), setting)) for profile in ("quick", "paper"))
        assert quoted[name, option] == actual, (name, option)


def test_set_is_repeatable_and_merges_into_the_profiles_table(tmp_path):
    out = tmp_path / "toy"
    args = ["toy-saturation", "--out", str(out), "--grid", "5", "--no-draw", "--quiet"]
    result = runner.invoke(app, [*args, "--set", "opo.mu=2.0", "--set", "dpo.beta=0.5,opo.alpha=0.3"])
    assert result.exit_code == 0, result.output
    hparams = json.loads((out / "run.json").read_text())["config"]["hparams"]
    assert hparams["opo"] == {"mu": 2.0, "drive": "advantage", "center": False, "alpha": 0.3}  # the TOML's, then ours
    assert hparams["dpo"] == {"beta": 0.5} and hparams["grpo"] == {"clip_low": 0.2, "clip_high": 0.2}


@pytest.mark.parametrize(
    "args, message",
    [
        (["toy-saturation", "--objectives", "sft", "--set", "opo.mu=2"], "'opo' is not among the selected algorithms"),
        (["bandits", "--set", "adpo-listwise-raw.target=top1"], "adpo-listwise-raw: target is fixed at 'softmax'"),
        (["bandits", "--set", "ppo.nosuch=1"], "ppo: unknown hyperparameter 'nosuch'"),
        (["toy-saturation", "--set", "mu=2"], "--set expects algo.key=value, got mu=2"),
    ],
)
def test_bad_set_is_refused_before_any_work(refused, tmp_path, args, message):
    assert message in refused(*args, "--out", str(tmp_path / "r"), "--no-draw")
    assert not (tmp_path / "r").exists()


def test_figures_with_no_runs_skip_artifacts_but_write_taxonomy(tmp_path):
    written, skipped = build_all(tmp_path / "results", tmp_path / "figures")
    assert "opo_fig3" in skipped and "geobench toy-saturation" in skipped["opo_fig3"]
    names = {p.name for p in written}
    assert {"opo_table2.md", "adpo_table1.md", "adpo_table3.md", "objectives.md"} <= names
    opo_table = (tmp_path / "figures" / "opo_table2.md").read_text()
    assert "| opo | alpha-escort (tunable) | chi^2 curvature (constant mu I) |" in opo_table
    assert "| grpo | implicit KL | KL curvature (ratio clip) |" in opo_table
    table3 = (tmp_path / "figures" / "adpo_table3.md").read_text()
    assert "| trpo | Parameter space | Old policy | Param Fisher | Explicit KL constraint |" in table3


def test_figures_are_byte_stable_for_the_same_csv(tmp_path):
    from geobench.report import draw_toy
    from geobench.toy import ToyConfig
    from geobench.toy import run as run_toy

    run_toy(ToyConfig(grid_points=51), tmp_path / "toy", show_progress=False)
    first = [p.read_bytes() for p in draw_toy(tmp_path / "toy", tmp_path / "a")]
    second = [p.read_bytes() for p in draw_toy(tmp_path / "toy", tmp_path / "b")]
    assert first == second  # PNG and PDF (no creation timestamp)


def test_run_json_dirty_flag_ignores_results_and_figures(tmp_path, monkeypatch):
    """Rerunning into a committed results/ folder must not mark the run as made from dirty code."""
    import json
    from dataclasses import dataclass

    from geobench import results

    @dataclass(frozen=True)
    class Config:
        size: int = 1

    calls = []
    monkeypatch.setattr(results, "_git", lambda *args: calls.append(args) or "")
    run_dir = results.RunDir(tmp_path / "run", "toy-saturation", Config())
    run_dir.write_cell({"variant": "x"}, [{"variant": "x", "seed": 0, "step": 0, "metric": "m", "value": 1.0}])
    run_dir.finish("out", "quick")
    status = next(c for c in calls if c[0] == "status")
    assert ":(top,exclude)results" in status and ":(top,exclude)figures" in status
    assert json.loads((tmp_path / "run" / "run.json").read_text())["git_dirty"] is False
