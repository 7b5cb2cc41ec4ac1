"""Figures and tables: pure functions of the CSVs in ``results/`` (and of the registry).

Where things live: :mod:`~geobench.report.build` (``build_all``, what ``geobench figures`` runs,
and ``write_report``), :mod:`~geobench.report.artifacts` and :mod:`~geobench.report.llm_artifacts`
(one builder per artifact), :mod:`~geobench.report.files` (reading run folders, saving figures),
:mod:`~geobench.report.reproduction` (REPORT.md) and :mod:`~geobench.report.cards` (the battery's
cards, read from their ``verdicts.csv``). The report imports nothing from the battery.
"""

from geobench.report.artifacts import build_concept, draw_bandits, draw_mujoco, draw_toy
from geobench.report.build import BUILDERS, build_all, write_report
from geobench.report.files import require_run, save_figure
from geobench.report.llm_artifacts import draw_llm

__all__ = [
    "BUILDERS",
    "build_all",
    "build_concept",
    "draw_bandits",
    "draw_llm",
    "draw_mujoco",
    "draw_toy",
    "require_run",
    "save_figure",
    "write_report",
]
