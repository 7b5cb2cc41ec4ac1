"""LLM math RL (OPO Table 1, Figs. 4-7; ADPO Fig. 3, Table 4): algorithms x seeds, resumable."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from geobench.errors import ConfigError
from geobench.executor import (
    Cell,
    ExecutorConfig,
    Resources,
    check_memory,
    pending_cells,
    run_cells,
    set_threads,
)
from geobench.identity import objective_inputs, package_inputs, path_input
from geobench.llm import hub, paper_shapes, trl_engine
from geobench.llm import samples as kept
from geobench.llm.data import eval_task, training_problems
from geobench.llm.metrics import TIMING_METRICS
from geobench.llm.model import check_weights, load_policy, parameter_count, training_bytes
from geobench.llm.pair_check import PAIR_COLUMNS, PairCheck, split_pairs
from geobench.llm.prompts import check_format
from geobench.llm.rollout import make_rollout, require_vllm
from geobench.llm.settings import LLMConfig
from geobench.llm.tasks import BUILT_IN, make_task
from geobench.llm.train import train_cell
from geobench.llm.warmstart import ensure_warmstart, warmstart_dir
from geobench.objectives import get_objective
from geobench.progress import StepReport, no_report
from geobench.results import RunDir, refuse_foreign_run

EXPERIMENT = "llm"


def _model_path(config: LLMConfig, out: Path, show_progress: bool) -> str:
    """--model, else the warm start: the committed one where its settings are this run's, else this
    run's own under ``out/warmstart/<task>`` (never built into ``experiments/``)."""
    if config.model:
        return config.model
    own = out / "warmstart" / config.dataset
    return str(ensure_warmstart(config.warmstart_config(), own, show_progress=show_progress))


def _train(
    config: LLMConfig, model_path: str, policy, tokenizer, task, algo: str, seed: int, on_step, samples: list
) -> list[dict]:
    """One cell through the chosen engine; both return the same tidy rows. Only geobench's own loop
    keeps samples and adds the per-pair check's rows, settings permitting (the settings refuse it under TRL)."""
    if config.engine == "trl":
        with tempfile.TemporaryDirectory(prefix="geobench-trl-") as scratch:
            return trl_engine.train_cell(policy, tokenizer, task, algo, seed, config, scratch, on_step=on_step)
    rollout = make_rollout(config.rollout, model_path, tokenizer, config.sampling())
    if not _pair_checked(config):
        return train_cell(policy, tokenizer, task, rollout, algo, seed, config, on_step=on_step, samples=samples)
    check = PairCheck(config, algo, seed)
    rows = train_cell(
        policy, tokenizer, task, rollout, algo, seed, config, on_step=on_step, samples=samples, before_update=check
    )
    return rows + check.rows


def _pair_checked(config: LLMConfig) -> bool:
    return bool(config.pair_check_every) and len(config.compared) >= 2  # else nothing to compare


