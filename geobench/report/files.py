"""What the artifact builders read and write: finished run folders in, figures out (atomically)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from geobench.results import atomic_write_bytes, read_run


def save_figure(fig: Figure, figures: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf``, each rendered in memory and then written atomically,
    so a run killed while drawing leaves the previous figure, never a truncated one; returns both paths."""
    paths = [figures / f"{stem}.png", figures / f"{stem}.pdf"]
    options = ({"dpi": 150}, {"metadata": {"CreationDate": None}})  # no PDF timestamp: same CSVs, same bytes
    for path, savefig in zip(paths, options, strict=True):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix[1:], **savefig)
        atomic_write_bytes(path, buffer.getvalue())
    return paths


def require_run(run_folder: Path, command: str) -> tuple[pd.DataFrame, dict]:
    """The CSV and metadata of a finished run, or FileNotFoundError naming the command that makes it
    (``build_all`` reports it as a skipped artifact)."""
    run = read_run(run_folder)
    if run is None:
        raise FileNotFoundError(f"{run_folder} has no run.json: run `{command}`")
    return run


def with_timing(frame: pd.DataFrame, run_folder: Path) -> pd.DataFrame:
    """An LLM run's metrics plus its wall-clock rows, which live apart so metrics.csv stays deterministic."""
    timing = read_run(run_folder / "timing")
    return frame if timing is None else pd.concat([frame, timing[0]], ignore_index=True)
