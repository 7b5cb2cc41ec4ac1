"""MuJoCo teachers for ADPO Table 2: stable-baselines3 agents trained once and committed.

A teacher folder (``experiments/teachers/<env>/``) holds ``model.zip``, the observation
normaliser ``vecnormalize.pkl`` when the agent used one, ``training_log.csv`` (episode
returns during training) and ``teacher.json`` (settings, evaluated return, versions,
wall time). The default path only loads these; ``geobench mujoco train-teacher`` makes them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geobench.config import EXPERIMENTS_DIR
from geobench.errors import ConfigError
from geobench.results import atomic_write_text, package_versions

TEACHERS_DIR = EXPERIMENTS_DIR / "teachers"
ENVS = ("HalfCheetah-v5", "Hopper-v5")
ALGOS = ("ppo", "sac", "td3")
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


@dataclass
class Teacher:
    """A loaded teacher: its SB3 model and, if trained with one, the observation normaliser."""

    env: str
    algo: str
    model: Any
    obs_mean: np.ndarray | None
    obs_var: np.ndarray | None
    clip_obs: float
    info: dict[str, Any]

    @property
    def squashed(self) -> bool:
        """SAC acts through tanh: its Gaussian lives in pre-tanh space."""
        return self.algo == "sac"

    @property
    def deterministic(self) -> bool:
        """TD3's actor is a deterministic map: it has no action distribution to distil."""
        return self.algo == "td3"

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the teacher's policy sees them (VecNormalize statistics, frozen)."""
        if self.obs_mean is None:
            return obs.astype(np.float32)
        scaled = (obs - self.obs_mean) / np.sqrt(self.obs_var + 1e-8)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for raw observations (N, obs_dim)."""
        action, _ = self.model.predict(self.normalize(obs), deterministic=True)
        return action


def make_env(env_id: str) -> Any:
    """``gym.make`` with MuJoCo's deprecation notice about HalfCheetah's XML silenced.

    MuJoCo prints "compiler attribute 'settotalmass' is deprecated" on stderr each time the
    HalfCheetah model compiles, which buries progress output; every other MuJoCo warning
    still reaches Python's ``warnings``.
    """
    import gymnasium as gym
    import mujoco

    mujoco.set_mju_user_warning(_mujoco_warning)
    return gym.make(env_id)


def _mujoco_warning(message: str) -> None:
    if "settotalmass" not in message:
        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def teacher_dir(env: str, root: Path = TEACHERS_DIR) -> Path:
    return root / env


def _algo_class(algo: str) -> Any:
    from stable_baselines3 import PPO, SAC, TD3

    return {"ppo": PPO, "sac": SAC, "td3": TD3}[algo]


def _make_model(config: TeacherConfig, venv: Any) -> Any:
    kwargs = dict(config.policy_kwargs)
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = _ACTIVATIONS[kwargs["activation_fn"]]
    extra: dict[str, Any] = {}
    if config.action_noise_std > 0:
        from stable_baselines3.common.noise import NormalActionNoise

        dim = venv.action_space.shape[0]
        extra["action_noise"] = NormalActionNoise(np.zeros(dim), config.action_noise_std * np.ones(dim))
    return _algo_class(config.algo)(
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
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{config.env}.", dir=root))
    try:
        info = _train_into(config, scratch, show_progress)
        if final.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{config.env}.old.", dir=root))
            os.replace(final, retired / config.env)
            os.replace(scratch, final)
            shutil.rmtree(retired)
        else:
            os.replace(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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
        model = _algo_class(config.algo).load(out / "model.zip", device="cpu")
    _convert_monitor_log(Path(f"{log_path}.monitor.csv"), out / "training_log.csv")
    teacher = Teacher(
        config.env, config.algo, model, *_normaliser(_load_stats(out)), {"action_noise_std": config.action_noise_std}
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


def load_teacher(env: str, root: Path = TEACHERS_DIR) -> Teacher:
    """The committed teacher for ``env``, or a one-line error naming the command that makes it."""
    if env not in ENVS:  # else the error below would suggest training a teacher for an env that has no settings
        raise ConfigError(f"unknown env {env!r}; valid: {', '.join(ENVS)}")
    folder = teacher_dir(env, root)
    fix = f"run `geobench mujoco train-teacher --env {env}`"
    if not (folder / "model.zip").exists() or not (folder / "teacher.json").exists():
        raise ConfigError(f"no teacher checkpoint in {folder}; {fix}")
    try:
        info = json.loads((folder / "teacher.json").read_text())
        model = _algo_class(info["algo"]).load(folder / "model.zip", device="cpu")
    except Exception as error:  # a truncated or foreign zip: say which file and how to remake it
        raise ConfigError(f"cannot read teacher checkpoint {folder / 'model.zip'} ({error}); {fix}") from None
    return Teacher(env, info["algo"], model, *_normaliser(_load_stats(folder)), info)


def _load_stats(folder: Path) -> Any:
    """The saved VecNormalize of a teacher folder, or None when the teacher used none."""
    if not (folder / "vecnormalize.pkl").exists():
        return None
    import pickle

    with (folder / "vecnormalize.pkl").open("rb") as handle:
        return pickle.load(handle)


def _normaliser(stats: Any) -> tuple[np.ndarray | None, np.ndarray | None, float]:
    """(mean, var, clip) of a VecNormalize's observation statistics; no normalisation for None."""
    if stats is None:
        return None, None, 10.0
    return stats.obs_rms.mean, stats.obs_rms.var, stats.clip_obs


def evaluate_policy(act: Any, env: str, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Undiscounted totals per episode of ``act`` (raw obs (N, d) -> actions (N, a)), run as one
    gymnasium vector environment so all episodes step together.

    Returns ``return`` and, where the environment reports it, ``forward_reward`` (the part of
    the return earned by moving forward; the rest is alive bonus minus control cost), each
    (episodes,).
    """
    import gymnasium as gym

    envs = gym.vector.SyncVectorEnv([lambda: make_env(env) for _ in range(episodes)])
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    totals = {"return": np.zeros(episodes), "forward_reward": np.zeros(episodes)}
    done = np.zeros(episodes, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, info = envs.step(act(obs))
        totals["return"] += np.where(done, 0.0, reward)
        totals["forward_reward"] += np.where(done, 0.0, info.get("reward_forward", 0.0))
        done |= terminated | truncated
    envs.close()
    return totals


def evaluate_teacher(teacher: Teacher, episodes: int, seed: int = 10_000) -> dict[str, Any]:
    """The evaluation fields of ``teacher.json``: deterministic episodes of the teacher."""
    totals = evaluate_policy(teacher.act, teacher.env, episodes, seed)
    return {
        "eval_episodes": episodes,
        "eval_return_mean": float(np.mean(totals["return"])),
        "eval_return_std": float(np.std(totals["return"])),
        "eval_returns": [float(r) for r in totals["return"]],
        "eval_forward_reward_mean": float(np.mean(totals["forward_reward"])),
    }


def reevaluate_teacher(env: str, episodes: int = 10, root: Path = TEACHERS_DIR) -> dict[str, Any]:
    """Evaluate a committed teacher again and update its ``teacher.json``."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be a positive number of episodes; got {episodes}")
    teacher = load_teacher(env, root)
    info = {**teacher.info, **evaluate_teacher(teacher, episodes)}
    atomic_write_text(teacher_dir(env, root) / "teacher.json", json.dumps(info, indent=2) + "\n")
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
        teacher = Teacher(self.config.env, self.config.algo, model, *_normaliser(stats), {})
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
