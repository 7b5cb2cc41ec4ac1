"""Shared by the benchmarks: repeated timing, and one CSV per benchmark under ``benchmarks/results/``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


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
