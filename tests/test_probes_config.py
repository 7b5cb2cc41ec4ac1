"""Issue 21's probes of bad configs, bad plugins and the command line (items 4, 5, 13, 14, 18, 19): each bad
input is one line and exit status 2 before any work, with nothing committed changed; where the issue asks
for a merge (repeated options) or a notice (an empty --results), exactly that."""

import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import torch

from geobench.errors import BadLoss, ConfigError
from geobench.executor import Cell, ExecutorConfig, run_cells
from geobench.objectives import GroupBatch, get_objective, load_plugin, make_objective, per_seed_objective, plugins
from tests.conftest import CISPO, random_batch

ROOT = Path(__file__).resolve().parents[1]
BAD_LOSSES = Path(__file__).parent / "plugins" / "bad_losses.py"
BANDITS_TOML = ROOT / "experiments" / "adpo_fig2.toml"
SMALL_BANDITS = ("--seeds", "1", "--steps", "2", "--noise", "cauchy", "--level", "light", "--quiet")


def _bandits_config(tmp_path: Path, old: str, new: str) -> str:
    """The committed bandits TOML with one line changed, as a --config file."""
    text = BANDITS_TOML.read_text()
    assert old in text
    path = tmp_path / "bandits.toml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


@pytest.fixture
def ran(monkeypatch, capsys):
    """``ran(*args)`` runs ``geobench *args`` in this process and asserts exit status 0 (or ``status``);
    its stderr."""
    from geobench.cli.main import main

    def run(*args: str, status: int = 0) -> str:
        monkeypatch.setattr(sys, "argv", ["geobench", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        err = capsys.readouterr().err
        assert (exited.value.code or 0) == status, err
        return err

    return run


# item 4: repeated options are merged, never the last one kept


def test_repeated_set_options_merge(ran, tmp_path, committed_unchanged):
    import json

    out = tmp_path / "toy"
    ran("toy-saturation", "--grid", "11", "--objectives", "opo", "--set", "opo.alpha=0.6", "--set", "opo.mu=2",
        "--no-draw", "--quiet", "--out", str(out))  # fmt: skip
    hparams = json.loads((out / "run.json").read_text())["config"]["hparams"]["opo"]
    assert hparams["alpha"] == 0.6 and hparams["mu"] == 2


def test_a_repeated_list_option_runs_every_value_given(ran, tmp_path, committed_unchanged):
    out = tmp_path / "toy"
    ran("toy-saturation", "--grid", "11", "--objectives", "grpo", "--objectives", "opo", "--no-draw", "--quiet",
        "--out", str(out))  # fmt: skip
    assert set(pd.read_csv(out / "saturation.csv")["variant"]) == {"grpo", "opo"}


def test_llm_and_battery_merge_a_repeated_algo(ran, monkeypatch, tmp_path):
    import geobench.battery
    import geobench.cli.experiments as commands

    seen = {}
    monkeypatch.setattr(commands, "run_experiment", lambda experiment, **kw: seen.update(kw["settings"]))
    ran("llm", "--algo", "grpo", "--algo", "opo", "--levels", "1", "--levels", "2")
    assert seen["algos"] == ("grpo", "opo") and seen["levels"] == (1, 2)
    monkeypatch.setattr(geobench.battery, "run", lambda config, *a, **kw: seen.update(battery=config.algos) or [])
    ran("battery", "--algo", "grpo", "--algo", "opo", "--budget", "tiny", "--experiments", "toy-saturation",
        "--results", str(tmp_path))  # fmt: skip
    assert seen["battery"] == ("grpo", "opo")


def test_a_single_value_option_given_twice_is_refused(refused, tmp_path, committed_unchanged):
    line = refused("mujoco", "train-teacher", "--env", "Hopper-v5", "--env", "HalfCheetah-v5", "--out", str(tmp_path))
    assert "--env given 2 times (Hopper-v5, HalfCheetah-v5)" in line and "once per env" in line
    assert not any(tmp_path.iterdir())
    line = refused("verl", "command", "--run", "opo_table1", "--algo", "opo", "--algo", "grpo")
    assert "--algo given 2 times (opo, grpo)" in line


# items 5 and 14: config keys and types, nested tables included, checked before any work


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("light = { cauchy_scale = 0.3 }", "light = { cauchy_scal = 0.3 }",
         ["bandits.toml [quick]", "unknown setting 'cauchy_scal' in noise.cauchy.light",
          "did you mean 'cauchy_scale'"]),
        ("light = { cauchy_scale = 0.3 }", 'light = { cauchy_scale = "0.3" }',
         ["bandits.toml [quick]", "noise.cauchy.light.cauchy_scale must be of type float; got '0.3'"]),
        ("hidden = [128] ", 'hidden = ["128"] ', ["bandits.toml [quick]", "hidden[0] must be of type int; got '128'"]),
        ("hidden = [128] ", "hidden = [128.5] ", ["bandits.toml [quick]", "hidden[0] must be of type int; got 128.5"]),
        ("[quick.hparams.grpo]", "[quick.hparams.gpro]",
         ["bandits.toml [quick]", "hparams.gpro: no objective 'gpro' is registered", "did you mean hparams.grpo?"]),
    ],
    ids=["unknown-nested-key", "string-for-float", "string-in-int-list", "float-in-int-list", "typod-hparams-table"],
)  # fmt: skip
def test_a_bad_key_or_type_in_a_config_file_is_one_line(refused, tmp_path, committed_unchanged, old, new, words):
    out = tmp_path / "run"
    line = refused("bandits", *SMALL_BANDITS, "--config", _bandits_config(tmp_path, old, new), "--out", str(out))
    assert all(word in line for word in words), line
    assert not out.exists()


