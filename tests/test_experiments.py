"""The experiment catalog and make reproduce's stages: one table, one run signature, configs unchanged."""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from geobench.experiments import EXPERIMENTS
from geobench.reproduce import STAGES
from geobench.results import config_dict, config_hash, profile_folder, read_meta

ROOT = Path(__file__).resolve().parents[1]

# Stage configs without a committed run, as hashed before the profiles inherited: a change to a
# TOML file that moves one of them must be meant (then rerun the stage and update the hash here).
UNCOMMITTED = {
    ("toy-saturation", "paper"): "5d8303754d64",
    ("bandits-onpolicy-anchor", "paper"): "cc140384632a",
    # issue 25: good-accuracy, chat prompts, data epochs, test-split evaluation, ADPO's batch read per GPU x 4
    # GPUs; the paper profiles' DAPO clip_low 0, OPO in both forms, OPO at verl's lr schedule and weight decay,
    # ADPO's alpha 0.2 / beta 0.5
    ("llm", "paper"): "f9652a0fe61f",
    ("llm-adpo", "paper"): "ceb365e6507d",
    ("llm-update-time", "quick"): "2f0b2496c26c",  # the interleaved update-time benchmark (issue 21 item 7)
    ("llm-opo-v5-ood", "quick"): "b4489807afc1",  # OPO v5 Experiment 2 (issue 25): not yet run by make reproduce
    ("llm-opo-v5-ood", "paper"): "1a25a315e1fe",
}
# Stages changed on purpose since their committed run, which a rerun will bring back in step
# (then the entry goes); none since the runs committed with issues 21 and 25.
STALE: set[tuple[str, str]] = set()
RUNS = [(stage, profile) for stage in STAGES for profile in stage.profiles]


def test_importing_the_catalog_imports_no_experiment():
    code = (
        "import sys, geobench.experiments; print(sorted(m for m in sys.modules if m.startswith(('torch', 'geobench'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(loaded) == ["geobench", "geobench.config", "geobench.errors", "geobench.experiments"]


@pytest.mark.parametrize("stage", STAGES, ids=[s.folder for s in STAGES])
def test_every_stage_runs_with_the_catalogs_one_signature(stage):
    # make reproduce calls every stage's run through Experiment.run, the entries kept out of the CLI's
    # catalog (the interleaved update-time benchmark) included
    module, _, function = stage.experiment.runner.partition(":")
    parameters = inspect.signature(getattr(importlib.import_module(module), function)).parameters
    assert list(parameters) == ["config", "out", "profile", "show_progress", "executor", "rerun"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_runs_with_one_signature_under_its_own_name(name):
    experiment = EXPERIMENTS[name]
    module, _, function = experiment.runner.partition(":")
    assert importlib.import_module(module).EXPERIMENT == name  # the CSV's experiment column
    parameters = inspect.signature(getattr(importlib.import_module(module), function)).parameters
    assert list(parameters) == ["config", "out", "profile", "show_progress", "executor", "rerun"]
    quick = experiment.load("quick")
    assert getattr(quick, experiment.methods_field)  # the methods it compares
    module, _, function = experiment.inputs.partition(":")  # the inputs its cells read besides the config
    assert all(isinstance(v, str) for v in getattr(importlib.import_module(module), function)(quick).values())
    module, _, function = experiment.draw.partition(":")
    assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("stage, profile", RUNS, ids=[f"{s.folder}-{p}" for s, p in RUNS])
def test_each_stage_config_is_the_one_its_committed_run_recorded(stage, profile):
    config = stage.config(profile)
    meta = read_meta(ROOT / "results" / profile_folder(stage.folder, profile))
    if meta is None:
        assert config_hash(config) == UNCOMMITTED[stage.folder, profile]
    elif (stage.folder, profile) in STALE:
        assert config_hash(config) != meta["config_hash"]  # rerun: then drop it from STALE
    else:
        assert config_dict(config) == meta["config"] and config_hash(config) == meta["config_hash"]


def test_the_opo_form_stages_run_opo_with_the_forms_hyperparameters():
    from geobench.objectives.opo_authors import AUTHORS_CODE

    forms = {s.folder: s.config("quick") for s in STAGES if s.form}
    assert forms["llm-opo-code"].algos == ("opo",) and forms["llm-opo-code"].hparams["opo"] == AUTHORS_CODE
    assert forms["llm-opo-escort-no-ref"].hparams["opo"] == {"alpha": 0.4, "mu": 1.0, "escort_ref": False}
