"""geobench battery: baselines found by config hash and reused, the objective's cells alone, the card."""

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from geobench.battery import load_battery, plan, run
from geobench.executor import ExecutorConfig
from geobench.report.cards import VERDICT_COLUMNS, card_summaries, read_verdicts, verdict_lines
from geobench.results import config_hash, read_meta
from tests.conftest import cli_error

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"
POOL = ExecutorConfig("processes", workers=2)


def test_the_committed_quick_runs_are_the_quick_budget_baselines():
    """If this fails, an experiment's quick settings changed without rerunning its committed run.

    A committed run is reused only at its identity (config hash and inputs); one whose run.json
    predates recorded inputs is recomputed, so for those only the config hash is held here."""
    plans, skipped = plan(load_battery(("kd",), "quick", {}), "kd", ROOT / "results")
    assert not skipped and [p.experiment.name for p in plans] == ["toy-saturation", "bandits", "mujoco", "llm"]
    for p in plans:
        meta = read_meta(ROOT / "results" / p.experiment.name)
        assert meta["config_hash"] == config_hash(p.baseline_config), p.experiment.name
        assert p.baseline_reused == ("identity" in meta), p.experiment.name
        reused_at = ROOT / "results" / p.experiment.name
        assert p.baseline_out == (
            reused_at if p.baseline_reused else ROOT / "results/battery/baselines/quick" / p.experiment.name
        )


def test_the_committed_cards_verdicts_csv_is_the_cards_verdicts():
    """If this fails, CARD.md was rewritten without its verdicts.csv (or by hand)."""
    folder = ROOT / "results" / "battery" / "cispo"
    lines = verdict_lines(read_verdicts(folder))
    assert len(lines.splitlines()) == 4 and f"## Verdicts\n\n{lines}\n\n" in (folder / "CARD.md").read_text()


def test_an_objective_runs_only_where_its_feedback_allows():
    _, skipped = plan(load_battery(("grpo",), "tiny", {}), "grpo", ROOT / "results")
    assert list(skipped) == ["mujoco"] and "sampled feedback" in skipped["mujoco"]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    return tmp_path_factory.mktemp("battery-results")


def test_battery_writes_every_section_and_reuses_the_baselines_it_ran(cispo, tiny_results):
    config = load_battery(("cispo",), "tiny", {"cispo": {"clip_high": 0.5}})
    (card,) = run(config, tiny_results, show_progress=False, executor=POOL)
    text = card.read_text()
    for heading in ("# Report card: `cispo`", "### Cells", "### Geometry", "## Verdicts", "## Toy", "## Noisy"):
        assert heading in text
    assert "## LLM math RL" in text and "**Regime check:**" in text
    assert "### What cispo writes at the start, middle and end of training" in text  # its samples.jsonl
    assert "| cispo | start: step 1" in text
    assert "## MuJoCo distillation (ADPO Table 2)\n\nNot run: cispo declares sampled feedback" in text
    assert "clip_high=0.5 (set)" in text
    for figure in ("card_toy.png", "card_bandits.png", "card_llm.png"):
        assert (card.parent / figure).exists() and f"]({figure})" in text
    ledger = pd.read_csv(card.parent / "battery.csv").set_index(["experiment", "role"])
    assert (ledger["reused"] == 0).all()  # a first run at this budget computes its baselines
    # the bandit sweep: 2 scenarios x 1 method + the reference at one width; the LLM: 2 seeds
    assert ledger.loc[("bandits", "objective"), "computed"] == 3
    assert ledger.loc[("llm", "objective"), "computed"] == 2

    verdicts = pd.read_csv(card.parent / "verdicts.csv", keep_default_na=False)
    assert list(verdicts.columns) == VERDICT_COLUMNS
    assert verdicts["experiment"].tolist() == ["toy-saturation", "bandits", "llm", "mujoco"]
    assert verdicts["status"].tolist() == ["run", "run", "run", "not run"]
    assert set(verdicts["objective"]) == {"cispo"} and set(verdicts["budget"]) == {"tiny"}
    assert verdicts["verdict"].iloc[3].startswith("cispo declares sampled feedback")
    assert f"## Verdicts\n\n{verdict_lines(read_verdicts(card.parent))}\n\n" in text  # the card's own lines
    assert card.parent == tiny_results / "battery" / "cispo@tiny"  # beside the quick card, never over it
    assert card_summaries(tiny_results, tiny_results / "REPORT.md") == ""  # the report reads quick cards only

    # A second objective at the same budget computes only its own cells ...
    (card,) = run(load_battery(("dr-grpo",), "tiny", {}), tiny_results, show_progress=False, executor=POOL)
    ledger = pd.read_csv(card.parent / "battery.csv").set_index(["experiment", "role"])
    baselines = ledger.xs("baselines", level="role")
    assert (baselines["computed"] == 0).all() and (baselines["reused"] == baselines["cells"]).all()
    assert ledger.xs("objective", level="role")["computed"].sum() == 2 + 3 + 2
    # ... one of the baselines is read from their run, none of its cells run again ...
    config = load_battery(("grpo",), "tiny", {})
    (card,) = run(config, tiny_results, show_progress=False, executor=POOL)
    ledger = pd.read_csv(card.parent / "battery.csv")
    assert set(ledger["role"]) == {"baselines"} and (ledger["computed"] == 0).all()
    assert "| grpo |" in card.read_text()
    # ... and an objective's cells run alone are the very cells it has in the baselines' sweep.
    for step in plan(config, "grpo", tiny_results)[0]:
        alone_out = tiny_results / "alone" / step.experiment.name
        csv = step.experiment.run(
            dataclasses.replace(step.config, **{step.experiment.methods_field: ("grpo",)}),
            alone_out,
            show_progress=False,
            executor=POOL,
        )
        shared = pd.read_csv(step.baseline_out / csv.name)
        alone = pd.read_csv(csv)
        pd.testing.assert_frame_equal(
            shared[shared["variant"] == "grpo"].reset_index(drop=True),
            alone[alone["variant"] == "grpo"].reset_index(drop=True),
        )


def test_a_listwise_plugin_gets_a_distillation_section(tmp_path, register_plugin):
    register_plugin(PLUGINS / "listwise_kd_sharp.py")
    config = dataclasses.replace(load_battery(("kd-sharp",), "tiny", {}), experiments=("mujoco",))
    (card,) = run(config, tmp_path, show_progress=False, executor=POOL)
    text = card.read_text()
    assert "## MuJoCo distillation (ADPO Table 2)" in text and "### Hopper-v5" in text
    assert "kd-sharp's return ranks" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (("--algo", "grpo", "--budget", "huge"), "unknown budget 'huge'; valid: quick, tiny"),
        (("--algo", "grpo", "--experiments", "atari"), "unknown experiment 'atari'; valid: toy-saturation"),
        (("--algo", "grpo", "--set", "opo.mu=2"), "--set opo.*: 'opo' is not among --algo (grpo)"),
        (("--algo", "nosuch"), "unknown algorithm 'nosuch'"),
        (("--algo", ""), "--algo is empty; name one or more objectives"),
        (("--algo", "grpo", "--experiments", ","), "--experiments is empty; give one or more of toy-saturation"),
        (("--algo", "grpo", "--set", "grpo.nosuch=1"), "grpo: unknown hyperparameter 'nosuch'"),
    ],
)
def test_bad_battery_input_is_one_line(args, message, tmp_path):
    assert message in cli_error("battery", *args, "--results", str(tmp_path))
    assert not (tmp_path / "battery").exists()
