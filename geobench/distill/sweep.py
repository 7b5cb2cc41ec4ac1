"""ADPO Table 2: distilling committed MuJoCo teachers into Gaussian MLP students.

For each state, K candidate actions are drawn around the teacher's action
(N(mean_T, (widen std_T)^2)); the teacher scores them by its log-density and the target is
q = softmax(score / temperature). The student's log-densities of the candidates are its
logits. Methods (the registry does the losses):

- ``kd``: zero anchor, the paper's KD (ADPO Table 1: "Zero Anchor (l), Soft Teacher");
- ``adpo-self-anchor``: u = (s - s_anchor) / tau, anchor = the frozen initial student;
- ``adpo-self-anchor-ema``: anchor = an exponential moving average of the student;
- ``kd-gaussian`` (ours): the closed-form KL(pi_T || pi_S), the usual distillation loss;
- any other registered ``listwise`` objective (a plugin's, say), under its own name and with
  its default hyperparameters: the teacher's scores are its rewards and the frozen initial
  student its anchor, as for ``adpo-self-anchor``.

Metrics: ``return`` (mean undiscounted return of the student's deterministic policy over
evaluation episodes), ``ndcg`` (NDCG of the student's ranking of held-out candidates
against the teacher's q), ``kl`` (closed-form KL(pi_T || pi_S) averaged over held-out
states). Seeds train as one computation (stacked weights, vmapped objectives).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from geobench.config import check_caps, check_lists
from geobench.distill.data import StateSet, collect_states, sample_candidates
from geobench.distill.gaussian import gaussian_kl, log_density, ndcg
from geobench.distill.teachers import ENVS, TEACHERS_DIR, Teacher, evaluate_policy, load_teacher, teacher_dir
from geobench.errors import ConfigError, require_finite
from geobench.executor import Cell, ExecutorConfig, run_cells, set_threads
from geobench.identity import file_digest, objective_inputs, package_inputs
from geobench.nn import generator, init_mlp, mlp
from geobench.objectives import find_objective, per_seed_objective
from geobench.progress import StepReport, no_report, seed_means
from geobench.results import RunDir

EXPERIMENT = "mujoco"
METHODS = ("kd", "adpo-self-anchor", "adpo-self-anchor-ema", "kd-gaussian")
ADPO_METHODS = ("adpo-self-anchor", "adpo-self-anchor-ema")
# A cell trains its seeds stacked and evaluates them in lockstep (seeds x eval_episodes MuJoCo
# environments at once). States are collected before any cell starts, with no progress shown,
# at ~0.2-0.4 ms each here (Hopper the slower).
_COLLECTED = "states are collected up front with no progress shown, ~0.4 ms each"
CAPS = {
    "seeds": (100, "seeds train stacked and evaluate seeds x eval_episodes environments at once; the paper uses 5"),
    "steps": (1_000_000, "a guard against a typo, 100 times the paper profile's 10,000"),
    "train_states": (1_000_000, f"{_COLLECTED}; the paper profile uses 100,000"),
    "eval_states": (1_000_000, f"{_COLLECTED}; the profiles use 2,000"),
}


@dataclass(frozen=True)
class DistillConfig:
    """Settings of the distillation study; sources and reasons in ``experiments/adpo_table2.toml``."""

    envs: tuple[str, ...] = ENVS
    methods: tuple[str, ...] = METHODS
    seeds: int = 5
    seed: int = 0
    steps: int = 2000
    batch_states: int = 256
    candidates: int = 16
    widen: float = 2.0
    temperature: float = 1.0
    tau: float = 1.0
    ema: float = 0.99
    lr: float = 1e-3
    hidden: int = 256
    train_states: int = 20000
    eval_states: int = 2000
    collect_envs: int = 8
    eval_episodes: int = 10
    eval_every: int = 500
    teachers_dir: str = ""

    def __post_init__(self) -> None:
        check_lists(self, "envs", "methods")
        for env in self.envs:
            if env not in ENVS:
                raise ConfigError(f"unknown env {env!r}; valid: {', '.join(ENVS)}, all")
        for method in self.methods:
            if method not in METHODS and not _listwise(method):
                valid = ", ".join(METHODS)
                raise ConfigError(
                    f"unknown distillation method {method!r}; valid: {valid}, or a listwise objective (see "
                    "`geobench objectives`): the teacher's feedback is a score for every candidate"
                )
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be in [0, 1); got {self.ema}")
        for name in ("temperature", "tau", "widen", "lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0; got {getattr(self, name)}")
        for name in ("seeds", "steps", "batch_states", "candidates", "train_states", "eval_states", "eval_every"):
            if getattr(self, name) < 1:  # checked before the 70 s of state collection, not after
                raise ConfigError(f"{name} must be a positive integer; got {getattr(self, name)}")
        check_caps(self, CAPS)

    @property
    def teachers(self) -> Path:
        return Path(self.teachers_dir) if self.teachers_dir else TEACHERS_DIR


@dataclass
class Student:
    """S stacked Gaussian MLP policies: mean = mlp(obs), state-independent log std."""

    net: dict[str, Tensor]
    log_std: Tensor  # (S, 1, A)

    @classmethod
    def init(cls, obs_dim: int, act_dim: int, hidden: int, seeds: list[int], env: str) -> Student:
        net = init_mlp([obs_dim, hidden, hidden, act_dim], [generator("student", env, s) for s in seeds])
        return cls(net, torch.zeros(len(seeds), 1, act_dim))

    def parameters(self) -> list[Tensor]:
        return [*self.net.values(), self.log_std]

    def gaussian(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(S, N, d) -> mean, std each (S, N, A)."""
        mean = mlp(self.net, obs)
        return mean, self.log_std.exp().expand_as(mean)

    def detached(self) -> Student:
        return Student({k: v.detach().clone() for k, v in self.net.items()}, self.log_std.detach().clone())

    def ema_update(self, online: Student, rate: float) -> None:
        with torch.no_grad():
            for mine, theirs in zip(self.parameters(), online.parameters(), strict=True):
                mine.mul_(rate).add_(theirs.detach(), alpha=1.0 - rate)


