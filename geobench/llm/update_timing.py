"""ADPO Table 4, like for like: the actor update's wall time per algorithm, interleaved in one process.

ADPO's claim "3.5x faster update than GRPO" is about wall time, which on a shared machine moves
with whatever else runs. Cells of a sweep run at different moments, so their ``update_time_s``
compare the load as much as the algorithms. Here every algorithm updates its own copy of the same
warm-start model on the same fixed rollouts (``prompts`` x ``group`` completions of ``tokens``
tokens) through the trainer's own update (:func:`geobench.llm.train._update`: forward, backward,
clip, AdamW), and the algorithms take turns, repetition by repetition, so load hits them alike and
each repetition is a pair. The order within a repetition alternates (A B, B A, ...) so neither
algorithm always runs on the other's warm caches.

Rows (``DIR/update_time.csv``): per algorithm (``variant``) and repetition (``step``, from 1) its
``update_time_s`` and the update's mean ``loss``; everything but the times is deterministic.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from geobench.config import check_lists
from geobench.errors import ConfigError
from geobench.executor import ExecutorConfig, set_threads
from geobench.llm.model import load_policy
from geobench.llm.rollout import Rollouts
from geobench.llm.settings import LLMConfig
from geobench.llm.train import _scheduler, _update
from geobench.llm.warmstart import WarmStartConfig, ensure_warmstart
from geobench.objectives import make_objective
from geobench.results import RunDir

EXPERIMENT = "llm-update-time"
METRIC = "update_time_s"
_KEY = {"benchmark": "interleaved"}  # one cell: the repetitions are pairs only within one process


@dataclass(frozen=True)
class UpdateTimingConfig:
    """The benchmark's settings; sources in ``experiments/adpo_table4.toml``."""

    algos: tuple[str, ...] = ("grpo", "adpo")
    repetitions: int = 20
    warmup: int = 1  # untimed updates per algorithm first (allocator, autograd caches)
    prompts: int = 16
    group: int = 6
    tokens: int = 32
    epochs: int = 1
    minibatches: int = 1
    micro_batch: int = 0  # 0: the whole mini-batch at once, the same for every algorithm
    lr: float = 1e-5
    seed: int = 0
    model: str = ""  # "" = the committed column-addition warm start
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_lists(self, "algos")
        if len(self.algos) < 2:
            raise ConfigError(f"the update-time benchmark compares algorithms; give two or more, got {self.algos}")
        for name in ("repetitions", "prompts", "group", "tokens", "epochs", "minibatches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer; got {getattr(self, name)}")
        self.settings()  # the algorithms and their hyperparameters, checked as the LLM loop checks them

    def settings(self) -> LLMConfig:
        """The LLM loop's settings the update reads (its shape, clipping, schedule)."""
        return LLMConfig(
            algos=self.algos,
            steps=self.warmup + self.repetitions + 1,
            epochs=self.epochs,
            minibatches=self.minibatches,
            micro_batch=self.micro_batch,
            lr=self.lr,
            hparams=dict(self.hparams),
        )


def fixed_rollouts(tokenizer, prompts: int, group: int, tokens: int, seed: int) -> Rollouts:
    """``prompts`` x ``group`` random completions of ``tokens`` tokens: content does not change the time."""
    gen = torch.Generator().manual_seed(seed)
    encoded = tokenizer([f"{i}+{i}=" for i in range(prompts)], return_tensors="pt", padding=True)
    n = prompts * group
    ids = torch.randint(3, len(tokenizer), (n, tokens), generator=gen)
    return Rollouts(
        encoded["input_ids"].repeat_interleave(group, 0),
        encoded["attention_mask"].repeat_interleave(group, 0),
        ids,
        torch.ones_like(ids),
        [""] * n,
        torch.zeros(n, dtype=torch.bool),
        0.0,
    )


def measure(config: UpdateTimingConfig, policy, tokenizer) -> pd.DataFrame:
    """The interleaved repetitions on ``policy`` (each algorithm updates its own copy): tidy rows."""
    settings = config.settings()
    rolled = fixed_rollouts(tokenizer, config.prompts, config.group, config.tokens, config.seed)
    rewards = torch.randint(
        0, 2, (config.prompts, config.group), generator=torch.Generator().manual_seed(config.seed + 1)
    )
    rewards = rewards.float()
    with torch.no_grad():
        old, _ = rolled.logprobs(policy)
    learners = {}
    for algo in config.algos:
        mine = copy.deepcopy(policy)
        optimizer = torch.optim.AdamW(mine.parameters(), lr=config.lr)
        loss_fn = make_objective(algo, **settings.hparams.get(algo, {}))
        learners[algo] = (
            mine,
            optimizer,
            _scheduler(optimizer, settings),
            loss_fn,
            torch.Generator().manual_seed(config.seed),
        )

    def update(algo: str) -> tuple[float, float]:
        mine, optimizer, scheduler, loss_fn, gen = learners[algo]
        start = time.perf_counter()
        metrics = _update(mine, optimizer, scheduler, loss_fn, rolled, rewards, old, settings, gen)
        return time.perf_counter() - start, metrics["loss"]

    for _ in range(config.warmup):
        for algo in config.algos:
            update(algo)
    rows = []
    for rep in range(1, config.repetitions + 1):
        order = config.algos if rep % 2 else config.algos[::-1]
        for algo in order:
            seconds, loss = update(algo)
            rows += [
                {"variant": algo, "seed": config.seed, "step": rep, "metric": METRIC, "value": seconds},
                {"variant": algo, "seed": config.seed, "step": rep, "metric": "loss", "value": loss},
            ]
    return pd.DataFrame(rows)


def run(
    config: UpdateTimingConfig,
    out: Path | str,
    *,
    profile: str = "custom",
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
    rerun: bool = True,
) -> Path:
    """Measure into ``DIR/update_time.csv`` and ``DIR/run.json``, always afresh: a time is never resumed,
    so ``rerun`` (the catalog's common signature) changes nothing."""
    set_threads(executor.threads)
    model = config.model or str(ensure_warmstart(WarmStartConfig(), show_progress=show_progress))
    policy, tokenizer = load_policy(model)
    run_dir = RunDir(out, EXPERIMENT, config)
    run_dir.write_cell(_KEY, measure(config, policy, tokenizer))
    return run_dir.finish("update_time", profile, extra={"model": model, "torch_threads": executor.threads})


def draw(run_folder: Path, figures: Path) -> list[Path]:
    """Nothing of its own: the claim it serves is judged in the LLM report (ADPO Table 4's claim row)."""
    return []
