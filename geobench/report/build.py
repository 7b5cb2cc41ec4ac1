"""``geobench figures``: every artifact builder, then ``results/REPORT.md`` from what they drew."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from geobench.report.artifacts import (
    build_anchor_ablation,
    build_bandits,
    build_concept,
    build_mujoco,
    build_taxonomy,
    build_toy,
)
from geobench.report.leaderboard import build_leaderboard
from geobench.report.llm_artifacts import build_llm, build_llm_stress, build_opo_forms, build_opo_v5_ood
from geobench.report.reproduction import build_report
from geobench.results import atomic_write_text

BUILDERS: dict[str, Callable[[Path, Path], list[Path]]] = {
    "adpo_fig1": partial(build_concept, "adpo_fig1"),
    "opo_fig1": partial(build_concept, "opo_fig1"),
    "opo_fig2": partial(build_concept, "opo_fig2"),
    "opo_fig3": build_toy,
    "adpo_fig2": build_bandits,
    "adpo_fig2_anchor_ablation": build_anchor_ablation,
    "adpo_table2": build_mujoco,
    "llm": build_llm,
    "opo_forms": build_opo_forms,
    "llm_stress": build_llm_stress,
    "opo_v5_ood": build_opo_v5_ood,
    "taxonomy": build_taxonomy,
    "leaderboard": build_leaderboard,
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


def write_report(results: Path, figures: Path, path: Path | None = None) -> Path:
    """``path`` (default ``results/REPORT.md``) from the runs under ``results`` and the figures ``build_all`` drew."""
    path = path or results / "REPORT.md"
    atomic_write_text(path, build_report(results, figures, path))
    return path
