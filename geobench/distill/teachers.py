"""MuJoCo teachers for ADPO Table 2 at run time: load a committed teacher, act, evaluate.

A teacher folder (``experiments/teachers/<env>/``) holds ``model.zip``, the observation
normaliser ``vecnormalize.pkl`` when the agent used one, ``training_log.csv`` (episode
returns during training) and ``teacher.json`` (settings, evaluated return, versions,
wall time). Every distillation cell only loads these; training them with stable-baselines3
(``geobench mujoco train-teacher``) is :mod:`geobench.distill.teacher_training`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geobench.config import EXPERIMENTS_DIR
from geobench.errors import ConfigError
from geobench.results import atomic_write_text

TEACHERS_DIR = EXPERIMENTS_DIR / "teachers"
ENVS = ("HalfCheetah-v5", "Hopper-v5")
ALGOS = ("ppo", "sac", "td3")


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


def algo_class(algo: str) -> Any:
    """The stable-baselines3 class of a teacher algorithm (one of ALGOS)."""
    from stable_baselines3 import PPO, SAC, TD3

    return {"ppo": PPO, "sac": SAC, "td3": TD3}[algo]


def load_teacher(env: str, root: Path = TEACHERS_DIR) -> Teacher:
    """The committed teacher for ``env``, or a one-line error naming the command that makes it."""
    if env not in ENVS:  # else the error below would suggest training a teacher for an env that has no settings
        raise ConfigError(f"unknown env {env!r}; valid: {', '.join(ENVS)}")
    folder = teacher_dir(env, root)
    fix = f"run `geobench mujoco train-teacher --env {env}`"
    if not (folder / "model.zip").exists() or not (folder / "teacher.json").exists():
        raise ConfigError(f"no teacher checkpoint in {folder}; {fix}")
    info = read_teacher_info(folder / "teacher.json", fix)
    try:
        model = algo_class(info["algo"]).load(folder / "model.zip", device="cpu")
    except Exception as error:  # a truncated or foreign zip: say which file and how to remake it
        raise ConfigError(f"cannot read teacher checkpoint {folder / 'model.zip'} ({error}); {fix}") from None
    return Teacher(env, info["algo"], model, *normaliser(load_stats(folder)), info)


# What a distillation reads from teacher.json (the rest is provenance), with the type it needs.
_REQUIRED = {"algo": str, "eval_return_mean": (int, float)}


def read_teacher_info(path: Path, fix: str) -> dict[str, Any]:
    """``teacher.json`` as a dict, or one line naming the file and what is wrong with it (not JSON, a
    field a distillation reads missing or of the wrong type)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        why = f"is not valid JSON ({error}; truncated?)"
        raise ConfigError(f"teacher record {path} {why}; restore it or {fix}") from None
    if not isinstance(info, dict):
        raise ConfigError(f"teacher record {path} is not a JSON object; restore it or {fix}")
    for key, kind in _REQUIRED.items():
        if key not in info:
            raise ConfigError(f"teacher record {path} has no {key!r}; restore it or {fix}")
        if not isinstance(info[key], kind) or isinstance(info[key], bool):
            raise ConfigError(f"teacher record {path}: {key} is {info[key]!r}, of the wrong type; restore it or {fix}")
    if info["algo"] not in ALGOS:
        raise ConfigError(f"teacher record {path}: algo {info['algo']!r} is not one of {', '.join(ALGOS)}; {fix}")
    return info


def load_stats(folder: Path) -> Any:
    """The saved VecNormalize of a teacher folder, or None when the teacher used none."""
    if not (folder / "vecnormalize.pkl").exists():
        return None
    import pickle

    with (folder / "vecnormalize.pkl").open("rb") as handle:
        return pickle.load(handle)


def normaliser(stats: Any) -> tuple[np.ndarray | None, np.ndarray | None, float]:
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
