"""What ``geobench battery`` runs: each experiment an objective's declared feedback allows, at a budget.

A budget (``experiments/battery.toml``) names, per experiment, the experiment's profile and the
settings it changes. For each experiment the battery builds two configs from it: the baselines'
(the experiment's own method list) and the objective's (the same config with the method list
replaced by the objective alone). The baselines' run is found by its config hash: the committed
run in ``results/`` when the hashes agree (read, never rerun or rewritten), else a run the battery
keeps under ``results/battery/baselines/<budget>/`` and resumes, so it is computed once for every
objective measured at that budget. Cells of one method do not depend on the other methods of
their sweep (each derives its random numbers from its own key and seed), so the objective's
cells, run alone, are the cells it would have had in the baselines' sweep.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geobench.config import PROFILES, experiment_file, load_config
from geobench.errors import ConfigError
from geobench.objectives import get_objective
from geobench.results import config_hash, profile_folder, read_meta


@dataclass(frozen=True)
class Experiment:
    """One experiment as the battery drives it."""

    name: str  # its results folder and the section of the card
    artifact: str  # experiments/<artifact>.toml
    title: str
    methods_field: str  # the config field listing the methods it compares
    feedback: tuple[str, ...]  # the feedback an objective must declare to run in it
    why_not: str  # the card's sentence for an objective it cannot run
    # (config class, run(config, out, *, profile, show_progress, executor) -> CSV), imported when used
    load: Callable[[], tuple[type, Callable[..., Path]]]


def _toy():
    from geobench import toy

    def run(config, out, *, profile, show_progress, executor):  # the toy is one process, milliseconds a cell
        return toy.run(config, out, profile=profile, show_progress=show_progress)

    return toy.ToyConfig, run


def _bandits():
    from geobench import bandits

    return bandits.BanditConfig, bandits.run


def _mujoco():
    from geobench.distill import sweep

    return sweep.DistillConfig, sweep.run


def _llm():
    from geobench import llm

    return llm.LLMConfig, llm.run


EXPERIMENTS = (
    Experiment(
        "toy-saturation",
        "opo_fig3",
        "Toy saturation (OPO Fig. 3)",
        "objectives",
        ("sampled", "pairwise", "listwise"),
        "",
        _toy,
    ),
    Experiment(
        "bandits",
        "adpo_fig2",
        "Noisy bandits and model scaling (ADPO Fig. 2)",
        "methods",
        ("sampled", "pairwise", "listwise"),
        "",
        _bandits,
    ),
    Experiment(
        "mujoco",
        "adpo_table2",
        "MuJoCo distillation (ADPO Table 2)",
        "methods",
        ("listwise",),
        "the teacher scores every candidate action, which is listwise feedback",
        _mujoco,
    ),
    Experiment(
        "llm",
        "opo_table1",
        "LLM math RL, quick regime (OPO Table 1, ADPO Fig. 3)",
        "algos",
        ("sampled", "listwise"),
        "the verifier gives one reward per sampled completion, which is sampled or listwise feedback",
        _llm,
    ),
)
BY_NAME = {e.name: e for e in EXPERIMENTS}


@dataclass(frozen=True)
class BatteryConfig:
    """The objectives to measure and the budget to measure them at (``experiments/battery.toml``)."""

    algos: tuple[str, ...]
    budget: str = "quick"
    experiments: tuple[str, ...] = tuple(BY_NAME)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # experiment -> its budget table
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # objective -> hyperparameters

    def __post_init__(self) -> None:
        if not self.algos:
            raise ConfigError("--algo is empty; name one or more objectives (see `geobench objectives`)")
        for name in self.experiments:
            if name not in BY_NAME:
                raise ConfigError(f"unknown experiment {name!r}; valid: {', '.join(BY_NAME)}")
        for algo in self.algos:
            get_objective(algo).validate(dict(self.hparams.get(algo, {})))
        for algo in self.hparams:
            if algo not in self.algos:
                raise ConfigError(f"--set {algo}.*: {algo!r} is not among --algo ({', '.join(self.algos)})")


def load_battery(
    algos: tuple[str, ...], budget: str, hparams: Mapping[str, Mapping[str, Any]], path: Path | None = None
) -> BatteryConfig:
    """The battery config of ``budget`` from ``experiments/battery.toml`` (or ``path``)."""
    path = path or experiment_file("battery")
    with path.open("rb") as handle:
        budgets = tomllib.load(handle)
    if budget not in budgets:
        raise ConfigError(f"unknown budget {budget!r}; valid: {', '.join(budgets)} (the tables of {path.name})")
    table = budgets[budget]
    return BatteryConfig(algos, budget, tuple(table), {k: dict(v) for k, v in table.items()}, hparams)


@dataclass(frozen=True)
class Plan:
    """One experiment for one objective: the configs to run and where their runs live."""

    experiment: Experiment
    objective: str
    profile: str
    baseline_config: Any
    config: Any
    baseline_out: Path
    out: Path
    baseline_reused: bool  # the committed run in results/ has the baselines' config hash


def experiment_configs(experiment: Experiment, settings: Mapping[str, Any]) -> tuple[str, Any]:
    """(profile, the baselines' config) of one experiment at a budget's settings."""
    values = dict(settings)
    profile = values.pop("profile", "quick")
    if profile not in PROFILES:
        raise ConfigError(f"battery: {experiment.name}.profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    cls, _ = experiment.load()
    return profile, load_config(cls, experiment_file(experiment.artifact), profile, values)


def plan(config: BatteryConfig, objective: str, results: Path) -> tuple[list[Plan], dict[str, str]]:
    """The experiments ``objective`` runs in, and for each one it cannot, the reason."""
    feedback = get_objective(objective).feedback
    plans, skipped = [], {}
    for name in config.experiments:
        experiment = BY_NAME[name]
        if feedback not in experiment.feedback:
            skipped[name] = f"{objective} declares {feedback} feedback; {experiment.why_not}"
            continue
        profile, baseline = experiment_configs(experiment, config.settings.get(name, {}))
        changes: dict[str, Any] = {experiment.methods_field: (objective,)}
        if hasattr(baseline, "hparams"):  # distillation runs an objective outside its table at its defaults
            given = {**baseline.hparams.get(objective, {}), **config.hparams.get(objective, {})}
            changes["hparams"] = {**baseline.hparams, objective: given}
        mine = dataclasses.replace(baseline, **changes)
        committed = results / profile_folder(name, profile)
        reused = (read_meta(committed) or {}).get("config_hash") == config_hash(baseline)
        baseline_out = committed if reused else results / "battery" / "baselines" / config.budget / name
        out = card_dir(results, objective) / name
        plans.append(Plan(experiment, objective, profile, baseline, mine, baseline_out, out, reused))
    return plans, skipped


def card_dir(results: Path, objective: str) -> Path:
    """``results/battery/<objective>``: the objective's runs and its ``CARD.md``."""
    return results / "battery" / objective
