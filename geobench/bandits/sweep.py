"""ADPO Fig. 2: the bandit sweep (12 scenarios x methods) and the model-scaling study."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd

from geobench.bandits.env import LEVELS, NOISES, BanditEnv, NoiseLevel
from geobench.bandits.train import (
    ANCHORS,
    METHODS,
    TrainSettings,
    evaluate,
    get_method,
    metric_rows,
    pretrain_reference,
    train_cell,
)
from geobench.config import check_caps, check_lists
from geobench.errors import ConfigError
from geobench.executor import Cell, ExecutorConfig, pending_cells, run_cells
from geobench.identity import objective_inputs, package_inputs
from geobench.objectives import check_tables, get_objective
from geobench.progress import StepReport, no_report
from geobench.results import RunDir

EXPERIMENT = "bandits"
# A cell trains all its seeds stacked in one process: 200 seeds at hidden 128 took 450 MB more
# than 10 (~2.4 MB a seed, mostly evaluation activations), so 10,000 seeds would want ~24 GB.
# A cell draws every step's random numbers up front (contexts: seeds x steps x batch x dim floats).
CAPS = {
    "seeds": (1_000, "seeds train stacked in one process, ~2.4 MB each at hidden 128; the paper profile runs 10"),
    "hidden": (4_096, "evaluation activations grow with the width; the papers' widest is 256"),
    "scaling_hidden": (4_096, "evaluation activations grow with the width; the papers' widest is 256"),
    "steps": (100_000, "a cell draws every step's contexts and noise up front; the paper profile runs 1,000"),
}


@dataclass(frozen=True)
class BanditConfig:
    """Every setting of the bandit study; sources and reasons in ``experiments/adpo_fig2.toml``."""

    noises: tuple[str, ...] = NOISES
    levels: tuple[str, ...] = LEVELS
    methods: tuple[str, ...] = tuple(METHODS)
    hidden: tuple[int, ...] = (128,)
    seeds: int = 5
    seed: int = 0
    steps: int = 300
    batch_contexts: int = 64
    samples_per_context: int = 4
    epochs: int = 4
    lr: float = 5e-4
    weight_decay: float = 0.01
    ref_steps: int = 30
    dim: int = 8
    items: int = 10
    reward_hidden: int = 32
    env_seed: int = 0
    eval_contexts: int = 2048
    eval_every: int = 25
    trpo_max_kl: float = 0.01
    trpo_damping: float = 0.1
    trpo_cg_iters: int = 10
    scaling: bool = False
    scaling_noise: str = "cauchy"
    scaling_level: str = "medium"
    scaling_hidden: tuple[int, ...] = (64, 128, 256)
    noise: Mapping[str, Mapping[str, Annotated[Mapping[str, float], NoiseLevel]]] = field(default_factory=dict)
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    anchors: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_lists(self, "noises", "levels", "methods", "hidden")
        check_caps(self, CAPS)
        check_tables(self.hparams)
        for name, anchor in self.anchors.items():
            get_method(name)
            if anchor not in ANCHORS:
                raise ConfigError(f"anchor for {name!r} must be one of {', '.join(ANCHORS)}; got {anchor!r}")
        _check_names("noise", self.noises, NOISES)
        _check_names("level", self.levels, LEVELS)
        for name in self.methods:
            method = get_method(name)
            get_objective(method.objective).validate(dict(self.hparams.get(name, {})))
        scenarios = {(n, lv) for n in self.noises for lv in self.levels}
        if self.scaling:
            scenarios.add((self.scaling_noise, self.scaling_level))
        for noise, level in sorted(scenarios):
            self.noise_level(noise, level)
        if self.seeds < 1 or self.steps < 1:
            raise ConfigError(f"seeds and steps must be >= 1; got {self.seeds}, {self.steps}")
        if min(self.hidden + self.scaling_hidden) < 1:
            raise ConfigError("hidden sizes must be positive")

    @property
    def seed_ids(self) -> list[int]:
        """seed, seed + 1, ..., seed + seeds - 1: every cell trains these together."""
        return list(range(self.seed, self.seed + self.seeds))

    def noise_level(self, noise: str, level: str) -> NoiseLevel:
        _check_names("noise", (noise,), NOISES)
        _check_names("level", (level,), LEVELS)
        try:
            return NoiseLevel(**self.noise[noise][level])
        except KeyError:
            raise ConfigError(f"the config gives no parameters for noise {noise!r} at level {level!r}") from None

    def env(self) -> BanditEnv:
        return BanditEnv(self.dim, self.items, self.reward_hidden, self.env_seed)

    def settings(self) -> TrainSettings:
        return TrainSettings(**{f: getattr(self, f) for f in TrainSettings.__dataclass_fields__})

    def cells(self) -> list[tuple[str, str, int, str]]:
        """(noise, level, hidden, method) for the main sweep, then the scaling study's extras."""
        cells = [(n, lv, h, m) for n in self.noises for lv in self.levels for h in self.hidden for m in self.methods]
        if self.scaling:
            cells += [(self.scaling_noise, self.scaling_level, h, m) for h in self.scaling_hidden for m in self.methods]
        return list(dict.fromkeys(cells))  # the scaling study shares its hidden-128 cells with the sweep