def _listwise(name: str) -> bool:
    entry = find_objective(name)
    return entry is not None and entry.feedback == "listwise"


def _method_loss(method: str, config: DistillConfig):
    if method == "kd-gaussian":
        return None  # closed form, below
    if method == "kd":
        return per_seed_objective("kd", temperature=config.temperature)
    if method in ADPO_METHODS:  # the registry's variants: softmax target on the raw teacher scores
        return per_seed_objective(method, tau=config.tau, beta_r=config.temperature)
    return per_seed_objective(method)


def train_students(
    config: DistillConfig,
    teacher: Teacher,
    train: StateSet,
    held_out: StateSet,
    method: str,
    seeds: list[int],
    on_step: StepReport = no_report,
) -> pd.DataFrame:
    """Train S students with one method; rows of return / ndcg / kl along training."""
    student = Student.init(train.obs.shape[1], train.mean.shape[1], config.hidden, seeds, teacher.env)
    for p in student.parameters():
        p.requires_grad_(True)
    anchor = student.detached()
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr)
    loss_fn = _method_loss(method, config)
    anchored = method != "kd"  # kd has a zero anchor; kd-gaussian has no candidates
    gens = [generator("distill-batches", teacher.env, method, s) for s in seeds]
    eval_index, eval_cands = _held_out_candidates(config, held_out, len(seeds))
    rows = [_metrics(student, held_out, eval_index, eval_cands, config, seeds, 0)]
    on_step(0, config.steps, seed_means(rows[-1]))
    for step in range(1, config.steps + 1):
        index = torch.stack([torch.randint(len(train), (config.batch_states,), generator=g) for g in gens])
        mean_s, std_s = student.gaussian(train.obs[index])
        if loss_fn is None:
            losses = gaussian_kl(train.mean[index], train.std[index], mean_s, std_s).mean(-1)
        else:
            cands = sample_candidates(train, index, config.candidates, config.widen, gens)  # (S, B, K, A)
            logp = log_density(cands, mean_s, std_s)
            teacher_scores = log_density(cands, train.mean[index], train.std[index])
            anchor_logp = logp.detach()  # kd has a zero anchor and ignores this
            if anchored:
                with torch.no_grad():
                    anchor_logp = log_density(cands, *anchor.gaussian(train.obs[index]))
            losses = loss_fn(logp, teacher_scores, logp.detach(), anchor_logp)
        opt.zero_grad()
        losses.sum().backward()  # seeds are independent: each gets its own gradient
        opt.step()
        if method == "adpo-self-anchor-ema":
            anchor.ema_update(student, config.ema)
        logged = step % config.eval_every == 0 or step == config.steps
        if logged:
            rows.append(_metrics(student, held_out, eval_index, eval_cands, config, seeds, step))
        on_step(step, config.steps, seed_means(rows[-1]) if logged else None)
    returns = _returns(student, teacher, config, seeds)
    for metric, values in returns.items():
        rows.append(pd.DataFrame({"seed": seeds, "step": config.steps, "metric": metric, "value": values}))
    on_step(config.steps, config.steps, {metric: float(np.mean(values)) for metric, values in returns.items()})
    return pd.concat(rows, ignore_index=True)


