"""Where benchmarks write: one CSV per benchmark under ``benchmarks/results/``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(rows: list[dict], name: str) -> pd.DataFrame:
    """Write ``rows`` to ``benchmarks/results/<name>.csv``, print and return them."""
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / f"{name}.csv", index=False)
    print(frame.to_string(index=False))
    return frame
