"""The commands around the experiments: verl, objectives, figures, reproduce."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from geobench.cli.common import (
    FAN_OUT,
    PLUGIN,
    PROFILE,
    QUIET,
    RAY_ADDRESS,
    RERUN,
    THREADS,
    WORKERS,
    app,
    console,
    executor_config,
    existing_folder,
    int_list,
    joined,
    list_option,
    path_option,
    single,
    writable_folder,
)
from geobench.errors import ConfigError

verl_app = typer.Typer(no_args_is_help=True, help="Run the papers' LLM experiments on verl with geobench's losses.")
app.add_typer(verl_app, name="verl")
DATA_DIR = path_option("~/data/geobench", "--data-dir", "Where verl's parquet files live (one folder per run).")


@verl_app.command("command")
def verl_command(
    run: str = typer.Option(..., "--run", help="opo_table1 or adpo_fig3 (experiments/verl/<run>.toml)."),
    algo: list[str] = typer.Option(..., "--algo", help="An algorithm of that run, e.g. opo, adpo, grpo."),
    data_dir: Path = DATA_DIR,
    gpus: int | None = typer.Option(None, "--gpus", help="GPUs on the node (default: the run's n_gpus, 8)."),
) -> None:
    """Print the verl.trainer.main_ppo command of one algorithm of a paper run, generated from the
    same resolved LLMConfig `geobench llm --profile paper` runs (notes on stderr where verl departs)."""
    from geobench.integrations import verl_config

    algo = single(algo, "--algo", "verl command prints one algorithm's command; run it once per algorithm")
    text = verl_config.command(run, algo, data_dir, gpus)
    for line in verl_config.departures_of(run, algo):
        typer.echo(f"verl departs: {line}", err=True)  # stderr, so that $(geobench verl command ...) stays a command
    print(text)


@verl_app.command("data")
def verl_data(
    run: str = typer.Option(..., "--run", help="opo_table1 or adpo_fig3: the run the data is for (its folder)."),
    dataset: str = typer.Option("math-lighteval", "--dataset", help="math-lighteval (hub) or a local path."),
    levels: list[str] = typer.Option(..., "--levels", help="MATH levels, e.g. 3 or 3,4. Repeatable: merged."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Write MATH as verl's RL parquet (train/test) with geobench's prompts and gold answers."""
    from geobench.integrations import verl_config

    folder = writable_folder(verl_config.data_folder(run, data_dir), "--data-dir")
    for path in verl_config.export_data(dataset, int_list(levels, "--levels") or (), folder):
        console.print(f"wrote {path}")


@app.command("objectives")
def list_objectives(plugin: list[str] | None = PLUGIN) -> None:
    """Every registered objective (built-in, installed plugins, --plugin): feedback, geometry, source, defaults."""
    from geobench.objectives import REGISTRY, load_plugins

    load_plugins()

    # One row per objective with its fields stacked, not one column per field: seven columns do not fit
    # 80, and rich would cut names and defaults short. Here lines break only between words.
    table = Table(title="geobench objectives", show_lines=True)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("feedback, geometry, source; hyperparameters (--set name.key=value) and their defaults")
    for name, entry in sorted(REGISTRY.items()):
        geo = entry.geometry
        settable = {k: v for k, v in entry.defaults.items() if k not in entry.fixed}
        fields = {
            **({"variant of": f"{entry.base}, fixed: {_assignments(entry.fixed)}"} if entry.base else {}),
            "feedback": entry.feedback,
            "sampling": geo.sampling,
            "optimization": geo.optimization,
            "coordinates": geo.coordinates,
            "target": geo.target,
            "source": entry.paper,
            "defaults": _assignments(settable) or "none",
        }
        table.add_row(name, "\n".join(f"{field}: {value}" for field, value in fields.items()))
    Console().print(table)


def _assignments(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


@app.command("figures")
def figures_command(
    results: Path = path_option(Path("results"), "--results", "Folder of run folders."),
    out: Path | None = path_option(
        None, "--out", "Where figures, tables and REPORT.md go (default: figures/ and results/REPORT.md)."
    ),
    plugin: list[str] | None = PLUGIN,
) -> None:
    """Rebuild every figure and table from results/*/ CSVs and the registry, then REPORT.md.

    Without --out the figures go to figures/ and REPORT.md to results/REPORT.md (for another --results R,
    to R/figures/ and R/REPORT.md); with another --out X everything goes under X, REPORT.md too, and
    --results is only read."""
    from geobench.report import build_all, write_report

    fix = "give the folder that holds the run folders, or create them with `geobench reproduce`"
    results = existing_folder(results, "--results", fix)
    default = figures_folder(results)
    # REPORT.md beside the runs only where the figures go where they would by default
    report = None if out is None or out.resolve() == default.resolve() else out / "REPORT.md"
    out = writable_folder(out or default, "--out")
    if report is None:
        writable_folder(results, "--results")  # REPORT.md goes there
    written, skipped = build_all(results, out)
    for path in written:
        console.print(f"wrote {path}")
    for name, why in skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {why}")
    console.print(f"wrote {write_report(results, out, report)}")


def figures_folder(results: Path) -> Path:
    """figures/ for the committed results/, else ``results``' own figures/: drawing another results
    folder never redraws the committed figures."""
    return Path("figures") if results.resolve() == Path("results").resolve() else results / "figures"


@app.command("reproduce")
def reproduce_command(
    profile: str = PROFILE,
    results: Path = path_option(Path("results"), "--results", "Folder of run folders."),
    out: Path | None = path_option(
        None, "--figures", "Where figures and tables go (default: figures/; for another --results, its figures/)."
    ),
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    executor: str = FAN_OUT,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
    stages: list[str] | None = list_option(
        "--stages", "Only these stages, by results folder (e.g. llm,llm-stress); then draw everything."
    ),
    rerun: bool = RERUN,
) -> None:
    """Run every experiment of a profile (resuming finished cells), draw everything, write REPORT.md."""
    from geobench.config import PROFILES, parse_list
    from geobench.reproduce import reproduce

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if rerun:
        console.print("--rerun: recomputing every cell of every stage, none reused")
    reproduce(
        profile,
        writable_folder(results, "--results"),
        writable_folder(out or figures_folder(results), "--figures"),
        show_progress=not quiet,
        executor=executor_config(executor, workers, threads, ray_address),
        only=parse_list(joined(stages)) or (),
        rerun=rerun,
    )