def _held_out_candidates(config: DistillConfig, held_out: StateSet, s: int) -> tuple[Tensor, Tensor]:
    """Fixed evaluation candidates, the same for every method and seed."""
    index = torch.arange(len(held_out)).expand(s, -1)
    gen = generator("distill-eval-candidates", config.candidates)
    return index, sample_candidates(held_out, index[:1], config.candidates, config.widen, [gen]).expand(s, -1, -1, -1)


def _metrics(
    student: Student,
    held_out: StateSet,
    index: Tensor,
    cands: Tensor,
    config: DistillConfig,
    seeds: list[int],
    step: int,
) -> pd.DataFrame:
    with torch.no_grad():
        mean_s, std_s = student.gaussian(held_out.obs[index])
        kl = gaussian_kl(held_out.mean[index], held_out.std[index], mean_s, std_s).mean(-1)
        relevance = torch.softmax(
            log_density(cands, held_out.mean[index], held_out.std[index]) / config.temperature, -1
        )
        quality = ndcg(log_density(cands, mean_s, std_s), relevance).mean(-1)
    require_finite({"kl": float(kl.sum()), "ndcg": float(quality.sum())}, step=step)
    return pd.concat(
        [
            pd.DataFrame({"seed": seeds, "step": step, "metric": "kl", "value": kl.tolist()}),
            pd.DataFrame({"seed": seeds, "step": step, "metric": "ndcg", "value": quality.tolist()}),
        ],
        ignore_index=True,
    )


