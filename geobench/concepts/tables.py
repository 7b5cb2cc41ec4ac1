"""A conceptual figure's numbers: named tables, stored as one CSV beside the figure.

Each computation returns ``{name: DataFrame}`` (a path, a grid, a summary, ...); the CSV
holds them stacked with a ``table`` column and the union of their columns, so that the
figure, its caption and its claim verdicts are pure functions of one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from geobench.executor import set_threads
from geobench.results import atomic_write_text

Tables = dict[str, pd.DataFrame]


def join_tables(tables: Tables) -> pd.DataFrame:
    """The tables stacked: a ``table`` column, then every table's columns (empty where a table has none)."""
    return pd.concat([t.assign(table=name)[["table", *t.columns]] for name, t in tables.items()], ignore_index=True)


def split_tables(frame: pd.DataFrame) -> Tables:
    """Inverse of :func:`join_tables` (integer columns come back as floats where other tables padded them)."""
    return {
        str(name): part.drop(columns="table").dropna(axis=1, how="all").reset_index(drop=True)
        for name, part in frame.groupby("table", sort=False)
    }


def write_tables(tables: Tables, path: Path) -> Tables:
    """Write ``path`` (CSV) and return the tables as read back from it: what is drawn is what is stored."""
    atomic_write_text(path, join_tables(tables).to_csv(index=False))
    return read_tables(path)


def read_tables(path: Path) -> Tables:
    return split_tables(pd.read_csv(path))


def summary(values: dict[str, float]) -> pd.DataFrame:
    """A ``quantity, value`` table of a computation's scalars."""
    return pd.DataFrame({"quantity": list(values), "value": [float(v) for v in values.values()]})


def scalars(table: pd.DataFrame) -> dict[str, float]:
    """Inverse of :func:`summary`."""
    return dict(zip(table["quantity"], table["value"].astype(float), strict=True))


@contextmanager
def single_thread() -> Iterator[None]:
    """Torch on one thread for the block: the tensors are tiny, and one thread keeps reductions
    in a fixed order, so the CSVs are the same bytes on every run."""
    before = torch.get_num_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(before)
