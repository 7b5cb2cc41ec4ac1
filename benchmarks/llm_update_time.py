"""Benchmark: actor update time per algorithm at one identical micro-batch (ADPO Table 4, like for like).

The measurement is :mod:`geobench.llm.update_timing`, the one ``make reproduce`` runs as its
``llm-update-time`` stage and the report judges the "3.5x faster" claim on: the algorithms' updates
interleaved in one process on the same model and rollouts. This script runs it at the quick and a
longer completion length and writes ``benchmarks/results/llm_update_time.csv`` (medians per algorithm).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pandas as pd
from _bench import write_results  # benchmarks/ is on sys.path when run as a script

from geobench.experiments import UPDATE_TIME
from geobench.llm.settings import ALGOS
from geobench.llm.update_timing import METRIC

LENGTHS = (6, 32)  # the quick profile's completions, and longer ones where the model dominates


def main() -> None:
    base = UPDATE_TIME.load("quick")
    rows = []
    for length in LENGTHS:
        config = dataclasses.replace(base, algos=ALGOS, tokens=length, repetitions=5)
        with tempfile.TemporaryDirectory() as out:
            frame = pd.read_csv(UPDATE_TIME.run(config, Path(out), show_progress=False))
        times = frame[frame["metric"] == METRIC].groupby("variant")["value"].median()
        rows += [
            {
                "algorithm": algo,
                "micro_batch_completions": config.prompts * config.group,
                "tokens": length,
                "update_s_median": round(float(times[algo]), 4),
                "repeats": config.repetitions,
                "threads": 1,
            }
            for algo in ALGOS
        ]
    write_results(rows, "llm_update_time")


if __name__ == "__main__":
    main()
