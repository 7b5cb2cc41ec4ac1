"""What every command shares: the app, its console, common options and the parsers of option text."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import typer

from geobench.config import PROFILES, experiment_file, parse_list, read_profile
from geobench.errors import ConfigError
from geobench.experiments import Experiment
from geobench.progress import stderr_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reproduce the OPO and ADPO papers: every figure and table from one objective library.",
)
console = stderr_console()

PROFILE = typer.Option(
    "quick", "--profile", metavar="[quick|paper]", help="quick (2-core CPU, minutes) or paper (the papers' settings)."
)
QUIET = typer.Option(False, "--quiet", help="No progress bars.")
RERUN = typer.Option(False, "--rerun", help="Recompute every cell instead of reusing the finished ones.")
_EXECUTOR_HELP = "serial, processes (local cores) or ray (a Ray cluster)."
EXECUTOR = typer.Option("serial", "--executor", help=_EXECUTOR_HELP)
# reproduce and battery run many sweeps back to back: the local cores by default
FAN_OUT = typer.Option("processes", "--executor", help=_EXECUTOR_HELP)
WORKERS = typer.Option(0, "--workers", help="Parallel cells for processes / CPUs of a local Ray (0: one per core).")
THREADS = typer.Option(1, "--threads", help="torch threads per cell (1 keeps a shared machine from thrashing).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else local).")
REPORT_TO = typer.Option(
    "none",
    "--report-to",
    metavar="TRACKERS",
    help="Stream every cell's metrics per step to tensorboard, wandb (offline unless WANDB_MODE says otherwise), "
    "trackio and/or jsonl, comma-separated, or all (every installed one) or none, as transformers' report_to; "
    "written under the run folder's trackers/. The CSVs stay the record.",
)


def load_plugins(specs: list[str] | None) -> list[str] | None:
    """Import every ``--plugin`` before the other options are checked (its objectives are valid names there)."""
    from geobench.objectives import load_plugin

    for spec in specs or ():
        load_plugin(spec)
    return specs


PLUGIN = typer.Option(
    None,
    "--plugin",
    metavar="FILE.py|MODULE",
    callback=load_plugins,
    is_eager=True,
    help="A .py file or module registering objectives with @objective (repeatable); installed "
    "geobench.objectives entry points load without it.",
)


def _path(param: typer.CallbackParam, text: str | None) -> Path | None:
    if text is not None and not text.strip():
        raise ConfigError(f"{param.opts[0]} is empty; give a path, or leave the option out for its default")
    return None if text is None else Path(text)


def path_option(default: Path | str | None, name: str, help: str) -> Any:
    """A path option that refuses an empty value: ``Path("")`` is ``.``, so ``--out ""`` would quietly mean
    the current folder. The text reaches the callback unconverted (``parser=str``) so that it can tell."""
    return typer.Option(default, name, parser=str, callback=_path, help=help)


def run_folder(out: Path | None, experiment: str, profile: str) -> Path:
    """--out, else results/<experiment> (quick) or results/<experiment>-paper: both profiles side by side."""
    from geobench.results import profile_folder

    return writable_folder(out or Path("results") / profile_folder(experiment, profile), "--out")


def writable_folder(path: Path, option: str) -> Path:
    """``path`` if it is, or can become, a folder this process may write; else one line, before any work."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: {existing} is not writable; choose another path")
    return path


def executor_config(kind: str, workers: int, threads: int, ray_address: str | None) -> Any:
    from geobench.executor import ExecutorConfig

    return ExecutorConfig(kind=kind, workers=workers, threads=threads, ray_address=ray_address)


def existing_folder(path: Path, option: str, fix: str) -> Path:
    """``path`` if it is a folder that exists; else one line saying what it is and ``fix``."""
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"{option} {path} {what}; {fix}")
    return path


Texts = str | list[str] | None  # a list option's text: repeated options (``--algo grpo --algo opo``) are merged


def joined(texts: Texts) -> str | None:
    """A repeated option's values as one comma list: ``--algo grpo --algo opo`` is ``--algo grpo,opo``."""
    return texts if texts is None or isinstance(texts, str) else ",".join(texts)


def _given(text: Texts, option: str, expected: str) -> tuple[str, ...] | None:
    """The items of a comma list; an option given with no items (``--noise ""``, ``--level ,``) is refused."""
    text = joined(text)
    items = parse_list(text)
    if items == ():
        raise ConfigError(f"{option} is empty; give {expected}")
    return items


def name_list(text: Texts, option: str, valid: Iterable[str]) -> tuple[str, ...] | None:
    return _given(text, option, f"one or more of {', '.join(valid)} (comma-separated), or leave it out")


def all_or_list(text: Texts, option: str, valid: Iterable[str]) -> tuple[str, ...] | None:
    if joined(text) in ("all", None):
        return None
    return _given(text, option, f"one or more of {', '.join(valid)} (comma-separated), or all")


