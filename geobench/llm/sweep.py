"""LLM math RL (OPO Table 1, Figs. 4-7; ADPO Fig. 3, Table 4): algorithms x seeds, resumable."""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from geobench.config import check_caps, check_lists
from geobench.errors import ConfigError
from geobench.executor import Cell, ExecutorConfig, Resources, pending_cells, run_cells, set_threads
from geobench.llm import paper_shapes
from geobench.llm.grading import REWARDS
from geobench.llm.model import TinyQwen3, load_policy
from geobench.llm.rollout import BACKENDS, SamplingSettings, make_rollout, require_vllm
from geobench.llm.tasks import make_task
from geobench.llm.train import RLSettings, train_cell
from geobench.llm.warmstart import WarmStartConfig, ensure_warmstart
from geobench.objectives import find_objective, get_objective
from geobench.results import RunDir

EXPERIMENT = "llm"
# Wall-clock measurements go to their own CSV (``DIR/timing/timing.csv``) so that
# ``metrics.csv`` is a deterministic function of the config and seed (tested).
TIMING_METRICS = ("update_time_s", "rollout_tokens_per_s", "step_time_s")
ENGINES = ("geobench", "trl")
ALGOS = ("grpo", "gspo", "dapo", "opo", "adpo")
# What an objective outside ALGOS (a plugin's, say) may declare: the loop scores G completions of
# each prompt with a verifier, a reward per completion, which is sampled or listwise feedback.
LLM_FEEDBACK = ("sampled", "listwise")
# Cells are (algorithm, seed) runs and the progress bar counts them, so a cell with absurdly many
# steps sits silent for days.
CAPS = {
    "seeds": (1_000, "every seed is a full RL run of each algorithm, weeks at the cap; the profiles run 1 to 5"),
    "steps": (100_000, "a cell shows progress only when it ends; the paper profile runs 224"),
}


@dataclass(frozen=True)
class LLMConfig:
    """Every setting of an LLM run; sources and reasons in ``experiments/opo_table1.toml``."""

    algos: tuple[str, ...] = ALGOS
    seeds: int = 3
    seed: int = 0
    dataset: str = "arithmetic"
    levels: tuple[int, ...] = (1, 2, 3, 4)
    model: str = ""  # empty: the project's warm-started tiny Qwen3
    dtype: str = "float32"
    rollout: str = "hf"
    engine: str = "geobench"  # geobench's own loop, or TRL's GRPOTrainer with geobench's loss
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 6
    steps: int = 60
    prompts_per_step: int = 8
    group: int = 6
    epochs: int = 1
    minibatches: int = 1
    micro_batch: int = 0
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    reward: str = "correct"
    dynamic_sampling: bool = True
    overlong_cache: int = 0
    adaptive_tau: bool = True
    tau_min: float = 0.1
    tau_max: float = 0.8
    tau_confidence: str = "token-mean"  # ADPO Eq. 12's c over length-normalised sequence log-probs
    adpo_tau_rule: str = "guard"  # "guard" (ADPO Eq. 12) or "entropy-reward" (the authors' recipe)
    overlong_filter: bool = True  # DAPO only: mask truncated completions out of the loss
    opo_adaptive_tau: bool = True  # OPO Sec. 9.1's "adaptive tau", read as Eq. 12's guard on the escort T
    opo_tau_min: float = 0.2
    opo_tau_max: float = 1.5
    eval_every: int = 10
    eval_prompts: int = 200
    warmstart: Mapping[str, Any] = field(default_factory=dict)  # WarmStartConfig overrides (built-in tasks)
    cell_gpus: float = 0.0  # GPUs each (algorithm, seed) cell asks of Ray; 1 in the paper profile
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_lists(self, "algos", "levels")
        check_caps(self, CAPS)
        if not self.dataset.strip():
            raise ConfigError("dataset is empty; give arithmetic, column-addition, math-lighteval or a path")
        for algo in self.algos:
            if algo not in ALGOS:
                _check_outside_algo(algo)
            get_objective(algo).validate(dict(self.hparams.get(algo, {})))
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; valid: {', '.join(ENGINES)}")
        if self.rollout not in BACKENDS:
            raise ConfigError(f"unknown rollout backend {self.rollout!r}; valid: {', '.join(BACKENDS)}")
        if self.reward not in REWARDS:
            raise ConfigError(f"unknown reward {self.reward!r}; valid: {', '.join(REWARDS)}")
        if min(self.seeds, self.steps, self.prompts_per_step, self.epochs, self.minibatches) < 1 or self.group < 2:
            raise ConfigError("seeds, steps, prompts_per_step, epochs and minibatches must be >= 1 and group >= 2")
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(f"need 0 < tau_min <= tau_max; got {self.tau_min}, {self.tau_max}")

    def settings(self) -> RLSettings:
        names = {f.name for f in dataclasses.fields(RLSettings)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k in names}
        return RLSettings(**{**values, "hparams": {k: dict(v) for k, v in self.hparams.items()}})

    def warmstart_config(self) -> WarmStartConfig:
        """The warm start of a built-in task: its levels, plus the ``warmstart`` table's settings."""
        values = dict(self.warmstart)
        if "shape" in values:
            values["shape"] = TinyQwen3(**values["shape"])
        try:
            return WarmStartConfig(task=self.dataset, levels=self.levels, **values)
        except TypeError as error:
            valid = ", ".join(WarmStartConfig.__dataclass_fields__)
            raise ConfigError(f"bad warmstart setting ({error}); valid: {valid}") from None

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_p, self.max_new_tokens)


