"""``geobench leaderboard``: every registered objective (built-in and plugin) through the battery at a
budget, side by side.

Each objective goes through :func:`geobench.battery.run.run_objective`: its baselines are the
committed runs where their identity matches (else the battery's shared baselines run, computed
once), its own cells are reused wherever a finished cell has the same config and inputs, and its
card is written (tables only). Then every experiment's rows of every objective (a baseline's from
the baselines' run, any other's from its own run) give the leaderboard's CSVs in its folder:

- ``finals.csv`` and ``identities.csv`` (:mod:`geobench.battery.finals`);
- ``objectives.csv``: each objective's feedback, source, who registered it, and its geometry row;
- ``cells.csv``: the battery's ledgers (cells computed and reused per objective, experiment, role);
- ``failures.csv``: the experiments in which an objective's loss was not finite, with the error;
- ``leaderboard.json``: the budget, objectives, experiments, references, threads and wall time;

and ``LEADERBOARD.md`` with its heat map is drawn from those alone
(:func:`geobench.report.leaderboard.write_leaderboard`, also what ``geobench figures`` redraws).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from rich.console import Console

from geobench.battery.card import registered_by
from geobench.battery.finals import FINALS_COLUMNS, IDENTITY_COLUMNS, START, finals, identities
from geobench.battery.plan import BY_NAME, BatteryConfig, Plan
from geobench.battery.run import run_objective
from geobench.executor import ExecutorConfig
from geobench.objectives import REGISTRY, find_objective
from geobench.progress import progress_bar
from geobench.report.leaderboard import FAILURE_COLUMNS, write_leaderboard
from geobench.report.llm_pairs import read_pairs
from geobench.results import atomic_write_text, read_run, write_csv


def leaderboard_folder(results: Path, budget: str) -> Path:
    """``results/leaderboard`` at the quick budget, ``results/leaderboard@<budget>`` at another."""
    return Path(results) / ("leaderboard" if budget == "quick" else f"leaderboard@{budget}")


def every_objective() -> tuple[str, ...]:
    """Every registered objective, the plugins' included (they register when loaded), by name."""
    return tuple(sorted(REGISTRY))


def run(
    config: BatteryConfig,
    results: Path,
    *,
    out: Path | None = None,
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
    console: Console | None = None,
    rerun: bool = False,
) -> Path:
    """Every objective of ``config`` through the battery, then the leaderboard's CSVs and
    ``LEADERBOARD.md`` in ``out`` (default :func:`leaderboard_folder`); returns its path."""
    console = console or Console(stderr=True, quiet=not show_progress)
    folder = Path(out) if out is not None else leaderboard_folder(results, config.budget)
    started = time.time()
    ledgers, plans, failed = [], {}, []
    with progress_bar(show_progress) as bar:
        objectives = bar.add_task("leaderboard: objectives", total=len(config.algos))
        cells = bar.add_task("leaderboard: cells (computed + reused)", total=None)
        for objective in config.algos:
            bar.update(objectives, description=f"leaderboard: {objective}")
            done = run_objective(
                config, objective, results, show_progress, executor, console, rerun, figures=False, keep_going=True
            )
            ledger, plans[objective] = done.ledger, done.plans
            ledgers.append(ledger.assign(objective=objective))
            failed += [(objective, experiment, error) for experiment, error in done.failed.items()]
            bar.advance(objectives)
            bar.advance(cells, int(ledger["cells"].sum()))
    ledger = pd.concat(ledgers, ignore_index=True)
    final, same = collect(plans)
    write_csv(final, folder / "finals.csv")
    write_csv(same, folder / "identities.csv")
    shown = sorted(set(config.algos) | set(final["objective"]) - {START})  # the baselines measured beside them
    write_csv(objectives_table(tuple(shown)), folder / "objectives.csv")
    write_csv(ledger[["objective", *ledger.columns[:-1]]], folder / "cells.csv")
    write_csv(pd.DataFrame(failed, columns=list(FAILURE_COLUMNS)), folder / "failures.csv")
    meta = {
        "budget": config.budget,
        "objectives": list(config.algos),
        "experiments": list(config.experiments),
        "titles": {name: BY_NAME[name].title for name in config.experiments},
        "references": {e: dict(r) for e, r in config.references.items() if e in config.experiments},
        "threads": executor.threads,
        "workers": executor.parallelism,
        "wall_time_s": round(time.time() - started, 1),
    }
    atomic_write_text(folder / "leaderboard.json", json.dumps(meta, indent=2) + "\n")
    return write_leaderboard(folder)[-1]


def collect(plans: Mapping[str, list[Plan]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(finals, identities) of every experiment, from every objective's plans (runs finished)."""
    by_experiment: dict[str, list[Plan]] = {}
    for steps in plans.values():
        for step in steps:
            by_experiment.setdefault(step.experiment.name, []).append(step)
    final, same = [], []
    for name, steps in by_experiment.items():
        rows, pairs = experiment_rows(steps)
        final.append(finals(name, rows, steps[0].baseline_config))
        same.append(identities(name, rows, pairs))
    final_frame = pd.concat(final, ignore_index=True) if final else pd.DataFrame(columns=list(FINALS_COLUMNS))
    same_frame = pd.concat(same, ignore_index=True) if same else pd.DataFrame(columns=list(IDENTITY_COLUMNS))
    return final_frame, same_frame


def experiment_rows(steps: list[Plan]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """One experiment's rows of every objective in ``steps`` and its per-pair check rows (or None):
    the baselines' run whole (its reference rows included), each other objective's own rows."""
    baseline_out = steps[0].baseline_out
    parts = [read_run(baseline_out)[0]]
    pair_parts = [read_pairs(baseline_out)]
    for step in steps:
        if step.among_baselines:
            continue
        frame = read_run(step.out)[0]
        parts.append(frame[frame["variant"] == step.objective])
        pair_parts.append(read_pairs(step.out))
    pairs = [p for p in pair_parts if p is not None]
    return pd.concat(parts, ignore_index=True), (pd.concat(pairs, ignore_index=True) if pairs else None)


def objectives_table(names: tuple[str, ...]) -> pd.DataFrame:
    """objectives.csv: name, feedback, source, registered by, and the geometry row of each objective (a
    baseline that is no registered objective has its name and source only)."""
    rows = []
    for name in names:
        entry = find_objective(name)
        if entry is None:  # a baseline the experiment computes itself (MuJoCo's closed-form kd-gaussian)
            rows.append({"objective": name, "feedback": "-", "source": "the experiment's own method, not an objective"})
            continue
        geometry = dataclasses.asdict(entry.geometry)
        rows.append(
            {
                "objective": name,
                "feedback": entry.feedback,
                **{field.replace("_", " "): value for field, value in geometry.items()},
                "source": entry.paper,
                "registered by": registered_by(name),
            }
        )
    return pd.DataFrame(rows)