def _check_names(kind: str, given: tuple[str, ...], valid: tuple[str, ...]) -> None:
    for name in given:
        if name not in valid:
            raise ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}, all")


def run(
    config: BanditConfig,
    out: Path | str,
    *,
    profile: str = "custom",
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
    rerun: bool = False,
) -> Path:
    """Run every cell not already on disk (every cell under ``rerun``); returns the merged CSV
    ``DIR/winmass.csv``."""
    run_dir = RunDir(out, EXPERIMENT, config, inputs=cell_inputs, rerun=rerun)
    keys = [_reference_key(h) for h in dict.fromkeys(h for _, _, h, _ in config.cells())]
    cells = [Cell(key, _reference_cell, (config, key["hidden"])) for key in keys]
    for noise, level, hidden, method in config.cells():
        key = {"scenario": noise, "level": level, "hidden": hidden, "variant": method}
        cells.append(Cell(key, _method_cell, (config, noise, level, hidden, method), reports_steps=True))
    run_cells(
        pending_cells(cells, run_dir.done),
        run_dir.write_cell,
        executor,
        description="bandit cells",
        show_progress=show_progress,
    )
    return run_dir.finish("winmass", profile, extra={"torch_threads": executor.threads})


def cell_inputs(key: Mapping[str, Any]) -> dict[str, str]:
    """What a cell's rows depend on besides the config (:mod:`geobench.identity`): its method's
    objective's code (the reference cell pretrains with the sweep's own code, no objective)."""
    variant = key["variant"]
    entries = [] if variant == "reference" else [get_objective(get_method(variant).objective)]
    return {**objective_inputs(entries), **package_inputs()}


def run_inputs(config: BanditConfig) -> dict[str, str]:
    """The union of every cell's inputs, as ``run.json`` records it."""
    return {k: v for m in ("reference", *config.methods) for k, v in cell_inputs({"variant": m}).items()}


def _reference_key(hidden: int) -> dict[str, Any]:
    return {"scenario": "clean", "level": "none", "hidden": hidden, "variant": "reference"}


def _reference(config: BanditConfig, hidden: int) -> dict[str, Any]:
    """The reference policy of one hidden size: 30 cheap steps, so every cell pretrains its own
    (the same tensors in any process) rather than waiting on a shared one."""
    return pretrain_reference(config.env(), hidden, config.seed_ids, config.settings())


def _reference_cell(config: BanditConfig, hidden: int) -> pd.DataFrame:
    """The reference policy's WinMass, once per hidden size (it sees no noise)."""
    rows = metric_rows(evaluate(config.env(), _reference(config, hidden), config.eval_contexts), config.seed_ids, 0)
    return rows.assign(**_reference_key(hidden))


def _method_cell(
    config: BanditConfig, noise: str, level: str, hidden: int, method: str, report: StepReport = no_report
) -> pd.DataFrame:
    """All seeds of one (scenario, level, hidden, method) cell; ``report`` sees every step."""
    rows = train_cell(
        config.env(),
        config.noise_level(noise, level),
        (noise, level, config.env_seed),
        method,
        config.hparams.get(method, {}),
        _reference(config, hidden),
        config.seed_ids,
        config.settings(),
        on_step=report,
        anchor=config.anchors.get(method),
    )
    return rows.assign(scenario=noise, level=level, hidden=hidden, variant=method)