def test_a_hparams_table_of_a_registered_but_unselected_objective_is_allowed(tmp_path):
    """The decision for typo'd tables: a table must name a registered objective; one the run does not select
    is kept (a config states its tables for all its methods, and --methods narrows the run)."""
    from geobench.config import load_config
    from geobench.experiments import BANDITS

    config = load_config(BANDITS.config_class, BANDITS_TOML, "quick", {"methods": ("grpo",)})
    assert config.methods == ("grpo",) and "opo" in config.hparams


def test_a_set_naming_no_objective_is_refused_before_the_config(refused, tmp_path, committed_unchanged):
    line = refused("toy-saturation", "--set", "gpro.clip_low=0.1", "--out", str(tmp_path / "run"))
    assert "--set gpro.*: no objective 'gpro' is registered; did you mean --set grpo.*?" in line
    assert not (tmp_path / "run").exists()


def test_bandits_with_no_paper_method_draws_what_can_be_drawn(ran, tmp_path, committed_unchanged):
    """``--methods grpo`` once failed drawing (``argmax of an empty sequence``): the claim that needs the
    paper's methods is now inconclusive, the figures drawn."""
    figures = tmp_path / "figures"
    ran("bandits", *SMALL_BANDITS, "--methods", "grpo", "--out", str(tmp_path / "run"), "--figures", str(figures))
    table = (figures / "adpo_fig2a.md").read_text()
    assert (figures / "adpo_fig2a.png").exists()
    assert "0/0 (most wins: none, 0) | inconclusive" in table


# item 13: a plugin's loss is checked for a finite scalar, its exception one line


@pytest.mark.parametrize(
    "objective, words",
    [
        ("nan-loss", ["toy-saturation: objective nan-loss's loss is nan on its first call"]),
        ("grouped-loss", ["toy-saturation: objective grouped-loss's loss is (11, 1), not a scalar tensor"]),
        ("raising-loss", ["toy-saturation: objective raising-loss's loss raised ValueError: the probe's loss is "
                          f"broken (at {BAD_LOSSES}:26)"]),
    ],
)  # fmt: skip
def test_a_bad_loss_in_the_toy_is_one_line(refused, register_plugin, tmp_path, committed_unchanged, objective, words):
    out = tmp_path / "run"
    line = refused("toy-saturation", "--plugin", str(BAD_LOSSES), "--objectives", objective, "--grid", "11",
                   "--no-draw", "--quiet", "--out", str(out))  # fmt: skip
    assert all(word in line for word in words), line
    assert not (out / "saturation.csv").exists()


