"""The papers' taxonomy tables (OPO Table 2, ADPO Tables 1 and 3) from registry metadata."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from geobench.objectives import REGISTRY, Objective, get_objective
from geobench.report.markdown import markdown_table


def geometry_frame(
    names: list[str], columns: Mapping[str, str], registry: Mapping[str, Objective] = REGISTRY
) -> pd.DataFrame:
    """One row per objective: its name and the chosen ``Geometry`` fields, renamed."""
    rows = []
    for name in names:
        entry = registry[name] if name in registry else get_objective(name)
        geo = dataclasses.asdict(entry.geometry)
        rows.append({"Method": name, **{title: geo[field] for field, title in columns.items()}})
    return pd.DataFrame(rows)


def taxonomy_tables(spec_path: Path) -> dict[str, str]:
    """Markdown for every table in ``experiments/taxonomy.toml``, plus the full registry."""
    with spec_path.open("rb") as handle:
        spec = tomllib.load(handle)
    tables = {}
    for key, table in spec.items():
        frame = geometry_frame(table["rows"], table["columns"])
        tables[key] = f"### {table['title']}\n\nGenerated from the registry's geometry metadata.\n\n" + markdown_table(
            frame
        )
    every = {
        f.name: f.name.replace("_", " ").capitalize()
        for f in dataclasses.fields(next(iter(REGISTRY.values())).geometry)
    }
    frame = geometry_frame(sorted(REGISTRY), every)
    frame.insert(1, "Feedback", [REGISTRY[n].feedback for n in frame["Method"]])
    frame["Source"] = [REGISTRY[n].paper for n in frame["Method"]]
    tables["objectives"] = "### Every registered objective\n\n" + markdown_table(frame)
    return tables
