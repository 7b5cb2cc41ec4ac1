"""What ``geobench battery`` runs: each experiment an objective's declared feedback allows, at a budget.

A budget (``experiments/battery.toml``) names, per experiment, the experiment's profile and the
settings it changes. For each experiment the battery builds two configs from it: the baselines'
(the experiment's own method list) and the objective's (the same config with the method list
replaced by the objective alone). The baselines' run is found by its identity (config hash and
every input its cells read, :meth:`geobench.experiments.Experiment.reusable`): the committed run
in ``results/`` when the identities agree (read, never rerun or rewritten), else a run the battery
keeps under ``results/battery/baselines/<budget>/`` and resumes, so it is computed once for every
objective measured at that budget. Cells of one method do not depend on the other methods of
their sweep (each derives its random numbers from its own key and seed), so the objective's
cells, run alone, are the cells it would have had in the baselines' sweep; an objective that is one
of an experiment's baselines is read from the baselines' run. Where the experiment compares updates
pair by pair (the LLM's per-pair check), the objective's run replays every baseline's update on its
own batches (``compare_with``), so its card and the leaderboard can tell which baselines it coincides with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geobench.config import PROFILES, experiment_file, read_toml
from geobench.errors import ConfigError
from geobench.experiments import BANDITS, LLM, MUJOCO, TOY, Experiment
from geobench.objectives import get_objective
from geobench.report.cards import card_folder
from geobench.results import profile_folder

# The experiments an objective is put through, from the catalog, in the card's order.
EXPERIMENTS = (TOY, BANDITS, MUJOCO, LLM)
BY_NAME = {e.name: e for e in EXPERIMENTS}


@dataclass(frozen=True)
class BatteryConfig:
    """The objectives to measure and the budget to measure them at (``experiments/battery.toml``)."""

    algos: tuple[str, ...]
    budget: str = "quick"
    experiments: tuple[str, ...] = tuple(BY_NAME)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # experiment -> its budget table
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # objective -> hyperparameters
    # experiment -> feedback -> the baseline an objective of that feedback is compared with
    # (experiments/references.toml); an experiment without one has no "against the reference" column
    references: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

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

    def reference(self, experiment: str, objective: str) -> str | None:
        """The baseline ``objective`` is compared with in ``experiment``, by its feedback (None: none)."""
        return self.references.get(experiment, {}).get(get_objective(objective).feedback)


def load_battery(
    algos: tuple[str, ...], budget: str, hparams: Mapping[str, Mapping[str, Any]], path: Path | None = None
) -> BatteryConfig:
    """The battery config of ``budget`` from ``experiments/battery.toml`` (or ``path``), with the
    references of ``experiments/references.toml``."""
    path = path or experiment_file("battery")
    budgets = read_toml(path)
    if budget not in budgets:
        raise ConfigError(f"unknown budget {budget!r}; valid: {', '.join(budgets)} (the tables of {path.name})")
    table = budgets[budget]
    references = load_references()
    return BatteryConfig(algos, budget, tuple(table), {k: dict(v) for k, v in table.items()}, hparams, references)


def load_references(path: Path | None = None) -> dict[str, dict[str, str]]:
    """``experiments/references.toml`` (or ``path``): {experiment: {feedback: registered objective}}."""
    path = path or experiment_file("references")
    tables = read_toml(path)
    for experiment, table in tables.items():
        if experiment not in BY_NAME:
            raise ConfigError(f"{path.name}: [{experiment}] is no experiment; valid: {', '.join(BY_NAME)}")
        for feedback, name in table.items():
            if feedback not in BY_NAME[experiment].feedback:
                raise ConfigError(f"{path.name}: [{experiment}] {feedback} is feedback {experiment} does not give")
            if get_objective(name).feedback not in BY_NAME[experiment].feedback:
                raise ConfigError(f"{path.name}: [{experiment}] {feedback} = {name!r} cannot run in {experiment}")
    return {k: dict(v) for k, v in tables.items()}


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
    baseline_reused: bool  # the committed run in results/ has the baselines' identity
    among_baselines: bool = False  # the objective is one of the baselines: its rows are read from their run


def experiment_configs(experiment: Experiment, settings: Mapping[str, Any]) -> tuple[str, Any]:
    """(profile, the baselines' config) of one experiment at a budget's settings."""
    values = dict(settings)
    profile = values.pop("profile", "quick")
    if profile not in PROFILES:
        raise ConfigError(f"battery: {experiment.name}.profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    return profile, experiment.load(profile, values)


def plan(
    config: BatteryConfig, objective: str, results: Path, rerun: bool = False
) -> tuple[list[Plan], dict[str, str]]:
    """The experiments ``objective`` runs in, and for each one it cannot, the reason. Under ``rerun``
    no committed run is reused: the baselines are recomputed under ``results/battery/baselines/``."""
    feedback = get_objective(objective).feedback
    plans, skipped = [], {}
    for name in config.experiments:
        experiment = BY_NAME[name]
        if feedback not in experiment.feedback:
            skipped[name] = f"{objective} declares {feedback} feedback; {experiment.why_not}"
            continue
        profile, baseline = experiment_configs(experiment, config.settings.get(name, {}))
        methods = tuple(getattr(baseline, experiment.methods_field))
        changes: dict[str, Any] = {experiment.methods_field: (objective,)}
        if hasattr(baseline, "hparams"):  # distillation runs an objective outside its table at its defaults
            given = {**baseline.hparams.get(objective, {}), **config.hparams.get(objective, {})}
            changes["hparams"] = {**baseline.hparams, objective: given}
        mine = dataclasses.replace(baseline, **changes)
        if hasattr(mine, "compare_with"):
            mine = mine.compare_with(methods)
        committed = results / profile_folder(name, profile)
        reused = not rerun and experiment.reusable(committed, baseline)
        baseline_out = committed if reused else results / "battery" / "baselines" / config.budget / name
        among = objective in methods and not config.hparams.get(objective)  # at other settings it runs itself
        out = baseline_out if among else card_dir(results, objective, config) / name
        plans.append(Plan(experiment, objective, profile, baseline, mine, baseline_out, out, reused, among))
    return plans, skipped


def card_dir(results: Path, objective: str, config: BatteryConfig) -> Path:
    """``results/battery/<objective>`` (the quick budget, every experiment), else a folder named by the
    budget and the experiments (:func:`~geobench.report.cards.card_folder`): the objective's runs and its
    ``CARD.md``, kept apart per budget and subset so that no run overwrites another's card."""
    return results / "battery" / card_folder(objective, config.budget, config.experiments, tuple(BY_NAME))