def _check_outside_algo(algo: str) -> None:
    """An objective outside ALGOS runs if it is registered with a feedback the loop gives, else one line."""
    valid = f"{', '.join(ALGOS)}, or an objective with {' or '.join(LLM_FEEDBACK)} feedback (`geobench objectives`)"
    entry = find_objective(algo)
    if entry is None:
        raise ConfigError(f"unknown algorithm {algo!r} for geobench llm; valid: {valid}")
    if entry.feedback not in LLM_FEEDBACK:
        raise ConfigError(f"{algo!r} takes {entry.feedback} feedback, which geobench llm does not give; valid: {valid}")


def _model_path(config: LLMConfig, show_progress: bool) -> str:
    if config.model:
        return config.model
    return str(ensure_warmstart(config.warmstart_config(), show_progress=show_progress))


def _train(
    config: LLMConfig, settings: RLSettings, model_path: str, policy, tokenizer, task, algo: str, seed: int, on_step
) -> list[dict]:
    """One cell through the chosen engine; both return the same tidy rows."""
    if config.engine == "trl":
        from geobench.llm import trl_engine

        with tempfile.TemporaryDirectory(prefix="geobench-trl-") as scratch:
            return trl_engine.train_cell(
                policy,
                tokenizer,
                task,
                config.sampling(),
                algo,
                seed,
                settings,
                scratch,
                vllm=config.rollout == "vllm",
                on_step=on_step,
            )
    rollout = make_rollout(config.rollout, model_path, tokenizer, config.sampling())
    return train_cell(policy, tokenizer, task, rollout, algo, seed, settings, on_step=on_step)


def run(
    config: LLMConfig,
    out: Path | str,
    *,
    profile: str = "custom",
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
) -> Path:
    """Train every (algorithm, seed) cell not already on disk; returns ``DIR/metrics.csv``."""
    set_threads(executor.threads)
    if config.rollout == "vllm":
        require_vllm()  # fail before any work, not after the first model load
    if config.engine == "trl" and importlib.util.find_spec("trl") is None:
        raise ConfigError("--engine trl needs TRL: pip install -e '.[trl]'")
    run_dir = RunDir(out, EXPERIMENT, config)
    timing_dir = RunDir(Path(out) / "timing", EXPERIMENT, config)
    make_task(config.dataset, config.levels)  # a missing dataset or model fails here, once, not in every cell
    model_path = _model_path(config, show_progress)
    _check_model(model_path)
    resources = Resources(cpus=executor.threads, gpus=config.cell_gpus)
    cells = [
        Cell({"variant": algo, "seed": seed}, _cell, (config, model_path, algo, seed), resources)
        for algo in config.algos
        for seed in range(config.seed, config.seed + config.seeds)
    ]

    def write(key: Mapping[str, Any], frame: pd.DataFrame) -> None:
        timed = frame["metric"].isin(TIMING_METRICS)
        timing_dir.write_cell(key, frame[timed])  # first: a cell counts as done once metrics exist
        run_dir.write_cell(key, frame[~timed])

    run_cells(pending_cells(cells, run_dir.done), write, executor, description="llm cells", show_progress=show_progress)
    extra = {"model": model_path, "device": _device(), "torch_threads": executor.threads}
    timing_dir.finish("timing", profile, extra)
    return run_dir.finish("metrics", profile, extra)


def _check_model(model: str) -> None:
    """The model's config and tokenizer load (cheap even for a large checkpoint), or one line."""
    from transformers import AutoConfig, AutoTokenizer

    if paper_shapes.is_random(model):
        paper_shapes.random_config(model)  # an unknown name or scale is one line
        return
    try:
        AutoConfig.from_pretrained(model)
        AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load model {model!r} ({type(error).__name__}); check --model") from None


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _cell(config: LLMConfig, model_path: str, algo: str, seed: int) -> pd.DataFrame:
    """One (algorithm, seed) run from the warm start; metrics and timing rows together."""
    task = make_task(config.dataset, config.levels)
    policy, tokenizer = load_policy(model_path, config.dtype)
    policy.to(_device())
    rows = _train(config, config.settings(), model_path, policy, tokenizer, task, algo, seed, lambda: None)
    return pd.DataFrame(rows).assign(variant=algo, task=task.name)
