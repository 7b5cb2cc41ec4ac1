"""Benchmark: one sweep under each executor, alone and beside a competing CPU-bound process.

Rows: the bandit sweep (quick profile, one noise family: 3 levels x 9 methods + reference) and
the LLM sweep (quick profile, 2 algorithms x 2 seeds, 20 steps), each run serially with torch's
default thread count (what geobench did before the executor layer), serially with one thread,
over 2 processes and as Ray tasks on a local 2-CPU instance; then the bandit sweep again with a
busy-loop process occupying one core, before (serial, default threads) and after (processes,
one thread each). Every run writes into a fresh folder, so nothing is resumed. Writes
``benchmarks/results/executor.csv``; usage: ``python benchmarks/executor.py [--only bandits|llm]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import torch
from _bench import write_results  # benchmarks/ is on sys.path when run as a script

from geobench import bandits, llm
from geobench.config import experiment_file, load_config
from geobench.executor import ExecutorConfig

DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice on this machine, read before anything sets it
CORES = os.cpu_count() or 1
RUNS = {
    "serial, torch default threads": ExecutorConfig("serial", threads=DEFAULT_THREADS),
    "serial": ExecutorConfig("serial"),
    "processes": ExecutorConfig("processes", workers=2),
    "ray": ExecutorConfig("ray", workers=2),
}


def _bandit_config() -> bandits.BanditConfig:
    return load_config(bandits.BanditConfig, experiment_file("adpo_fig2"), "quick", {"noises": ("cauchy",)})


def _llm_config() -> llm.LLMConfig:
    overrides = {"algos": ("grpo", "opo"), "seeds": 2, "steps": 20}
    return load_config(llm.LLMConfig, experiment_file("opo_table1"), "quick", overrides)


SWEEPS = {"bandits": (_bandit_config, bandits.run), "llm": (_llm_config, llm.run)}


def _busy() -> None:
    while True:
        pass


def _time(sweep: str, executor: ExecutorConfig) -> float:
    make, run = SWEEPS[sweep]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run(make(), Path(out), show_progress=False, executor=executor)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=tuple(SWEEPS))
    only = parser.parse_args().only
    sweeps = [only] if only else list(SWEEPS)
    if "llm" in sweeps:  # build the warm start outside the timings
        with tempfile.TemporaryDirectory() as out:
            llm.run(dataclasses.replace(_llm_config(), steps=1, seeds=1), Path(out), show_progress=False)
    rows = []
    for sweep in sweeps:
        base = None
        for name, executor in RUNS.items():
            seconds = _time(sweep, executor)
            base = base or seconds
            rows.append(_row(sweep, name, executor, False, seconds, base))
    competitor = multiprocessing.get_context("spawn").Process(target=_busy, daemon=True)
    competitor.start()
    try:
        base = None
        for name in ("serial, torch default threads", "processes"):
            seconds = _time("bandits", RUNS[name])
            base = base or seconds
            rows.append(_row("bandits", name, RUNS[name], True, seconds, base))
    finally:
        competitor.terminate()
    write_results(rows, "executor")


def _row(sweep: str, name: str, executor: ExecutorConfig, competing: bool, seconds: float, base: float) -> dict:
    return {
        "sweep": sweep,
        "run": name,
        "executor": executor.kind,
        "workers": executor.workers if executor.kind != "serial" else 1,
        "threads_per_cell": executor.threads,
        "competing_process": competing,
        "cores": CORES,
        "wall_s": round(seconds, 1),
        "speedup_vs_first_row": round(base / seconds, 2),
    }


if __name__ == "__main__":
    main()
