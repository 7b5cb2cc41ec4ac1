"""The command line and the report builders: outputs on disk, one-line errors, missing runs."""

import pytest
from typer.testing import CliRunner

from geobench.cli import app
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