def pairs(text: Texts, option: str) -> dict[str, str] | None:
    """'a=x,b=y' -> {'a': 'x', 'b': 'y'}."""
    text = joined(text)
    items = _given(text, option, "comma-separated name=value pairs, or leave it out")
    if items is None:
        return None
    if not all("=" in item for item in items):
        raise ConfigError(f"{option} expects comma-separated name=value pairs; got {text!r}")
    return dict(item.split("=", 1) for item in items)


SET = typer.Option(
    None,
    "--set",
    metavar="ALGO.KEY=VALUE",
    help="An objective's hyperparameter, e.g. opo.alpha=0.6 (a TOML value; repeatable, or comma-separated; "
    "merged into the config's table). `geobench objectives` lists every key with its default.",
)


def parse_set(texts: Iterable[str] | None) -> dict[str, dict[str, Any]] | None:
    """Every ``--set`` as {algo: {key: value}}, the repeated options merged; values are TOML literals
    (1e-3, true, "zscore") or bare strings. None when no ``--set`` was given."""
    if not texts:
        return None
    merged: dict[str, dict[str, Any]] = {}
    for text in texts:
        for algo_key, value in (pairs(text, "--set") or {}).items():
            algo, _, key = algo_key.partition(".")
            if not algo or not key:
                raise ConfigError(f"--set expects algo.key=value, got {algo_key}={value}")
            try:
                parsed = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                parsed = value
            merged.setdefault(algo, {})[key] = parsed
    return merged


def list_option(name: str, help: str) -> Any:
    """A comma-list option that may also be repeated, the values merged (as ``--set`` and ``--plugin``):
    typer would otherwise keep the last of ``--algo grpo --algo opo`` without a word."""
    return typer.Option(None, name, metavar="A,B,...", help=f"{help} Repeatable: the values are merged.")


def single(texts: list[str] | None, option: str, why: str) -> str | None:
    """The one value of an option that takes one; given twice, one line rather than the last kept."""
    if texts and len(texts) > 1:
        raise ConfigError(f"{option} given {len(texts)} times ({', '.join(texts)}); {why}")
    return texts[0] if texts else None


def profile_defaults(experiment: Experiment, setting: str) -> str:
    """' (quick: X, paper: Y)': ``setting`` in each profile of the experiment's TOML file, for a help text
    that cannot drift from it; '' where the file or the setting is missing (an installed package)."""
    try:
        values = [read_profile(experiment_file(experiment.artifact), p)[setting] for p in PROFILES]
    except (ConfigError, KeyError):
        return ""
    return " (" + ", ".join(f"{p}: {v}" for p, v in zip(PROFILES, values, strict=True)) + ")"


def run_experiment(
    experiment: Experiment,
    *,
    profile: str,
    config: Path | None,
    settings: Mapping[str, Any],
    hparams: list[str] | None = None,
    out: Path | None,
    figures: Path | None,
    draw: bool,
    quiet: bool,
    executor: Any = None,
    report_to: str = "none",
    rerun: bool = False,
) -> None:
    """What every experiment command does once its options are parsed (plugins are loaded by then):
    the trackers (installed, else one line), the config (the profile, the options' settings and
    ``--set`` merged in, checked by its class), the run folder and the figures folder (both checked
    before any work), the run with its metrics streamed to the trackers, its figures: into
    ``--figures``, else ``--out``'s ``figures/`` (a scratch run never redraws the committed ones),
    else ``figures/``."""
    from geobench.objectives import check_tables
    from geobench.results import refuse_foreign_run
    from geobench.trackers import parse_report_to, require_installed

    trackers = parse_report_to(report_to)
    require_installed(trackers)
    given = parse_set(hparams)
    check_tables(given or {}, "--set {}.*")
    cfg = experiment.load(profile, {**settings, "hparams": given}, config)
    methods = getattr(cfg, experiment.methods_field)
    for algo in given or {}:
        if algo not in methods:
            raise ConfigError(f"--set {algo}.*: {algo!r} is not among the selected algorithms ({', '.join(methods)})")
    figures = figures or (out / "figures" if out else Path("figures"))
    out = run_folder(out, experiment.name, profile)
    refuse_foreign_run(out, experiment.name)  # before the trackers write under it
    figures = writable_folder(figures, "--figures") if draw else figures
    listener = None
    if trackers:
        from geobench.results import config_dict
        from geobench.trackers import Trackers

        listener = Trackers(trackers, out / "trackers", experiment.name, config_dict(cfg))
        executor = dataclasses.replace(executor, listener=listener)
    if rerun:
        console.print(f"--rerun: recomputing every cell of {out}, none reused")
    try:
        csv = experiment.run(cfg, out, profile=profile, show_progress=not quiet, executor=executor, rerun=rerun)
    finally:
        if listener is not None:
            listener.close()
    console.print(f"wrote {csv}")
    if listener is not None:
        console.print(f"streamed every step's metrics to {', '.join(trackers)} under {out / 'trackers'}")
    if draw:
        for path in experiment.draw_run(out, figures):
            console.print(f"wrote {path}")


def int_list(text: Texts, option: str) -> tuple[int, ...] | None:
    text = joined(text)
    values = _given(text, option, "comma-separated integers, or leave it out")
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise ConfigError(f"{option} expects comma-separated integers; got {text!r}") from None
