"""Shared by the benchmarks: repeated timing, and one CSV per benchmark under ``benchmarks/results/``."""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def quick_regime(**overrides) -> tuple[str, object]:
    """(warm-start folder, LLMConfig): the quick profile (``experiments/opo_table1.toml``) at the
    shape the speed targets are stated for: 16 prompts x 6 completions, up to 56 new tokens,
    8 updates per rollout batch (4 epochs x 2 mini-batches), GRPO; held-out evaluation reduced
    to one prompt (it is not part of a step)."""
    from geobench.experiments import EXPERIMENTS
    from geobench.llm.warmstart import ensure_warmstart

    shape = dict(prompts_per_step=16, group=6, max_new_tokens=56, epochs=4, minibatches=2, micro_batch=0)
    config = EXPERIMENTS["llm"].load("quick")
    config = dataclasses.replace(config, algos=("grpo",), seeds=1, eval_every=10**9, eval_prompts=1, **shape)
    config = dataclasses.replace(config, **overrides)
    return str(ensure_warmstart(config.warmstart_config(), show_progress=False)), config


@contextlib.contextmanager
def reference_paths(on: bool) -> Iterator[None]:
    """While ``on``, every policy takes the reference paths (transformers' ``generate`` and the
    padded forward pass), the code before :mod:`geobench.llm.packed`."""
    from geobench.llm import packed

    supports = packed.supports
    if on:
        packed.supports = lambda policy: False
    try:
        yield
    finally:
        packed.supports = supports


def median_time(fn: Callable[[int], object], repeats: int = 3) -> float:
    """Median wall time in seconds of ``fn(0)``, ..., ``fn(repeats - 1)``."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_results(rows: list[dict], name: str) -> pd.DataFrame:
    """Write ``rows`` to ``benchmarks/results/<name>.csv``, print and return them."""
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / f"{name}.csv", index=False)
    print(frame.to_string(index=False))
    return frame