def _returns(student: Student, teacher: Teacher, config: DistillConfig, seeds: list[int]) -> dict[str, list[float]]:
    """Mean ``return`` of each student's deterministic policy, and its ``forward_return`` part (the
    reward for moving forward; the rest is alive bonus minus control cost, which a student that
    merely stands still also collects). All S x E episodes step together."""
    s, e = len(seeds), config.eval_episodes

    def act(raw: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(teacher.normalize(raw)).view(s, e, -1)
        with torch.no_grad():
            mean, _ = student.gaussian(obs)
        action = torch.tanh(mean) if teacher.squashed else mean
        return action.reshape(s * e, -1).numpy()

    totals = evaluate_policy(act, teacher.env, s * e, seed=20_000)
    return {
        "return": totals["return"].reshape(s, e).mean(-1).tolist(),
        "forward_return": totals["forward_reward"].reshape(s, e).mean(-1).tolist(),
    }


def run(
    config: DistillConfig,
    out: Path | str,
    *,
    profile: str = "custom",
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
    rerun: bool = False,
) -> Path:
    """Every (env, method) cell not already on disk (every cell under ``rerun``); returns the merged
    CSV ``DIR/distill.csv``.

    The states of an env are collected once, here, and shipped to its cells (a few MB).
    """
    set_threads(executor.threads)
    run_dir = RunDir(out, EXPERIMENT, config, inputs=partial(cell_inputs, config), rerun=rerun)
    teacher_returns, teacher_forward, cells = {}, {}, []
    for env in config.envs:
        teacher = load_teacher(env, config.teachers)
        teacher_returns[env] = teacher.info["eval_return_mean"]
        teacher_forward[env] = teacher.info.get("eval_forward_reward_mean")
        keys = [key for key in ({"env": env, "variant": m} for m in config.methods) if not run_dir.done(key)]
        if keys:
            data = (
                collect_states(teacher, config.train_states, config.collect_envs, seed=1),
                collect_states(teacher, config.eval_states, config.collect_envs, seed=50_000),
            )
            cells += [Cell(key, _cell, (config, env, key["variant"], *data), reports_steps=True) for key in keys]
    run_cells(cells, run_dir.write_cell, executor, description="distillation cells", show_progress=show_progress)
    extra = {"teacher_returns": teacher_returns, "teacher_forward": teacher_forward, "torch_threads": executor.threads}
    return run_dir.finish("distill", profile, extra=extra)


# The teacher.json fields a student's rows depend on: the algorithm its model.zip is loaded as and
# the action noise its states are collected with (distill/data.py); its evaluation numbers only
# reach run.json, not the rows.
_TEACHER_FIELDS = ("algo", "action_noise_std")
# Beside torch and numpy: the teacher's policy (stable-baselines3) and the returns (gymnasium, mujoco).
_PACKAGES = ("torch", "numpy", "stable-baselines3", "gymnasium", "mujoco")


def teacher_inputs(env: str, root: Path) -> dict[str, str]:
    """What ``load_teacher`` reads for ``env`` and the rows depend on: the model and normaliser files'
    digests (``absent`` for a teacher without a normaliser) and the fields of ``_TEACHER_FIELDS``."""
    folder = teacher_dir(env, root)
    try:
        info = json.loads((folder / "teacher.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        info = {}
    fields = {f"teacher {env} {k}": json.dumps(info.get(k)) for k in _TEACHER_FIELDS}
    files = {f"teacher {env} {f}": file_digest(folder / f) for f in ("model.zip", "vecnormalize.pkl")}
    return {**files, **fields}


def cell_inputs(config: DistillConfig, key: Mapping[str, Any]) -> dict[str, str]:
    """What a cell's rows depend on besides the config (:mod:`geobench.identity`): its method's objective
    (``kd-gaussian`` is the closed form here, no registry objective) and its env's teacher."""
    entries = [] if key["variant"] == "kd-gaussian" else [find_objective(key["variant"])]
    return {**objective_inputs(entries), **teacher_inputs(key["env"], config.teachers), **package_inputs(_PACKAGES)}


def run_inputs(config: DistillConfig) -> dict[str, str]:
    """The union of every cell's inputs, as ``run.json`` records it."""
    keys = [{"env": env, "variant": m} for env in config.envs for m in config.methods]
    return {k: v for key in keys for k, v in cell_inputs(config, key).items()}


def _cell(
    config: DistillConfig, env: str, method: str, train: StateSet, held_out: StateSet, report: StepReport = no_report
) -> pd.DataFrame:
    """All seeds of one (env, method) cell; the teacher is loaded where the cell runs."""
    seeds = list(range(config.seed, config.seed + config.seeds))
    teacher = load_teacher(env, config.teachers)
    rows = train_students(config, teacher, train, held_out, method, seeds, on_step=report)
    return rows.assign(env=env, variant=method)
