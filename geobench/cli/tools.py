"""The commands around the experiments: verl, objectives, figures, reproduce."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from geobench.cli.common import (
    PLUGIN,
    PROFILE,
    QUIET,
    RAY_ADDRESS,
    THREADS,
    WORKERS,
    app,
    console,
    executor_config,
    int_list,
)
from geobench.errors import ConfigError

verl_app = typer.Typer(no_args_is_help=True, help="Run the papers' LLM experiments on verl with geobench's losses.")
app.add_typer(verl_app, name="verl")
DATA_DIR = typer.Option("~/data/geobench", "--data-dir", help="Where verl's parquet files live (one folder per run).")


@verl_app.command("command")
def verl_command(
    run: str = typer.Option(..., "--run", help="opo_table1 or adpo_fig3 (experiments/verl/<run>.toml)."),
    algo: str = typer.Option(..., "--algo", help="An algorithm of that run, e.g. opo, adpo, grpo."),
    data_dir: str = DATA_DIR,
) -> None:
    """Print the verl.trainer.main_ppo command (hydra overrides) of one algorithm of a paper run."""
    from geobench.integrations import verl_config

    print(verl_config.command(run, algo, data_dir))


@verl_app.command("data")
def verl_data(
    run: str = typer.Option(..., "--run", help="The run the data is for (its folder under --data-dir)."),
    dataset: str = typer.Option("math-lighteval", "--dataset", help="math-lighteval (hub) or a local path."),
    levels: str = typer.Option(..., "--levels", help="MATH levels, e.g. 3 or 3,4."),
    data_dir: str = DATA_DIR,
) -> None:
    """Write MATH as verl's RL parquet (train/test) with geobench's prompts and gold answers."""
    from geobench.integrations import verl_config

    folder = Path(data_dir).expanduser() / run
    for path in verl_config.export_data(dataset, int_list(levels) or (), folder):
        console.print(f"wrote {path}")


@app.command("objectives")
def list_objectives(plugin: list[str] | None = PLUGIN) -> None:
    """Every registered objective (built-in, installed plugins, --plugin): feedback, geometry, source."""
    from geobench.objectives import REGISTRY, load_plugins

    load_plugins()

    table = Table(title="geobench objectives")
    table.add_column("name", no_wrap=True, style="bold")
    for column in ("feedback", "sampling", "optimization", "coordinates", "target", "defaults"):
        table.add_column(column)
    for name, entry in sorted(REGISTRY.items()):
        geo = entry.geometry
        defaults = ", ".join(f"{k}={v}" for k, v in entry.defaults.items())
        table.add_row(name, entry.feedback, geo.sampling, geo.optimization, geo.coordinates, geo.target, defaults)
    Console().print(table)


@app.command("figures")
def figures_command(
    results: Path = typer.Option(Path("results"), "--results", help="Folder of run folders."),
    out: Path = typer.Option(Path("figures"), "--out", help="Where figures and tables go."),
) -> None:
    """Rebuild every figure and table from results/*/ CSVs and the registry, then results/REPORT.md."""
    from geobench.report import build_all, write_report

    written, skipped = build_all(results, out)
    for path in written:
        console.print(f"wrote {path}")
    for name, why in skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {why}")
    console.print(f"wrote {write_report(results, out)}")


@app.command("reproduce")
def reproduce_command(
    profile: str = PROFILE,
    results: Path = typer.Option(Path("results"), "--results", help="Folder of run folders."),
    out: Path = typer.Option(Path("figures"), "--figures", help="Where figures and tables go."),
    quiet: bool = QUIET,
    executor: str = typer.Option("processes", "--executor", help="serial, processes (local cores) or ray."),
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """Run every experiment of a profile (resuming finished cells), draw everything, write REPORT.md."""
    from geobench.config import PROFILES
    from geobench.reproduce import reproduce

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    reproduce(
        profile,
        results,
        out,
        show_progress=not quiet,
        executor=executor_config(executor, workers, threads, ray_address),
    )
