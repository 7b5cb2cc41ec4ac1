"""The ``geobench`` command line: each command parses options, builds a config, calls run()."""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from geobench.config import experiment_file, load_config, parse_list
from geobench.errors import CellsFailed, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reproduce the OPO and ADPO papers: every figure and table from one objective library.",
)
console = Console(stderr=True)

PROFILE = typer.Option("quick", "--profile", help="quick (2-core CPU, minutes) or paper (the papers' settings).")
QUIET = typer.Option(False, "--quiet", help="No progress bars.")
EXECUTOR = typer.Option("serial", "--executor", help="serial, processes (local cores) or ray (a Ray cluster).")
WORKERS = typer.Option(0, "--workers", help="Parallel cells for processes / CPUs of a local Ray (0: one per core).")
THREADS = typer.Option(1, "--threads", help="torch threads per cell (1 keeps a shared machine from thrashing).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else local).")


def _out(out: Path | None, experiment: str, profile: str) -> Path:
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


def _executor(kind: str, workers: int, threads: int, ray_address: str | None) -> Any:
    from geobench.executor import ExecutorConfig

    return ExecutorConfig(kind=kind, workers=workers, threads=threads, ray_address=ray_address)


@app.command("toy-saturation")
def toy_saturation(
    out: Path | None = typer.Option(
        None, "--out", help="Run folder for CSV and run.json (default results/toy-saturation[-paper])."
    ),
    profile: str = PROFILE,
    seed: int | None = typer.Option(None, "--seed", help="Recorded in the CSV; the toy itself has no randomness."),
    grid: int | None = typer.Option(None, "--grid", help="Grid points over p (overrides the profile)."),
    objectives: str | None = typer.Option(None, "--objectives", help="Comma-separated registry names."),
    config: Path | None = typer.Option(None, "--config", help="A TOML file instead of experiments/opo_fig3.toml."),
    figures: Path = typer.Option(Path("figures"), "--figures", help="Where to draw opo_fig3 (PNG and PDF)."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw the figure after the run."),
    quiet: bool = QUIET,
) -> None:
    """OPO Fig. 3: |dL/dz| vs confidence on a binary logit, by autograd through each objective."""
    from geobench import toy

    overrides = {"grid_points": grid, "objectives": parse_list(objectives), "seed": seed}
    cfg = load_config(toy.ToyConfig, config or experiment_file("opo_fig3"), profile, overrides)
    out = _out(out, "toy-saturation", profile)
    console.print(f"wrote {toy.run(cfg, out, profile=profile, show_progress=not quiet)}")
    if draw:
        from geobench.report import draw_toy

        for path in draw_toy(out, figures):
            console.print(f"wrote {path}")


@app.command("bandits")
def bandits(
    noise: str = typer.Option(
        "all", "--noise", help="gaussian-outliers, shift, adversarial, cauchy, a comma list, or all."
    ),
    level: str = typer.Option("all", "--level", help="light, medium, heavy, a comma list, or all."),
    methods: str | None = typer.Option(None, "--methods", help="Comma-separated bandit methods (default: all)."),
    hidden: str | None = typer.Option(None, "--hidden", help="Comma-separated hidden sizes, e.g. 64,128,256."),
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds (quick: 5, paper: 10)."),
    seed: int | None = typer.Option(None, "--seed", help="First seed; seeds are seed .. seed + seeds - 1."),
    steps: int | None = typer.Option(None, "--steps", help="Training steps (batches) per run."),
    scaling: bool = typer.Option(False, "--scaling", help="Also run the model-scaling study (Fig. 2b)."),
    anchors: str | None = typer.Option(
        None, "--anchors", help="Per-method anchor overrides, e.g. adpo-pairwise=old (reference or old)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder for CSV and run.json (default results/bandits, or results/bandits-paper)."
    ),
    profile: str = PROFILE,
    config: Path | None = typer.Option(None, "--config", help="A TOML file instead of experiments/adpo_fig2.toml."),
    figures: Path = typer.Option(Path("figures"), "--figures", help="Where to draw adpo_fig2a/b and their tables."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw figures and tables after the run."),
    quiet: bool = QUIET,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """ADPO Fig. 2: WinMass of every method on 12 noisy bandit scenarios (and --scaling)."""
    from geobench import bandits as bandit_study

    pool = _executor(executor, workers, threads, ray_address)

    overrides = {
        "noises": _all_or_list(noise),
        "levels": _all_or_list(level),
        "methods": parse_list(methods),
        "hidden": _int_list(hidden),
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
        "scaling": scaling or None,
        "anchors": _pairs(anchors),
    }
    cfg = load_config(bandit_study.BanditConfig, config or experiment_file("adpo_fig2"), profile, overrides)
    out = _out(out, "bandits", profile)
    console.print(f"wrote {bandit_study.run(cfg, out, profile=profile, show_progress=not quiet, executor=pool)}")
    if draw:
        from geobench.report import draw_bandits

        for path in draw_bandits(out, figures):
            console.print(f"wrote {path}")


def _all_or_list(text: str) -> tuple[str, ...] | None:
    return None if text == "all" else parse_list(text)


def _pairs(text: str | None) -> dict[str, str] | None:
    """'a=x,b=y' -> {'a': 'x', 'b': 'y'}."""
    items = parse_list(text)
    if items is None:
        return None
    if not all("=" in item for item in items):
        raise ConfigError(f"expected comma-separated name=value pairs, got {text!r}")
    return dict(item.split("=", 1) for item in items)


def _merge_hparams(base: Mapping[str, Mapping[str, Any]], text: str) -> dict[str, dict[str, Any]]:
    """``base`` updated by 'algo.key=value,...'; values are TOML literals (1e-3, true, "zscore") or bare strings."""
    merged = {algo: dict(values) for algo, values in base.items()}
    for algo_key, value in (_pairs(text) or {}).items():
        algo, _, key = algo_key.partition(".")
        if not key:
            raise ConfigError(f"--set expects algo.key=value, got {algo_key}={value}")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        merged.setdefault(algo, {})[key] = parsed
    return merged


def _int_list(text: str | None) -> tuple[int, ...] | None:
    values = parse_list(text)
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise ConfigError(f"expected comma-separated integers, got {text!r}") from None


mujoco_app = typer.Typer(no_args_is_help=True, help="ADPO Table 2: MuJoCo teachers and student distillation.")
app.add_typer(mujoco_app, name="mujoco")


@mujoco_app.command("train-teacher")
def train_teacher(
    env: str = typer.Option(..., "--env", help="HalfCheetah-v5 or Hopper-v5."),
    steps: int | None = typer.Option(None, "--steps", help="Environment steps (overrides the config)."),
    seed: int | None = typer.Option(None, "--seed", help="Training seed."),
    out: Path | None = typer.Option(None, "--out", help="Teachers folder (default experiments/teachers)."),
    config: Path | None = typer.Option(None, "--config", help="A TOML file instead of experiments/adpo_table2.toml."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing teacher once the new one is done."),
    quiet: bool = QUIET,
) -> None:
    """Train a stable-baselines3 teacher with tuned settings, evaluate it, save it for distillation."""
    from geobench.distill import teachers

    with (config or experiment_file("adpo_table2")).open("rb") as handle:
        table = tomllib.load(handle).get("teachers", {})
    if env not in table:
        raise ConfigError(f"no teacher settings for env {env!r}; valid: {', '.join(table) or 'none'}")
    settings = {**table[env], **{k: v for k, v in {"steps": steps, "seed": seed}.items() if v is not None}}
    cfg = teachers.TeacherConfig(env=env, **settings)
    info = teachers.train_teacher(cfg, out or teachers.TEACHERS_DIR, show_progress=not quiet, overwrite=overwrite)
    console.print(
        f"{env} teacher ({cfg.algo}, {cfg.steps} steps): return {info['eval_return_mean']:.1f} "
        f"+- {info['eval_return_std']:.1f} over {cfg.eval_episodes} episodes"
    )


@mujoco_app.command("evaluate-teacher")
def evaluate_teacher(
    env: str = typer.Option(..., "--env", help="HalfCheetah-v5 or Hopper-v5."),
    episodes: int = typer.Option(10, "--episodes", help="Deterministic evaluation episodes."),
    out: Path | None = typer.Option(None, "--out", help="Teachers folder (default experiments/teachers)."),
) -> None:
    """Evaluate a committed teacher again (return and its forward part) and update teacher.json."""
    from geobench.distill import teachers

    info = teachers.reevaluate_teacher(env, episodes, out or teachers.TEACHERS_DIR)
    console.print(
        f"{env} teacher: return {info['eval_return_mean']:.1f} +- {info['eval_return_std']:.1f}, "
        f"of which forward reward {info['eval_forward_reward_mean']:.1f} ({episodes} episodes)"
    )


@mujoco_app.command("distill")
def distill(
    env: str = typer.Option("all", "--env", help="HalfCheetah-v5, Hopper-v5, a comma list, or all."),
    methods: str | None = typer.Option(None, "--methods", help="Comma-separated methods (default: all)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds (default 5)."),
    seed: int | None = typer.Option(None, "--seed", help="First seed."),
    steps: int | None = typer.Option(None, "--steps", help="Gradient steps per student."),
    teachers: Path | None = typer.Option(None, "--teachers", help="Teachers folder (default experiments/teachers)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder for CSV and run.json (default results/mujoco, or results/mujoco-paper)."
    ),
    profile: str = PROFILE,
    config: Path | None = typer.Option(None, "--config", help="A TOML file instead of experiments/adpo_table2.toml."),
    figures: Path = typer.Option(Path("figures"), "--figures", help="Where to draw adpo_table2."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw the figure and table after the run."),
    quiet: bool = QUIET,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """ADPO Table 2: distil the committed teachers into students with KD and anchored ADPO."""
    from geobench.distill import sweep as distill_study

    pool = _executor(executor, workers, threads, ray_address)

    overrides = {
        "envs": _all_or_list(env),
        "methods": parse_list(methods),
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
        "teachers_dir": str(teachers) if teachers else None,
    }
    cfg = load_config(distill_study.DistillConfig, config or experiment_file("adpo_table2"), profile, overrides)
    out = _out(out, "mujoco", profile)
    console.print(f"wrote {distill_study.run(cfg, out, profile=profile, show_progress=not quiet, executor=pool)}")
    if draw:
        from geobench.report import draw_mujoco

        for path in draw_mujoco(out, figures):
            console.print(f"wrote {path}")


@app.command("llm")
def llm(
    algo: str = typer.Option("all", "--algo", help="grpo, gspo, dapo, opo, adpo, a comma list, or all."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="arithmetic (built in), math-lighteval (hub; needs network) or a local path."
    ),
    levels: str | None = typer.Option(None, "--levels", help="Difficulty levels, e.g. 3,4 for MATH."),
    model: str | None = typer.Option(
        None, "--model", help="Causal-LM checkpoint (hub id or folder); default: the warm-started tiny Qwen3."
    ),
    rollout: str | None = typer.Option(None, "--rollout", help="hf (transformers generate) or vllm (GPU extra)."),
    engine: str | None = typer.Option(
        None, "--engine", help="geobench (its own loop) or trl (TRL's GRPOTrainer with geobench's losses)."
    ),
    reward: str | None = typer.Option(None, "--reward", help="correct (1/0) or shaped (length/repetition)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds."),
    seed: int | None = typer.Option(None, "--seed", help="First seed."),
    steps: int | None = typer.Option(None, "--steps", help="RL steps per run."),
    hparam: str | None = typer.Option(
        None, "--set", help="Objective hyperparameters, e.g. opo.alpha=0.6,opo.escort_ref=false (TOML values)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder for CSV and run.json (default results/llm, or results/llm-paper)."
    ),
    profile: str = PROFILE,
    config: Path | None = typer.Option(
        None, "--config", help="A TOML file instead of experiments/opo_table1.toml (e.g. experiments/adpo_fig3.toml)."
    ),
    figures: Path = typer.Option(Path("figures"), "--figures", help="Where to draw the LLM figures and tables."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw figures and tables after the run."),
    quiet: bool = QUIET,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """OPO Table 1 / Figs. 4-7 and ADPO Fig. 3 / Table 4: RL on verifiable math with each algorithm."""
    from geobench import llm as llm_study

    pool = _executor(executor, workers, threads, ray_address)

    overrides = {
        "algos": _all_or_list(algo),
        "dataset": dataset,
        "levels": _int_list(levels),
        "model": model,
        "rollout": rollout,
        "engine": engine,
        "reward": reward,
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
    }
    cfg = load_config(llm_study.LLMConfig, config or experiment_file("opo_table1"), profile, overrides)
    if hparam:
        merged = _merge_hparams(cfg.hparams, hparam)
        for algo in {pair.partition(".")[0] for pair in _pairs(hparam) or {}}:
            if algo not in cfg.algos:
                raise ConfigError(
                    f"--set {algo}.*: {algo!r} is not among the selected algorithms ({', '.join(cfg.algos)})"
                )
        cfg = dataclasses.replace(cfg, hparams=merged)
    out = _out(out, "llm", profile)
    console.print(f"wrote {llm_study.run(cfg, out, profile=profile, show_progress=not quiet, executor=pool)}")
    if draw:
        from geobench.report import draw_llm

        for path in draw_llm(out, figures):
            console.print(f"wrote {path}")


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
    for path in verl_config.export_data(dataset, _int_list(levels) or (), folder):
        console.print(f"wrote {path}")


@app.command("objectives")
def list_objectives() -> None:
    """List every registered objective with its feedback, geometry and source."""
    from geobench.objectives import REGISTRY

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
        profile, results, out, show_progress=not quiet, executor=_executor(executor, workers, threads, ray_address)
    )


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        print(f"geobench {version('geobench')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Reproduce the OPO and ADPO papers: every figure and table from one objective library."""


def main() -> None:
    """Console entry point: a :class:`ConfigError` is one line on stderr and exit status 2."""
    try:
        app()
    except ConfigError as error:
        print(f"geobench: error: {error}", file=sys.stderr)
        sys.exit(2)
    except CellsFailed as error:
        print(f"geobench: error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:  # --out naming a file, a read-only folder, a full disk: the path and why
        where = f"{error.filename}: " if error.filename else ""
        print(f"geobench: error: {where}{error.strerror or error}; choose another path", file=sys.stderr)
        sys.exit(2)
