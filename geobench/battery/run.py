"""``geobench battery``: measure objectives in every experiment their declared feedback allows.

For each objective and experiment (see :mod:`geobench.battery.plan`): the baselines' run is
found or completed, the objective's own cells run alone, and a ledger row records how many
cells were computed and how many reused. The card is then written from those CSVs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console

from geobench.battery.card import write_card
from geobench.battery.plan import BatteryConfig, Plan, card_dir, plan
from geobench.errors import BadLoss, NonFinite
from geobench.executor import ExecutorConfig
from geobench.results import read_meta, write_csv

LEDGER = "battery.csv"
_COLUMNS = ["experiment", "role", "folder", "cells", "computed", "reused", "wall_time_s"]  # folder: under --results


def run(
    config: BatteryConfig,
    results: Path,
    *,
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
    console: Console | None = None,
    rerun: bool = False,
) -> list[Path]:
    """Every objective of ``config`` through its experiments; returns the cards' paths. ``rerun``
    recomputes every cell, the baselines' included, instead of reusing it."""
    console = console or Console(stderr=True, quiet=not show_progress)
    return [
        run_objective(config, objective, results, show_progress, executor, console, rerun).card
        for objective in config.algos
    ]


@dataclass(frozen=True)
class ObjectiveRun:
    """What the battery did with one objective."""

    card: Path
    ledger: pd.DataFrame  # battery.csv's rows
    plans: list[Plan]  # the experiments it ran in
    failed: dict[str, str]  # experiment -> the one-line error: a non-finite loss or a diverged run there


def run_objective(
    config: BatteryConfig,
    objective: str,
    results: Path,
    show_progress: bool,
    executor: ExecutorConfig,
    console: Console,
    rerun: bool = False,
    figures: bool = True,
    keep_going: bool = False,
) -> ObjectiveRun:
    """One objective through its experiments. Without ``figures`` the card has its tables only (the
    leaderboard's cards; ``geobench battery`` draws them from the same runs). An objective whose loss is
    not finite or raises (:class:`~geobench.errors.BadLoss`) or whose run diverges
    (:class:`~geobench.errors.NonFinite`) stops the battery with that one line; under ``keep_going``
    (the leaderboard, over every objective) the experiment is recorded as failed, with the error."""
    plans, skipped = plan(config, objective, results, rerun)
    rows, ran, failed = [], [], {}
    for step in plans:
        console.rule(f"battery {objective}: {step.experiment.title}")
        try:
            rows += _run_stage(step, results, show_progress, executor, rerun)
            ran.append(step)
        except (BadLoss, NonFinite) as error:  # the objective cannot run here
            if not keep_going:
                raise
            failed[step.experiment.name] = str(error)
            console.print(f"battery {objective}: {error}")
    ledger = pd.DataFrame(rows, columns=_COLUMNS)
    folder = card_dir(results, objective, config)
    write_csv(ledger, folder / LEDGER)
    card = write_card(objective, config, ran, skipped, ledger, folder, figures, failed)
    return ObjectiveRun(card, ledger, ran, failed)


def _run_stage(step: Plan, results: Path, show_progress: bool, executor: ExecutorConfig, rerun: bool) -> list[dict]:
    rows = []
    runs = [("baselines", step.baseline_config, step.baseline_out, step.baseline_reused)]
    if not step.among_baselines:  # else its rows are the baselines' run's
        runs.append(("objective", step.config, step.out, False))
    for role, config, out, reused in runs:
        started = time.time()
        if not reused:  # a committed run is read as it is: never rerun, never rewritten
            step.experiment.run(
                config, out, profile=step.profile, show_progress=show_progress, executor=executor, rerun=rerun
            )
        meta = read_meta(out)
        computed = 0 if reused else meta["cells"] - meta["cells_resumed"]
        rows.append(
            {
                "experiment": step.experiment.name,
                "role": role,
                "folder": str(out.relative_to(results)),  # the card reads the same on any machine
                "cells": meta["cells"],
                "computed": computed,
                "reused": meta["cells"] - computed,
                "wall_time_s": round(time.time() - started, 3),
            }
        )
    return rows
