"""Benchmark: `geobench toy-saturation` end to end (target: < 3 s on a 2-core CPU).

Measures the in-process ``run()`` (the computation and CSV writing) and the whole command
in a fresh process (interpreter and torch start-up, figure drawing included), each the
median of a few repeats, and writes ``benchmarks/results/toy_saturation.csv``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import write_results  # benchmarks/ is on sys.path when run as a script

from geobench import toy
from geobench.config import experiment_file, load_config

REPEATS = 3


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    config = load_config(toy.ToyConfig, experiment_file("opo_fig3"), "quick")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        in_process = [
            timed(lambda i=i: toy.run(config, Path(tmp) / f"run{i}", show_progress=False)) for i in range(REPEATS)
        ]
        command = [sys.executable, "-m", "geobench", "toy-saturation", "--quiet"]
        end_to_end = [
            timed(
                lambda i=i: subprocess.run(
                    [*command, "--out", f"{tmp}/cli{i}", "--figures", f"{tmp}/fig{i}"], check=True, capture_output=True
                )
            )
            for i in range(REPEATS)
        ]
        end_to_end_no_fig = [
            timed(
                lambda i=i: subprocess.run(
                    [*command, "--out", f"{tmp}/nofig{i}", "--no-draw"], check=True, capture_output=True
                )
            )
            for i in range(REPEATS)
        ]
    cells = len(config.objectives) * len(config.readings)
    for name, times in [
        ("run() in process", in_process),
        ("CLI, with figure", end_to_end),
        ("CLI, no figure", end_to_end_no_fig),
    ]:
        rows.append(
            {
                "benchmark": "toy-saturation",
                "measure": name,
                "grid_points": config.grid_points,
                "cells": cells,
                "median_s": round(statistics.median(times), 3),
                "target_s": 3.0,
                "repeats": REPEATS,
            }
        )
    write_results(rows, "toy_saturation")


if __name__ == "__main__":
    main()
