"""The experiment commands: toy-saturation, bandits, mujoco (train-teacher, evaluate-teacher, distill), llm.

Each parses its options into settings and hands them to :func:`~geobench.cli.common.run_experiment`;
the help quotes the profiles' values from the experiments' TOML files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from geobench.cli.common import (
    EXECUTOR,
    PLUGIN,
    PROFILE,
    QUIET,
    RAY_ADDRESS,
    REPORT_TO,
    RERUN,
    SET,
    THREADS,
    WORKERS,
    all_or_list,
    app,
    console,
    executor_config,
    int_list,
    list_option,
    name_list,
    pairs,
    path_option,
    profile_defaults,
    run_experiment,
    single,
    writable_folder,
)
from geobench.config import build, experiment_file, read_toml
from geobench.errors import ConfigError
from geobench.experiments import BANDITS, LLM, MUJOCO, TOY, Experiment


def _out(experiment: Experiment) -> Any:
    folder = f"results/{experiment.name}"
    return path_option(None, "--out", f"Run folder for CSV and run.json (default {folder}, or {folder}-paper).")


def _config(experiment: Experiment, example: str = "") -> Any:
    return path_option(None, "--config", f"A TOML file instead of experiments/{experiment.artifact}.toml{example}.")


def _figures(what: str) -> Any:
    return path_option(None, "--figures", f"Where to draw {what} (default: --out's figures/, else figures/).")


DRAW = typer.Option(True, "--draw/--no-draw", help="Draw figures and tables after the run.")


@app.command(TOY.name)
def toy_saturation(
    out: Path | None = _out(TOY),
    profile: str = PROFILE,
    seed: int | None = typer.Option(None, "--seed", help="Recorded in the CSV; the toy itself has no randomness."),
    grid: int | None = typer.Option(
        None, "--grid", help="Grid points over p" + profile_defaults(TOY, "grid_points") + "."
    ),
    objectives: list[str] | None = list_option("--objectives", "Comma-separated registry names."),
    hparam: list[str] | None = SET,
    config: Path | None = _config(TOY),
    figures: Path | None = _figures("opo_fig3 (PNG and PDF)"),
    draw: bool = DRAW,
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    rerun: bool = RERUN,
) -> None:
    """OPO Fig. 3: |dL/dz| vs confidence on a binary logit, by autograd through each objective."""
    from geobench.objectives import REGISTRY

    settings = {"grid_points": grid, "objectives": name_list(objectives, "--objectives", REGISTRY), "seed": seed}
    run_experiment(
        TOY,
        profile=profile,
        config=config,
        settings=settings,
        hparams=hparam,
        out=out,
        figures=figures,
        draw=draw,
        quiet=quiet,
        rerun=rerun,
    )


@app.command(BANDITS.name)
def bandits(
    noise: list[str] | None = list_option(
        "--noise", "gaussian-outliers, shift, adversarial, cauchy, a comma list, or all (default)."
    ),
    level: list[str] | None = list_option("--level", "light, medium, heavy, a comma list, or all (default)."),
    methods: list[str] | None = list_option("--methods", "Comma-separated bandit methods (default: all)."),
    hidden: list[str] | None = list_option("--hidden", "Comma-separated hidden sizes, e.g. 64,128,256."),
    seeds: int | None = typer.Option(
        None, "--seeds", help="Number of seeds" + profile_defaults(BANDITS, "seeds") + "."
    ),
    seed: int | None = typer.Option(None, "--seed", help="First seed; seeds are seed .. seed + seeds - 1."),
    steps: int | None = typer.Option(
        None, "--steps", help="Training steps (batches) per run" + profile_defaults(BANDITS, "steps") + "."
    ),
    scaling: bool = typer.Option(False, "--scaling", help="Also run the model-scaling study (Fig. 2b)."),
    anchors: list[str] | None = list_option(
        "--anchors", "Per-method anchor overrides, e.g. adpo-pairwise=old (reference or old)."
    ),
    hparam: list[str] | None = SET,
    out: Path | None = _out(BANDITS),
    profile: str = PROFILE,
    config: Path | None = _config(BANDITS),
    figures: Path | None = _figures("adpo_fig2a/b and their tables"),
    draw: bool = DRAW,
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    rerun: bool = RERUN,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
    report_to: str = REPORT_TO,
) -> None:
    """ADPO Fig. 2: WinMass of every method on 12 noisy bandit scenarios (and --scaling)."""
    from geobench.bandits.env import LEVELS, NOISES
    from geobench.bandits.train import METHODS

    settings = {
        "noises": all_or_list(noise, "--noise", NOISES),
        "levels": all_or_list(level, "--level", LEVELS),
        "methods": name_list(methods, "--methods", METHODS),
        "hidden": int_list(hidden, "--hidden"),
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
        "scaling": scaling or None,
        "anchors": pairs(anchors, "--anchors"),
    }
    run_experiment(
        BANDITS,
        profile=profile,
        config=config,
        settings=settings,
        hparams=hparam,
        out=out,
        figures=figures,
        draw=draw,
        quiet=quiet,
        rerun=rerun,
        executor=executor_config(executor, workers, threads, ray_address),
        report_to=report_to,
    )


mujoco_app = typer.Typer(no_args_is_help=True, help="ADPO Table 2: MuJoCo teachers and student distillation.")
app.add_typer(mujoco_app, name=MUJOCO.name)


@mujoco_app.command("train-teacher")
def train_teacher(
    env: list[str] = typer.Option(..., "--env", help="HalfCheetah-v5 or Hopper-v5."),
    steps: int | None = typer.Option(None, "--steps", help="Environment steps (overrides the config)."),
    seed: int | None = typer.Option(None, "--seed", help="Training seed."),
    out: Path | None = path_option(None, "--out", "Teachers folder (default experiments/teachers)."),
    config: Path | None = _config(MUJOCO),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing teacher once the new one is done."),
    quiet: bool = QUIET,
) -> None:
    """Train a stable-baselines3 teacher with tuned settings, evaluate it, save it for distillation."""
    from geobench.distill import teacher_training, teachers

    env = single(env, "--env", "train-teacher trains one teacher a command; run it once per env")
    path = config or experiment_file(MUJOCO.artifact)
    table = read_toml(path).get("teachers", {})
    if isinstance(table, dict) and env not in table:
        raise ConfigError(f"no teacher settings for env {env!r}; valid: {', '.join(table) or 'none'}")
    if not isinstance(table, dict) or not isinstance(table.get(env), dict):
        raise ConfigError(f"{path.name}: [teachers.{env}] must be a table of settings (algo = ..., steps = ...)")
    settings = {**table[env], **{k: v for k, v in {"steps": steps, "seed": seed}.items() if v is not None}}
    where = f"{path.name} [teachers.{env}]"
    cfg = build(teacher_training.TeacherConfig, {"env": env, **settings}, where)
    teacher_training.check_sb3_settings(cfg, where)
    root = writable_folder(out or teachers.TEACHERS_DIR, "--out")
    info = teacher_training.train_teacher(cfg, root, show_progress=not quiet, overwrite=overwrite)
    console.print(
        f"{env} teacher ({cfg.algo}, {cfg.steps} steps): return {info['eval_return_mean']:.1f} "
        f"+- {info['eval_return_std']:.1f} over {cfg.eval_episodes} episodes"
    )


@mujoco_app.command("evaluate-teacher")
def evaluate_teacher(
    env: list[str] = typer.Option(..., "--env", help="HalfCheetah-v5 or Hopper-v5."),
    episodes: int = typer.Option(10, "--episodes", help="Deterministic evaluation episodes."),
    out: Path | None = path_option(None, "--out", "Teachers folder (default experiments/teachers)."),
) -> None:
    """Evaluate a committed teacher again (return and its forward part) and update teacher.json."""
    from geobench.distill import teachers

    env = single(env, "--env", "evaluate-teacher evaluates one teacher a command; run it once per env")
    info = teachers.reevaluate_teacher(env, episodes, out or teachers.TEACHERS_DIR)
    console.print(
        f"{env} teacher: return {info['eval_return_mean']:.1f} +- {info['eval_return_std']:.1f}, "
        f"of which forward reward {info['eval_forward_reward_mean']:.1f} ({episodes} episodes)"
    )


@mujoco_app.command("distill")
def distill(
    env: list[str] | None = list_option("--env", "HalfCheetah-v5, Hopper-v5, a comma list, or all (default)."),
    methods: list[str] | None = list_option("--methods", "Comma-separated methods (default: all)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds" + profile_defaults(MUJOCO, "seeds") + "."),
    seed: int | None = typer.Option(None, "--seed", help="First seed."),
    steps: int | None = typer.Option(
        None, "--steps", help="Gradient steps per student" + profile_defaults(MUJOCO, "steps") + "."
    ),
    teachers: Path | None = path_option(None, "--teachers", "Teachers folder (default experiments/teachers)."),
    out: Path | None = _out(MUJOCO),
    profile: str = PROFILE,
    config: Path | None = _config(MUJOCO),
    figures: Path | None = _figures("adpo_table2"),
    draw: bool = DRAW,
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    rerun: bool = RERUN,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
    report_to: str = REPORT_TO,
) -> None:
    """ADPO Table 2: distil the committed teachers into students with KD and anchored ADPO."""
    from geobench.distill.sweep import ENVS, METHODS

    settings = {
        "envs": all_or_list(env, "--env", ENVS),
        "methods": name_list(methods, "--methods", METHODS),
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
        "teachers_dir": str(teachers) if teachers else None,
    }
    run_experiment(
        MUJOCO,
        profile=profile,
        config=config,
        settings=settings,
        out=out,
        figures=figures,
        draw=draw,
        quiet=quiet,
        rerun=rerun,
        executor=executor_config(executor, workers, threads, ray_address),
        report_to=report_to,
    )


@app.command(LLM.name)
def llm(
    algo: list[str] | None = list_option("--algo", "grpo, gspo, dapo, opo, adpo, a comma list, or all (default)."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="column-addition or arithmetic (built in), math-lighteval (hub; needs network), a local .jsonl, "
        ".parquet or save_to_disk folder, or reasoning-gym:<task> (chain_sum, basic_arithmetic, products, gcd, "
        "simple_equations; the reasoning-gym extra)" + profile_defaults(LLM, "dataset") + ".",
    ),
    levels: list[str] | None = list_option("--levels", "Difficulty levels, e.g. 3,4 for MATH."),
    model: str | None = typer.Option(
        None, "--model", help="Causal-LM checkpoint (hub id or folder); default: the warm-started tiny Qwen3."
    ),
    rollout: str | None = typer.Option(
        None,
        "--rollout",
        help="hf, transformers' generate, or vllm, a GPU extra" + profile_defaults(LLM, "rollout") + ".",
    ),
    engine: str | None = typer.Option(
        None,
        "--engine",
        help="geobench, its own loop, or trl, TRL's GRPOTrainer with geobench's losses"
        + profile_defaults(LLM, "engine")
        + ".",
    ),
    reward: str | None = typer.Option(
        None,
        "--reward",
        help="correct scores 1/0, good-accuracy is the authors' length and repetition shaping, shaped and digits ours"
        + profile_defaults(LLM, "reward")
        + ".",
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds" + profile_defaults(LLM, "seeds") + "."),
    seed: int | None = typer.Option(None, "--seed", help="First seed."),
    steps: int | None = typer.Option(
        None, "--steps", help="RL steps per run (with data epochs, the most)" + profile_defaults(LLM, "steps") + "."
    ),
    prompts: int | None = typer.Option(
        None,
        "--prompts",
        help="Prompts per step, to scale a profile down" + profile_defaults(LLM, "prompts_per_step") + ".",
    ),
    group: int | None = typer.Option(
        None, "--group", help="Completions per prompt" + profile_defaults(LLM, "group") + "."
    ),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", help="Completion length cap in tokens" + profile_defaults(LLM, "max_new_tokens") + "."
    ),
    hparam: list[str] | None = SET,
    out: Path | None = _out(LLM),
    profile: str = PROFILE,
    config: Path | None = _config(LLM, " (e.g. experiments/adpo_fig3.toml)"),
    figures: Path | None = _figures("the LLM figures and tables"),
    draw: bool = DRAW,
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    rerun: bool = RERUN,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
    report_to: str = REPORT_TO,
    allow_oversize: bool = typer.Option(
        False,
        "--allow-oversize",
        help="Run even when a cell's training memory estimate (weights, gradients, AdamW) exceeds this machine's "
        "available memory; without it such a run is refused up front (CPU only).",
    ),
) -> None:
    """OPO Table 1 / Figs. 4-7 and ADPO Fig. 3 / Table 4: RL on verifiable math with each algorithm."""
    from geobench.llm.settings import ALGOS

    settings = {
        "algos": all_or_list(algo, "--algo", ALGOS),
        "dataset": dataset,
        "levels": int_list(levels, "--levels"),
        "model": model,
        "rollout": rollout,
        "engine": engine,
        "reward": reward,
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
        "prompts_per_step": prompts,
        "group": group,
        "max_new_tokens": max_new_tokens,
    }
    run_experiment(
        LLM,
        profile=profile,
        config=config,
        settings=settings,
        hparams=hparam,
        out=out,
        figures=figures,
        draw=draw,
        quiet=quiet,
        rerun=rerun,
        executor=dataclasses.replace(
            executor_config(executor, workers, threads, ray_address), allow_oversize=allow_oversize
        ),
        report_to=report_to,
    )
