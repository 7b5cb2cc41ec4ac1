"""``geobench battery``: any objective, plugin or built-in, through every experiment its feedback allows."""

from __future__ import annotations

from pathlib import Path

import typer

from geobench.cli.common import (
    FAN_OUT,
    PLUGIN,
    QUIET,
    RAY_ADDRESS,
    RERUN,
    SET,
    THREADS,
    WORKERS,
    app,
    console,
    executor_config,
    joined,
    list_option,
    name_list,
    parse_set,
    path_option,
    writable_folder,
)
from geobench.config import parse_list
from geobench.experiments import EXPERIMENTS


@app.command("battery")
def battery_command(
    algo: list[str] = typer.Option(
        ...,
        "--algo",
        help="Objectives to measure, e.g. cispo or cispo,grpo (see `objectives`). Repeatable: the values are merged.",
    ),
    budget: str = typer.Option(
        "quick",
        "--budget",
        help="quick (the committed runs' settings: baselines reused) or tiny (minutes, no verdicts).",
    ),
    experiments: list[str] | None = list_option(
        "--experiments", f"A comma subset of {', '.join(EXPERIMENTS)} (default: the budget's)."
    ),
    hparam: list[str] | None = SET,
    results: Path = path_option(Path("results"), "--results", "Folder of run folders; cards go to its battery/."),
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    executor: str = FAN_OUT,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
    rerun: bool = RERUN,
) -> None:
    """A report card per objective: its numbers beside the papers' baselines in every experiment it can run."""
    import dataclasses

    from geobench.battery import load_battery, run
    from geobench.battery.plan import BY_NAME

    writable_folder(results, "--results")
    config = load_battery(parse_list(joined(algo)) or (), budget, parse_set(hparam) or {})
    chosen = name_list(experiments, "--experiments", BY_NAME)
    if chosen is not None:
        config = dataclasses.replace(config, experiments=chosen)
    pool = executor_config(executor, workers, threads, ray_address)
    if rerun:
        console.print("--rerun: recomputing every cell, the baselines' included, none reused")
    _say_baselines(config, results, rerun)
    for card in run(config, results, show_progress=not quiet, executor=pool, rerun=rerun):
        console.print(f"wrote {card}")


def _say_baselines(config, results: Path, rerun: bool) -> None:
    """One line before any work when the baselines are to be computed, not read: with ``--results`` a folder
    without the committed runs (or with runs of other configs) the battery first runs every baseline."""
    from geobench.battery.plan import plan
    from geobench.results import read_meta

    todo = {}
    for objective in config.algos:
        for step in plan(config, objective, results, rerun=rerun)[0]:
            if not step.baseline_reused and read_meta(step.baseline_out) is None:
                todo[step.experiment.name] = len(getattr(step.baseline_config, step.experiment.methods_field))
    if todo:
        runs = ", ".join(f"{name} ({methods} methods)" for name, methods in todo.items())
        console.print(
            f"battery: no baselines of the {config.budget} budget under {results} (no committed run of the same "
            f"config): computing them first, once, for {runs} under {results / 'battery' / 'baselines'}"
        )


@app.command("leaderboard")
def leaderboard_command(
    algo: list[str] | None = list_option(
        "--algo", "Objectives to measure (default: every registered one, the --plugin ones included)."
    ),
    budget: str = typer.Option(
        "quick",
        "--budget",
        help="quick (the committed runs' settings: baselines reused) or tiny (minutes, no verdicts).",
    ),
    experiments: list[str] | None = list_option(
        "--experiments", f"A comma subset of {', '.join(EXPERIMENTS)} (default: the budget's)."
    ),
    results: Path = path_option(Path("results"), "--results", "Folder of run folders; cards go to its battery/."),
    out: Path | None = path_option(
        None, "--out", "The leaderboard's folder (default: RESULTS/leaderboard, RESULTS/leaderboard@BUDGET)."
    ),
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    executor: str = FAN_OUT,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
    rerun: bool = RERUN,
) -> None:
    """Every registered objective through the battery, side by side: LEADERBOARD.md, its heat map and CSVs."""
    import dataclasses

    from geobench.battery import load_battery
    from geobench.battery.leaderboard import every_objective, run
    from geobench.battery.plan import BY_NAME

    writable_folder(results, "--results")
    if out is not None:
        writable_folder(out, "--out")
    chosen_algos = parse_list(joined(algo)) if algo else every_objective()
    config = load_battery(tuple(chosen_algos), budget, {})
    chosen = name_list(experiments, "--experiments", BY_NAME)
    if chosen is not None:
        config = dataclasses.replace(config, experiments=chosen)
    pool = executor_config(executor, workers, threads, ray_address)
    if rerun:
        console.print("--rerun: recomputing every cell, the baselines' included, none reused")
    _say_baselines(config, results, rerun)
    path = run(config, results, out=out, show_progress=not quiet, executor=pool, rerun=rerun)
    console.print(f"wrote {path}")
