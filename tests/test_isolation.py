"""Issue 21, "committed artifacts are written only by the runs that own them": the probes of items 8-12.

Every probe runs from the repository root, so that a default path would land in the committed
``figures/``, ``experiments/`` or ``results/``, and asserts through ``committed_unchanged`` that nothing
there was written, touched, added or removed.
"""

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from geobench.errors import ConfigError
from geobench.results import atomic_write_text, replaced_folder, write_csv
from tests.conftest import CISPO

ROOT = Path(__file__).resolve().parents[1]
BANDIT_SCRATCH = ("--seeds", "1", "--steps", "2", "--noise", "cauchy", "--level", "light", "--quiet")
TINY_LLM = """[quick]
dataset = "column-addition"
algos = ["grpo"]
seeds = 1
steps = 1
prompts_per_step = 2
group = 3
max_new_tokens = 4
eval_every = 1
eval_prompts = 4
minibatches = 2

[quick.warmstart]  # seconds to build; differs from the committed one, so the run must build its own
shape = {hidden = 32, layers = 1, heads = 2, kv_heads = 1, intermediate = 64, max_positions = 96}
max_steps = 1
eval_every = 1
eval_prompts = 4
batch = 4
"""


@pytest.fixture
def geobench(monkeypatch, capsys):
    """``geobench(*args)`` runs the CLI in this process from the repository root; returns (exit status, stderr)."""
    from geobench.cli.main import main

    monkeypatch.chdir(ROOT)

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["geobench", *args])
        try:
            main()
            code = 0
        except SystemExit as exited:
            code = exited.code or 0
        return code, capsys.readouterr().err

    return run


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# item 8: a scratch run draws into its own --out


def test_a_toy_run_with_out_draws_into_its_own_figures(geobench, tmp_path, committed_unchanged):
    code, err = geobench("toy-saturation", "--grid", "21", "--quiet", "--out", str(tmp_path / "x"))
    assert code == 0, err
    assert {"opo_fig3.png", "opo_fig3.pdf"} <= set(_files(tmp_path / "x" / "figures"))


def test_a_bandit_run_with_out_draws_into_its_own_figures(geobench, tmp_path, committed_unchanged):
    code, err = geobench("bandits", *BANDIT_SCRATCH, "--out", str(tmp_path / "x"))
    assert code == 0, err
    tables = _files(tmp_path / "x" / "figures")
    assert {"adpo_fig2a.png", "adpo_fig2a.md"} <= set(tables)
    assert "1 seeds, 2 steps" in tables["adpo_fig2a.md"].decode()  # the scratch run's own table


def test_an_explicit_figures_folder_wins_over_out(geobench, tmp_path, committed_unchanged):
    out, figures = tmp_path / "x", tmp_path / "drawn"
    code, err = geobench("toy-saturation", "--grid", "21", "--quiet", "--out", str(out), "--figures", str(figures))
    assert code == 0, err
    assert "opo_fig3.png" in _files(figures) and not (out / "figures").exists()


def test_figures_with_out_writes_everything_there_and_only_reads_results(geobench, tmp_path, committed_unchanged):
    results = tmp_path / "r"
    shutil.copytree(ROOT / "results" / "toy-saturation", results / "toy-saturation")
    shutil.copytree(ROOT / "results" / "battery" / "cispo", results / "battery" / "cispo")
    before = _files(results)
    code, err = geobench("figures", "--results", str(results), "--out", str(tmp_path / "x"))
    assert code == 0, err
    assert _files(results) == before  # no REPORT.md, no figure: --results is only read
    drawn = _files(tmp_path / "x")
    assert "REPORT.md" in drawn and "opo_fig3.png" in drawn
    assert "](./opo_fig3.png)" in drawn["REPORT.md"].decode()  # the report's links are relative to where it is
    assert "](../r/battery/cispo/CARD.md)" in drawn["REPORT.md"].decode()


def test_figures_of_another_results_folder_draw_into_that_folder(geobench, tmp_path, committed_unchanged):
    results = tmp_path / "r"
    shutil.copytree(ROOT / "results" / "toy-saturation", results / "toy-saturation")
    code, err = geobench("figures", "--results", str(results))
    assert code == 0, err
    assert "opo_fig3.png" in _files(results / "figures") and (results / "REPORT.md").exists()


# item 9: warm starts a run builds go under its own --out


def test_an_llm_run_with_other_warm_start_settings_builds_its_own_under_out(geobench, tmp_path, committed_unchanged):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_LLM)
    out = tmp_path / "x"
    code, err = geobench("llm", "--config", str(config), "--levels", "1,2", "--quiet", "--out", str(out))
    assert code == 0, err
    own = out / "warmstart" / "column-addition"
    assert {"warmstart.json", "model.safetensors"} <= set(_files(own))
    assert (out / "figures" / "llm_claims.md").exists()
    assert '"levels": [\n      1,\n      2\n    ]' in (own / "warmstart.json").read_text()


