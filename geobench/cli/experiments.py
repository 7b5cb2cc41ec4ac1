"""The experiment commands: toy-saturation, bandits, mujoco (train-teacher, evaluate-teacher, distill), llm."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import typer

from geobench.cli.common import (
    EXECUTOR,
    PLUGIN,
    PROFILE,
    QUIET,
    RAY_ADDRESS,
    THREADS,
    WORKERS,
    all_or_list,
    app,
    console,
    executor_config,
    int_list,
    merge_hparams,
    name_list,
    pairs,
    path_option,
    run_folder,
    writable_folder,
)
from geobench.config import experiment_file, load_config
from geobench.errors import ConfigError


@app.command("toy-saturation")
def toy_saturation(
    out: Path | None = path_option(
        None, "--out", "Run folder for CSV and run.json (default results/toy-saturation[-paper])."
    ),
    profile: str = PROFILE,
    seed: int | None = typer.Option(None, "--seed", help="Recorded in the CSV; the toy itself has no randomness."),
    grid: int | None = typer.Option(None, "--grid", help="Grid points over p (quick: 2001, paper: 20001)."),
    objectives: str | None = typer.Option(None, "--objectives", help="Comma-separated registry names."),
    config: Path | None = path_option(None, "--config", "A TOML file instead of experiments/opo_fig3.toml."),
    figures: Path = path_option(Path("figures"), "--figures", "Where to draw opo_fig3 (PNG and PDF)."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw the figure after the run."),
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
) -> None:
    """OPO Fig. 3: |dL/dz| vs confidence on a binary logit, by autograd through each objective."""
    from geobench import toy
    from geobench.objectives import REGISTRY

    overrides = {"grid_points": grid, "objectives": name_list(objectives, "--objectives", REGISTRY), "seed": seed}
    cfg = load_config(toy.ToyConfig, config or experiment_file("opo_fig3"), profile, overrides)
    out = run_folder(out, "toy-saturation", profile)
    figures = writable_folder(figures, "--figures") if draw else figures
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
    steps: int | None = typer.Option(
        None, "--steps", help="Training steps (batches) per run (quick: 300, paper: 1000)."
    ),
    scaling: bool = typer.Option(False, "--scaling", help="Also run the model-scaling study (Fig. 2b)."),
    anchors: str | None = typer.Option(
        None, "--anchors", help="Per-method anchor overrides, e.g. adpo-pairwise=old (reference or old)."
    ),
    out: Path | None = path_option(
        None, "--out", "Run folder for CSV and run.json (default results/bandits, or results/bandits-paper)."
    ),
    profile: str = PROFILE,
    config: Path | None = path_option(None, "--config", "A TOML file instead of experiments/adpo_fig2.toml."),
    figures: Path = path_option(Path("figures"), "--figures", "Where to draw adpo_fig2a/b and their tables."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw figures and tables after the run."),
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """ADPO Fig. 2: WinMass of every method on 12 noisy bandit scenarios (and --scaling)."""
    from geobench import bandits as bandit_study

    pool = executor_config(executor, workers, threads, ray_address)

    overrides = {
        "noises": all_or_list(noise, "--noise", bandit_study.NOISES),
        "levels": all_or_list(level, "--level", bandit_study.LEVELS),
        "methods": name_list(methods, "--methods", bandit_study.METHODS),
        "hidden": int_list(hidden, "--hidden"),
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
        "scaling": scaling or None,
        "anchors": pairs(anchors, "--anchors"),
    }
    cfg = load_config(bandit_study.BanditConfig, config or experiment_file("adpo_fig2"), profile, overrides)
    out = run_folder(out, "bandits", profile)
    figures = writable_folder(figures, "--figures") if draw else figures
    console.print(f"wrote {bandit_study.run(cfg, out, profile=profile, show_progress=not quiet, executor=pool)}")
    if draw:
        from geobench.report import draw_bandits

        for path in draw_bandits(out, figures):
            console.print(f"wrote {path}")


mujoco_app = typer.Typer(no_args_is_help=True, help="ADPO Table 2: MuJoCo teachers and student distillation.")
app.add_typer(mujoco_app, name="mujoco")


@mujoco_app.command("train-teacher")
def train_teacher(
    env: str = typer.Option(..., "--env", help="HalfCheetah-v5 or Hopper-v5."),
    steps: int | None = typer.Option(None, "--steps", help="Environment steps (overrides the config)."),
    seed: int | None = typer.Option(None, "--seed", help="Training seed."),
    out: Path | None = path_option(None, "--out", "Teachers folder (default experiments/teachers)."),
    config: Path | None = path_option(None, "--config", "A TOML file instead of experiments/adpo_table2.toml."),
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
    root = writable_folder(out or teachers.TEACHERS_DIR, "--out")
    info = teachers.train_teacher(cfg, root, show_progress=not quiet, overwrite=overwrite)
    console.print(
        f"{env} teacher ({cfg.algo}, {cfg.steps} steps): return {info['eval_return_mean']:.1f} "
        f"+- {info['eval_return_std']:.1f} over {cfg.eval_episodes} episodes"
    )


@mujoco_app.command("evaluate-teacher")
def evaluate_teacher(
    env: str = typer.Option(..., "--env", help="HalfCheetah-v5 or Hopper-v5."),
    episodes: int = typer.Option(10, "--episodes", help="Deterministic evaluation episodes."),
    out: Path | None = path_option(None, "--out", "Teachers folder (default experiments/teachers)."),
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
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds (quick: 5, paper: 5)."),
    seed: int | None = typer.Option(None, "--seed", help="First seed."),
    steps: int | None = typer.Option(None, "--steps", help="Gradient steps per student (quick: 2000, paper: 10000)."),
    teachers: Path | None = path_option(None, "--teachers", "Teachers folder (default experiments/teachers)."),
    out: Path | None = path_option(
        None, "--out", "Run folder for CSV and run.json (default results/mujoco, or results/mujoco-paper)."
    ),
    profile: str = PROFILE,
    config: Path | None = path_option(None, "--config", "A TOML file instead of experiments/adpo_table2.toml."),
    figures: Path = path_option(Path("figures"), "--figures", "Where to draw adpo_table2."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw the figure and table after the run."),
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """ADPO Table 2: distil the committed teachers into students with KD and anchored ADPO."""
    from geobench.distill import sweep as distill_study

    pool = executor_config(executor, workers, threads, ray_address)

    overrides = {
        "envs": all_or_list(env, "--env", distill_study.ENVS),
        "methods": name_list(methods, "--methods", distill_study.METHODS),
        "seeds": seeds,
        "seed": seed,
        "steps": steps,
        "teachers_dir": str(teachers) if teachers else None,
    }
    cfg = load_config(distill_study.DistillConfig, config or experiment_file("adpo_table2"), profile, overrides)
    out = run_folder(out, "mujoco", profile)
    figures = writable_folder(figures, "--figures") if draw else figures
    console.print(f"wrote {distill_study.run(cfg, out, profile=profile, show_progress=not quiet, executor=pool)}")
    if draw:
        from geobench.report import draw_mujoco

        for path in draw_mujoco(out, figures):
            console.print(f"wrote {path}")


@app.command("llm")
def llm(
    algo: str = typer.Option("all", "--algo", help="grpo, gspo, dapo, opo, adpo, a comma list, or all."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="column-addition or arithmetic (built in), math-lighteval (hub; needs network) or a local .jsonl, "
        ".parquet or save_to_disk folder (quick: column-addition, paper: math-lighteval).",
    ),
    levels: str | None = typer.Option(None, "--levels", help="Difficulty levels, e.g. 3,4 for MATH."),
    model: str | None = typer.Option(
        None, "--model", help="Causal-LM checkpoint (hub id or folder); default: the warm-started tiny Qwen3."
    ),
    rollout: str | None = typer.Option(
        None, "--rollout", help="hf, transformers' generate, or vllm, a GPU extra (quick: hf, paper: vllm)."
    ),
    engine: str | None = typer.Option(
        None,
        "--engine",
        help="geobench, its own loop, or trl, TRL's GRPOTrainer with geobench's losses "
        "(quick: geobench, paper: geobench).",
    ),
    reward: str | None = typer.Option(
        None,
        "--reward",
        help="correct scores 1/0, shaped adds length and repetition terms (quick: correct, paper: correct).",
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds (quick: 5, paper: 1)."),
    seed: int | None = typer.Option(None, "--seed", help="First seed."),
    steps: int | None = typer.Option(None, "--steps", help="RL steps per run (quick: 100, paper: 224)."),
    hparam: str | None = typer.Option(
        None,
        "--set",
        help="Objective hyperparameters, e.g. opo.alpha=0.6,opo.escort_ref=false (TOML values); "
        "`geobench objectives` lists every key with its default.",
    ),
    out: Path | None = path_option(
        None, "--out", "Run folder for CSV and run.json (default results/llm, or results/llm-paper)."
    ),
    profile: str = PROFILE,
    config: Path | None = path_option(
        None, "--config", "A TOML file instead of experiments/opo_table1.toml (e.g. experiments/adpo_fig3.toml)."
    ),
    figures: Path = path_option(Path("figures"), "--figures", "Where to draw the LLM figures and tables."),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Draw figures and tables after the run."),
    plugin: list[str] | None = PLUGIN,
    quiet: bool = QUIET,
    executor: str = EXECUTOR,
    workers: int = WORKERS,
    threads: int = THREADS,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """OPO Table 1 / Figs. 4-7 and ADPO Fig. 3 / Table 4: RL on verifiable math with each algorithm."""
    from geobench import llm as llm_study

    pool = executor_config(executor, workers, threads, ray_address)

    overrides = {
        "algos": all_or_list(algo, "--algo", llm_study.ALGOS),
        "dataset": dataset,
        "levels": int_list(levels, "--levels"),
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
        merged = merge_hparams(cfg.hparams, hparam)
        for algo in {pair.partition(".")[0] for pair in pairs(hparam, "--set") or {}}:
            if algo not in cfg.algos:
                raise ConfigError(
                    f"--set {algo}.*: {algo!r} is not among the selected algorithms ({', '.join(cfg.algos)})"
                )
        cfg = dataclasses.replace(cfg, hparams=merged)
    out = run_folder(out, "llm", profile)
    figures = writable_folder(figures, "--figures") if draw else figures
    console.print(f"wrote {llm_study.run(cfg, out, profile=profile, show_progress=not quiet, executor=pool)}")
    if draw:
        from geobench.report import draw_llm

        for path in draw_llm(out, figures):
            console.print(f"wrote {path}")