@pytest.mark.parametrize(
    "objective, executor, words",
    [
        ("nan-loss", "serial", ["objective nan-loss's loss is nan on its first call"]),
        ("grouped-loss", "serial", ["objective grouped-loss's loss is (64, 4), not a scalar tensor"]),
        ("raising-loss", "processes", ["objective raising-loss's loss raised ValueError", f"{BAD_LOSSES}:26"]),
    ],
)
def test_a_bad_loss_in_the_bandits_is_one_line(
    refused, register_plugin, tmp_path, committed_unchanged, objective, executor, words
):
    """Serially and from inside a spawned worker alike: the cell's key and the experiment named."""
    out = tmp_path / "run"
    line = refused("bandits", *SMALL_BANDITS, "--plugin", str(BAD_LOSSES), "--methods", objective, "--no-draw",
                   "--executor", executor, "--workers", "2", "--out", str(out))  # fmt: skip
    assert line.startswith("geobench: error: bandits: cell scenario=cauchy level=light hidden=128")
    assert all(word in line for word in words), line
    assert not (out / "winmass.csv").exists()


def test_a_raising_plugin_in_the_battery_is_one_line(ran, register_plugin, tmp_path, committed_unchanged):
    """After the notice that the baselines are computed (the budget's toy has none committed), one line."""
    err = ran("battery", "--plugin", str(BAD_LOSSES), "--algo", "raising-loss", "--budget", "tiny",
                   "--experiments", "toy-saturation", "--executor", "serial", "--quiet",
                   "--results", str(tmp_path), status=2)  # fmt: skip
    notice, line = err.strip().splitlines()
    assert notice.startswith("battery: no baselines of the tiny budget") and line.startswith("geobench: error: ")
    assert "toy-saturation: objective raising-loss's loss raised ValueError" in line and f"{BAD_LOSSES}:26" in line
    assert not (tmp_path / "battery" / "raising-loss" / "CARD.md").exists()


def test_the_loss_check_holds_where_seeds_are_stacked_and_on_the_llm_path(register_plugin):
    """The bandits and distillation call losses under vmap (per_seed_objective); the LLM loops call the bound
    objective directly: one check, in the registry's bound objective, covers both."""
    register_plugin(BAD_LOSSES)
    logp = torch.randn(2, 3, 4)
    with pytest.raises(BadLoss, match="objective nan-loss's loss is nan on its first call"):
        per_seed_objective("nan-loss")(logp, torch.randn(2, 3, 4), logp, logp)
    with pytest.raises(BadLoss, match=r"objective grouped-loss's loss is \(3, 4\), not a scalar"):
        per_seed_objective("grouped-loss")(logp, torch.randn(2, 3, 4), logp, logp)
    with pytest.raises(BadLoss, match="objective nan-loss's loss is nan"):
        make_objective("nan-loss")(random_batch())
    loss, _ = make_objective("grpo")(random_batch())  # a built-in's finite scalar passes
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_a_nan_loss_is_one_line_in_the_llm_loop_and_in_distillation(
    register_plugin, tiny_model, tiny_distill, tmp_path
):
    """End to end in the two experiments the CLI probes above do not run (they need a model or a teacher)."""
    import dataclasses

    from geobench.experiments import LLM, MUJOCO
    from tests.conftest import tiny_llm_config

    register_plugin(BAD_LOSSES)
    with pytest.raises(BadLoss, match=r"^llm: cell variant=nan-loss seed=0: objective nan-loss's loss is nan"):
        LLM.run(tiny_llm_config(tiny_model, algos=("nan-loss",)), tmp_path / "llm", show_progress=False)
    config = dataclasses.replace(tiny_distill, methods=("nan-listwise",))
    with pytest.raises(BadLoss, match=r"^mujoco: cell .*variant=nan-listwise.*: objective nan-listwise's loss is nan"):
        MUJOCO.run(config, tmp_path / "mujoco", show_progress=False)


# item 18: the same objective from the same source twice is a no-op


def test_an_installed_plugin_loaded_again_by_file_is_a_no_op(register_plugin, monkeypatch, tmp_path):
    point = metadata.EntryPoint(name="cispo", value="geobench_cispo", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [point] if group == point.group else [])
    monkeypatch.syspath_prepend(str(CISPO.parent))
    monkeypatch.delitem(sys.modules, "geobench_cispo", raising=False)
    assert plugins.load_entry_points() == ("cispo",)  # what `pip install -e examples/cispo` registers
    installed = get_objective("cispo")
    assert register_plugin(CISPO) == ()  # the README's --plugin examples/cispo/geobench_cispo.py
    assert get_objective("cispo") is installed
    changed = tmp_path / "geobench_cispo_edited.py"
    changed.write_text(CISPO.read_text().replace("clamp(max=1.0 + clip_high)", "clamp(max=2.0 + clip_high)"))
    with pytest.raises(ConfigError, match="objective 'cispo' is already registered .* with other code"):
        load_plugin(str(changed))
    monkeypatch.delitem(sys.modules, "geobench_cispo", raising=False)


