"""Training a MuJoCo teacher with stable-baselines3 (``geobench mujoco train-teacher``).

Hours of compute per teacher, run once and committed; the distillation cells only load the
result (:mod:`geobench.distill.teachers`). A run trains in a scratch folder, keeps the best
evaluated checkpoint when asked (rl-zoo3's EvalCallback), and swaps the finished folder in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geobench.distill.teachers import (
    ALGOS,
    ENVS,
    TEACHERS_DIR,
    Teacher,
    algo_class,
    evaluate_policy,
    evaluate_teacher,
    load_stats,
    make_env,
    normaliser,
    teacher_dir,
)
from geobench.errors import ConfigError
from geobench.results import atomic_write_text, package_versions, replaced_folder

_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}


@dataclass(frozen=True)
class TeacherConfig:
    """How one teacher is trained; values and sources in ``experiments/adpo_table2.toml``."""

    env: str
    algo: str
    steps: int
    normalize: bool = False
    seed: int = 0
    eval_episodes: int = 10
    action_noise_std: float = 0.0
    """Gaussian exploration noise for TD3 (rl-zoo3: ``noise_type: normal``); 0 for PPO/SAC."""
    checkpoint_every: int = 0
    """Evaluate every this many steps and keep the best policy (rl-zoo3's EvalCallback); 0: the last."""
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    policy_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ConfigError(f"unknown env {self.env!r}; valid: {', '.join(ENVS)}")
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown teacher algorithm {self.algo!r}; valid: {', '.join(ALGOS)}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be a positive number of environment steps; got {self.steps}")


def _make_model(config: TeacherConfig, venv: Any) -> Any:
    kwargs = dict(config.policy_kwargs)
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = _ACTIVATIONS[kwargs["activation_fn"]]
    extra: dict[str, Any] = {}
    if config.action_noise_std > 0:
        from stable_baselines3.common.noise import NormalActionNoise

        dim = venv.action_space.shape[0]
        extra["action_noise"] = NormalActionNoise(np.zeros(dim), config.action_noise_std * np.ones(dim))
    return algo_class(config.algo)(
        "MlpPolicy",
        venv,
        seed=config.seed,
        policy_kwargs=kwargs,
        device="cpu",
        verbose=0,
        **extra,
        **config.hyperparams,
    )


def train_teacher(
    config: TeacherConfig, root: Path = TEACHERS_DIR, show_progress: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Train, evaluate and save a teacher; returns the contents of ``teacher.json``.

    A teacher is hours of compute: an existing one is replaced only with ``overwrite``, and
    then only once the new one is complete (it trains in a sibling folder, swapped in by rename).
    """
    final = teacher_dir(config.env, root)
    if (final / "model.zip").exists() and not overwrite:
        raise ConfigError(f"{final} already holds a teacher; pass --overwrite to replace it, or --out DIR")
    with replaced_folder(final) as scratch:
        info = _train_into(config, scratch, show_progress)
    return info


def _train_into(config: TeacherConfig, out: Path, show_progress: bool) -> dict[str, Any]:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(1)  # one core per run, so two teachers train side by side
    log_path = out / "monitor"
    venv = DummyVecEnv([lambda: Monitor(make_env(config.env), str(log_path))])
    if config.normalize:
        venv = VecNormalize(venv, gamma=config.hyperparams.get("gamma", 0.99))
    model = _make_model(config, venv)
    start = time.time()
    best = _BestCheckpoint(config, out / "model.zip")
    model.learn(total_timesteps=config.steps, callback=[_progress_callback(config, show_progress), best.callback()])
    wall = time.time() - start
    if best.return_mean is None:
        model.save(out / "model.zip")
        if config.normalize:
            venv.save(str(out / "vecnormalize.pkl"))
    else:  # deterministic evaluation picks the checkpoint; the final one may have dipped
        model = algo_class(config.algo).load(out / "model.zip", device="cpu")
    _convert_monitor_log(Path(f"{log_path}.monitor.csv"), out / "training_log.csv")
    teacher = Teacher(
        config.env, config.algo, model, *normaliser(load_stats(out)), {"action_noise_std": config.action_noise_std}
    )
    info = {
        "env": config.env,
        "algo": config.algo,
        "steps": config.steps,
        "seed": config.seed,
        "normalize": config.normalize,
        "hyperparams": dict(config.hyperparams),
        "policy_kwargs": dict(config.policy_kwargs),
        "action_noise_std": config.action_noise_std,
        "checkpoint_every": config.checkpoint_every,
        "checkpoint_step": best.step if best.return_mean is not None else config.steps,
        **evaluate_teacher(teacher, config.eval_episodes),
        "train_wall_time_s": round(wall, 1),
        "versions": package_versions(),
    }
    atomic_write_text(out / "teacher.json", json.dumps(info, indent=2) + "\n")
    return info


class _BestCheckpoint:
    """Every ``checkpoint_every`` steps, evaluate the deterministic policy over 5 episodes
    (seeds disjoint from the final evaluation's) and save it to ``path`` when it beats the best
    so far -- rl-zoo3's EvalCallback with ``save_best``. Off-policy learners on Hopper oscillate
    by hundreds of return between checkpoints, so the last iterate is a poor teacher."""

    def __init__(self, config: TeacherConfig, path: Path) -> None:
        self.config, self.path = config, path
        self.return_mean: float | None = None
        self.step = 0

    def callback(self) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        outer = self

        class Evaluate(BaseCallback):
            def _on_step(self) -> bool:
                every = outer.config.checkpoint_every
                if every > 0 and self.num_timesteps % every == 0:
                    outer.consider(self.model, self.num_timesteps)
                return True

        return Evaluate()

    def consider(self, model: Any, step: int) -> None:
        venv = model.get_env()
        stats = venv if self.config.normalize else None
        teacher = Teacher(self.config.env, self.config.algo, model, *normaliser(stats), {})
        score = float(np.mean(evaluate_policy(teacher.act, self.config.env, 5, seed=30_000)["return"]))
        if self.return_mean is None or score > self.return_mean:
            self.return_mean, self.step = score, step
            model.save(self.path)
            if stats is not None:
                stats.save(str(self.path.with_name("vecnormalize.pkl")))


def _progress_callback(config: TeacherConfig, show: bool) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    from geobench.progress import progress_bar

    class RichProgress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = progress_bar(show)
            self.bar.start()
            self.task = self.bar.add_task(f"teacher {config.algo} {config.env}", total=config.steps)

        def _on_step(self) -> bool:
            self.bar.update(self.task, completed=self.num_timesteps)
            return True

        def _on_training_end(self) -> None:
            self.bar.stop()

    return RichProgress()


def _convert_monitor_log(source: Path, target: Path) -> None:
    """SB3's monitor CSV (one '#' header line) -> a plain CSV of episode, return, length, time."""
    import pandas as pd

    frame = pd.read_csv(source, skiprows=1).rename(columns={"r": "return", "l": "length", "t": "time_s"})
    frame.insert(0, "episode", range(1, len(frame) + 1))
    frame.to_csv(target, index=False)
    source.unlink()
