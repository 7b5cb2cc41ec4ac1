"""Benchmark: `geobench toy-saturation` end to end (target: < 3 s on a 2-core CPU).

Measures the in-process ``run()`` (the computation and CSV writing) and the whole command
in a fresh process (interpreter and torch start-up, figure drawing included), each the
median of a few repeats, and writes ``benchmarks/results/toy_saturation.csv``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _bench import median_time, write_results  # benchmarks/ is on sys.path when run as a script

from geobench import toy
from geobench.config import experiment_file, load_config

REPEATS = 3


def main() -> None:
    torch.set_num_threads(1)
    config = load_config(toy.ToyConfig, experiment_file("opo_fig3"), "quick")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "geobench", "toy-saturation", "--quiet"]
        one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # torch's thread count in the fresh process
        medians = {
            "run() in process": median_time(
                lambda i: toy.run(config, Path(tmp) / f"run{i}", show_progress=False), REPEATS
            ),
            "CLI, with figure": median_time(
                lambda i: subprocess.run(
                    [*command, "--out", f"{tmp}/cli{i}", "--figures", f"{tmp}/fig{i}"],
                    check=True,
                    capture_output=True,
                    env=one_thread,
                ),
                REPEATS,
            ),
            "CLI, no figure": median_time(
                lambda i: subprocess.run(
                    [*command, "--out", f"{tmp}/nofig{i}", "--no-draw"], check=True, capture_output=True, env=one_thread
                ),
                REPEATS,
            ),
        }
    cells = len(config.objectives) * len(config.readings)
    rows = [
        {
            "benchmark": "toy-saturation",
            "measure": name,
            "grid_points": config.grid_points,
            "cells": cells,
            "median_s": round(median, 3),
            "target_s": 3.0,
            "repeats": REPEATS,
        }
        for name, median in medians.items()
    ]
    write_results(rows, "toy_saturation")


if __name__ == "__main__":
    main()