# item 19: the minor ones


def test_workers_above_the_cells_are_capped_at_the_cells(monkeypatch):
    import geobench.executor as executor

    assert ExecutorConfig(kind="processes", workers=999).workers_for(3) == 3
    assert ExecutorConfig(kind="processes", workers=2).workers_for(3) == 2
    started = []
    pool = executor.ProcessPoolExecutor

    def recording_pool(max_workers, **kwargs):
        started.append(max_workers)
        return pool(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(executor, "ProcessPoolExecutor", recording_pool)
    written = {}
    cells = [Cell({"n": n}, abs, (-n,)) for n in range(2)]
    run_cells(cells, lambda key, value: written.update({key["n"]: value}), ExecutorConfig("processes", workers=999),
              description="probe", show_progress=False)  # fmt: skip
    assert started == [2] and written == {0: 0, 1: 1}


def test_a_plugin_hyperparameter_without_a_default_is_refused_at_registration(refused, register_plugin):
    line = refused("objectives", "--plugin", str(Path(__file__).parent / "plugins" / "no_default.py"))
    assert "no-default: hyperparameter 'width' of no_default has no default; give it one" in line
    assert "inspect._empty" not in line


@pytest.mark.parametrize(
    "setting, words",
    [
        ("typed-loss.scale=abc", "typed-loss: scale must be a number; got 'abc'"),
        ("typed-loss.label=3", "typed-loss: label must be a string; got 3"),
        ("typed-loss.scale=true", "typed-loss: scale must be a number; got True"),
    ],
)
def test_a_plugin_hyperparameter_of_the_wrong_type_is_refused(
    refused, register_plugin, tmp_path, committed_unchanged, setting, words
):
    """Checked against the default's type, or the annotation where the default is None (``str | None``)."""
    line = refused("toy-saturation", "--plugin", str(BAD_LOSSES), "--objectives", "typed-loss", "--set", setting,
                   "--quiet", "--out", str(tmp_path / "run"))  # fmt: skip
    assert words in line


def test_a_string_set_value_for_a_builtin_float_is_refused(refused, tmp_path, committed_unchanged):
    line = refused("toy-saturation", "--objectives", "grpo", "--set", "grpo.clip_low=wide", "--out", str(tmp_path))
    assert "grpo: clip_low must be a number" in line and "got 'wide'" in line


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_int_and_bool_rewards_become_floats_at_the_group_batch(dtype):
    """A verifier's 1/0 verdicts as ints or bools once failed inside the advantages (``mean(): could not
    infer output dtype``); the batch converts them to the log-probs' dtype."""
    batch = random_batch()
    verdicts = batch.rewards > 0
    given = GroupBatch(batch.logp, batch.mask, verdicts.to(dtype), batch.old_logp, batch.ref_logp)
    floats = GroupBatch(batch.logp, batch.mask, verdicts.to(batch.logp.dtype), batch.old_logp, batch.ref_logp)
    assert given.rewards.dtype == batch.logp.dtype
    for name in ("grpo", "opo", "adpo", "dpo"):
        torch.testing.assert_close(make_objective(name)(given)[0], make_objective(name)(floats)[0])
    with pytest.raises(ConfigError, match=r"GroupBatch.rewards must be a \(B, G\) tensor; got list"):
        GroupBatch(batch.logp, batch.mask, verdicts.tolist())


def test_a_battery_on_an_empty_results_folder_says_it_computes_the_baselines(ran, monkeypatch, tmp_path):
    import geobench.battery

    monkeypatch.setattr(geobench.battery, "run", lambda *a, **kw: [])  # the notice comes before any work
    err = ran("battery", "--algo", "grpo", "--budget", "tiny", "--experiments", "toy-saturation,bandits",
              "--results", str(tmp_path))  # fmt: skip
    lines = [line for line in err.splitlines() if line.startswith("battery:")]
    assert len(lines) == 1, err
    assert (
        "no baselines of the tiny budget" in lines[0] and "toy-saturation (6 methods), bandits (4 methods)" in lines[0]
    )
    assert not any(tmp_path.iterdir())