def test_the_committed_warm_start_is_read_as_it_is_when_its_settings_are_the_runs(tmp_path, committed_unchanged):
    from geobench.experiments import LLM
    from geobench.llm.warmstart import ensure_warmstart, warmstart_dir

    quick = LLM.load("quick").warmstart_config()
    assert ensure_warmstart(quick, tmp_path / "own", show_progress=False) == warmstart_dir(quick.task)
    assert not (tmp_path / "own").exists()
    other = LLM.load("quick", {"levels": (1, 2)}).warmstart_config()
    with pytest.raises(ConfigError, match="made with other settings; .*make warmstart"):
        ensure_warmstart(other, show_progress=False)  # without a folder of its own: refused, not rebuilt


# item 10: cards per budget and per experiment subset


@pytest.fixture
def card_results(tmp_path):
    """A results folder with the committed toy run (the quick baselines) and the committed CISPO card."""
    results = tmp_path / "r"
    shutil.copytree(ROOT / "results" / "toy-saturation", results / "toy-saturation")
    shutil.copytree(ROOT / "results" / "battery" / "cispo", results / "battery" / "cispo")
    return results


@pytest.mark.parametrize("budget, folder", [("quick", "cispo+toy-saturation"), ("tiny", "cispo@tiny+toy-saturation")])
def test_a_battery_subset_or_budget_keeps_its_own_card(
    budget, folder, geobench, card_results, register_plugin, committed_unchanged
):
    from geobench.report.cards import card_summaries

    full = _files(card_results / "battery" / "cispo")
    args = ("--algo", "cispo", "--plugin", str(CISPO), "--experiments", "toy-saturation", "--executor", "serial")
    code, err = geobench("battery", *args, "--budget", budget, "--results", str(card_results), "--quiet")
    assert code == 0, err
    assert _files(card_results / "battery" / "cispo") == full  # the full card, untouched
    verdicts = pd.read_csv(card_results / "battery" / folder / "verdicts.csv")
    assert verdicts["experiment"].tolist() == ["toy-saturation"] and set(verdicts["budget"]) == {budget}
    summary = card_summaries(card_results, card_results / "REPORT.md")
    assert "### [`cispo`](battery/cispo/CARD.md)" in summary and folder not in summary


def test_card_folders_name_the_budget_and_the_subset():
    from geobench.report.cards import card_folder

    every = ("toy-saturation", "bandits", "mujoco", "llm")
    assert card_folder("cispo", "quick", every, every) == "cispo"
    assert card_folder("cispo", "tiny", reversed(every), every) == "cispo@tiny"
    assert card_folder("cispo", "quick", ("llm", "toy-saturation"), every) == "cispo+toy-saturation+llm"


# item 11: an --out that holds another experiment's run


def test_a_run_refuses_an_out_holding_another_experiments_run(geobench, committed_unchanged):
    code, err = geobench("bandits", *BANDIT_SCRATCH, "--out", "results/toy-saturation")
    assert code == 2
    assert err.strip() == (
        "geobench: error: --out results/toy-saturation holds a toy-saturation run (its run.json), not bandits; "
        "choose another folder"
    )


def test_every_path_to_a_run_refuses_it_before_any_work(committed_unchanged):
    """reproduce and the battery call the catalog's run, which builds a RunDir first."""
    from geobench.experiments import BANDITS

    with pytest.raises(ConfigError, match="holds a toy-saturation run"):
        BANDITS.run(BANDITS.load("quick"), ROOT / "results" / "toy-saturation", show_progress=False)


# item 12: a writer killed mid-way leaves the old file


class Killed(BaseException):
    """What SIGKILL or Ctrl-C does to a writer: it stops inside, and nothing after it runs."""


def test_a_file_writer_killed_mid_way_leaves_the_old_file(tmp_path, monkeypatch):
    import geobench.results as results

    path = tmp_path / "verdicts.csv"
    write_csv(pd.DataFrame({"a": [1]}), path)
    old = path.read_bytes()

    def killed(src, dst):
        raise Killed

    monkeypatch.setattr(results.os, "replace", killed)  # the new bytes are on disk, not yet renamed
    with pytest.raises(Killed):
        write_csv(pd.DataFrame({"a": [2, 3]}), path)
    with pytest.raises(Killed):
        atomic_write_text(path, "half")
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["verdicts.csv"]


def test_a_figure_killed_mid_way_leaves_the_old_png(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from geobench.report.files import save_figure

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    png, _ = save_figure(fig, tmp_path, "f")
    old = png.read_bytes()

    def killed(self, target, **kwargs):
        target.write(b"\x89PNG half")
        raise Killed

    monkeypatch.setattr(Figure, "savefig", killed)
    with pytest.raises(Killed):
        save_figure(fig, tmp_path, "f")
    assert png.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]


def test_a_warm_start_killed_mid_way_leaves_the_old_one(tmp_path):
    folder = tmp_path / "warmstart" / "column-addition"
    with replaced_folder(folder) as scratch:
        (scratch / "warmstart.json").write_text("old")
    with pytest.raises(Killed), replaced_folder(folder) as scratch:
        (scratch / "model.safetensors").write_bytes(b"half")
        raise Killed
    assert _files(folder) == {"warmstart.json": b"old"} and [p.name for p in folder.parent.iterdir()] == [folder.name]