def run(
    config: LLMConfig,
    out: Path | str,
    *,
    profile: str = "custom",
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
    rerun: bool = False,
) -> Path:
    """Train every (algorithm, seed) cell not already on disk (every cell under ``rerun``); returns
    ``DIR/metrics.csv``.

    Also writes ``DIR/samples.jsonl``, a few completions per cell (:mod:`geobench.llm.samples`), and,
    with ``pair_check_every``, the per-pair check's cosines to ``DIR/pairs.csv``
    (:mod:`geobench.llm.pair_check`), merged from cells like the metrics and recorded in
    ``run.json`` under ``tables``."""
    set_threads(executor.threads)
    if config.rollout == "vllm":
        require_vllm()  # fail before any work, not after the first model load
    if config.engine == "trl" and importlib.util.find_spec("trl") is None:
        raise ConfigError("--engine trl needs TRL: pip install -e '.[trl]'")
    refuse_foreign_run(Path(out), EXPERIMENT)  # before a warm start is built under it
    task = make_task(config.dataset, config.levels)  # a missing dataset or model fails here, once, not in every cell
    eval_task(task, config.dataset, config.levels, config.eval_split, config.eval_levels)  # and a missing test split
    training_problems(task, config.data_epochs, config.seed)  # and data passes over an endless generator
    model_path = _model_path(config, Path(out), show_progress)
    _check_model(model_path, config.prompt_format)
    if _device() == "cpu":  # a paper-size model on a CPU: refused with its estimate, not swapped into for minutes
        per_cell, why = training_bytes(parameter_count(model_path), config.dtype, _pair_checked(config))
        check_memory(executor, per_cell, len(config.algos) * config.seeds, why)
    # One cell's metrics, timing and pairs rows come from one training run: the same inputs for all three.
    same = {"inputs": partial(cell_inputs, config, model_path), "rerun": rerun}
    run_dir = RunDir(out, EXPERIMENT, config, **same)
    timing_dir = RunDir(Path(out) / "timing", EXPERIMENT, config, **same)
    pairs_dir = RunDir(out, EXPERIMENT, config, table="pairs", columns=PAIR_COLUMNS, **same)
    resources = Resources(cpus=executor.threads, gpus=config.cell_gpus)
    cells = [
        Cell({"variant": algo, "seed": seed}, _cell, (config, model_path, algo, seed), resources, reports_steps=True)
        for algo in config.algos
        for seed in range(config.seed, config.seed + config.seeds)
    ]

    def write(key: Mapping[str, Any], result: tuple[pd.DataFrame, list[dict]]) -> None:
        frame, samples = result
        frame, pairs = split_pairs(frame)
        kept.write_cell(run_dir.cell_path(key), key, samples)  # before the metrics that mark the cell done
        timed = frame["metric"].isin(TIMING_METRICS)
        timing_dir.write_cell(key, frame[timed])  # first: a cell counts as done once metrics exist
        if len(pairs):
            pairs_dir.write_cell(key, pairs)
        run_dir.write_cell(key, frame[~timed])

    run_cells(pending_cells(cells, run_dir.done), write, executor, description="llm cells", show_progress=show_progress)
    extra = {"model": model_path, "device": _device(), "torch_threads": executor.threads}
    timing_dir.finish("timing", profile, extra)
    kept.merge(run_dir.cells, Path(out) / kept.FILE)
    if pairs_dir.finished_cells():
        extra["tables"] = {"pairs": pairs_dir.merge("pairs")}
    else:  # no check in this run: a pairs.csv left by an earlier one must not pass for this one's
        (Path(out) / "pairs.csv").unlink(missing_ok=True)
    return run_dir.finish("metrics", profile, extra)


def cell_inputs(config: LLMConfig, model_path: str, key: Mapping[str, Any]) -> dict[str, str]:
    """What a cell's rows depend on besides the config (:mod:`geobench.identity`): its objective's code,
    the starting checkpoint (a local folder's files, else the ``random:`` or hub name), the dataset (a
    built-in task's name, a local file's or folder's content, else the hub id: the config names no
    revision, so the hub's default one) and the versions of the packages that compute the rows."""
    dataset = f"name {config.dataset}" if config.dataset in BUILT_IN else path_input(config.dataset)
    engines = ("trl",) if config.engine == "trl" else ()
    engines += ("vllm",) if config.rollout == "vllm" else ()
    return {
        **objective_inputs([get_objective(key["variant"])]),
        "model": path_input(model_path),
        "dataset": dataset,
        **package_inputs(("torch", "numpy", "transformers", *engines)),
    }


def run_inputs(config: LLMConfig) -> dict[str, str]:
    """The union of every cell's inputs, as ``run.json`` records it, without building the warm start
    (one not built yet is ``absent``, so no committed run matches it)."""
    model = config.model or str(warmstart_dir(config.dataset))
    return {k: v for algo in config.algos for k, v in cell_inputs(config, model, {"variant": algo}).items()}


def _check_model(model: str, prompt_format: str) -> None:
    """The model's config and tokenizer load (cheap even for a large checkpoint), and the tokenizer
    has a chat template if the prompts need one; or one line."""
    from transformers import AutoConfig, AutoTokenizer

    if paper_shapes.is_random(model):
        paper_shapes.random_config(model)  # an unknown name or scale is one line; its tokenizer has Qwen3's template
        return
    if Path(model).is_dir():
        check_weights(Path(model))
    elif not Path(model).exists():
        hub.require_hub(model, "--model")
    try:
        AutoConfig.from_pretrained(model)
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        missed = hub.offline_miss(model, "--model")
        raise ConfigError(missed or f"cannot load model {model!r} ({type(error).__name__}); check --model") from None
    check_format(tokenizer, prompt_format, model)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _cell(
    config: LLMConfig, model_path: str, algo: str, seed: int, report: StepReport = no_report
) -> tuple[pd.DataFrame, list[dict]]:
    """One (algorithm, seed) run from the warm start: metrics and timing rows together, and its samples."""
    task = make_task(config.dataset, config.levels)
    policy, tokenizer = load_policy(model_path, config.dtype)
    policy.to(_device())
    samples: list[dict] = []
    rows = _train(config, model_path, policy, tokenizer, task, algo, seed, report, samples)
    return pd.DataFrame(rows).assign(variant=algo, task=task.name), samples
