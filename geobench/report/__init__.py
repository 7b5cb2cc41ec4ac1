"""Figures and tables: pure functions of the CSVs in ``results/`` (and of the registry).

``build_all`` is what ``make figures`` / ``geobench figures`` runs. Each artifact builder
reads a finished run folder and writes PNG (for the report) and PDF (for papers); a run
that is missing is reported, not fatal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from matplotlib.figure import Figure

from geobench.config import EXPERIMENTS_DIR
from geobench.report.taxonomy import taxonomy_tables
from geobench.report.toy_figure import saturation_figure
from geobench.results import atomic_write_text, read_run


def save_figure(fig: Figure, figures: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf``; returns both paths."""
    figures.mkdir(parents=True, exist_ok=True)
    paths = [figures / f"{stem}.png", figures / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def draw_toy(run_folder: Path, figures: Path) -> list[Path]:
    """OPO Fig. 3 from a toy-saturation run folder."""
    run = read_run(run_folder)
    if run is None:
        raise FileNotFoundError(f"{run_folder} has no run.json: run `geobench toy-saturation`")
    frame, meta = run
    floor = meta["config"]["log_floor"]
    caption = (
        f"OPO Fig. 3 reproduction ({meta['profile']} profile, {frame['p'].nunique()} grid points, deterministic). "
        f"Exact zeros are drawn at {floor:g} on the log panels (dotted line)."
    )
    return save_figure(saturation_figure(frame, floor, caption), figures, "opo_fig3")


def build_toy(results: Path, figures: Path) -> list[Path]:
    return draw_toy(results / "toy-saturation", figures)


def build_taxonomy(results: Path, figures: Path) -> list[Path]:
    paths = []
    for name, text in taxonomy_tables(EXPERIMENTS_DIR / "taxonomy.toml").items():
        path = figures / f"{name}.md"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


BUILDERS: dict[str, Callable[[Path, Path], list[Path]]] = {
    "opo_fig3": build_toy,
    "taxonomy": build_taxonomy,
}


def build_all(results: Path, figures: Path) -> tuple[list[Path], dict[str, str]]:
    """Run every builder; returns written paths and, per skipped artifact, why."""
    written, skipped = [], {}
    for name, builder in BUILDERS.items():
        try:
            written += builder(results, figures)
        except FileNotFoundError as missing:
            skipped[name] = str(missing)
    return written, skipped
