"""``results/REPORT.md``: one section per artifact of the two papers, then every claim with a verdict.

A pure function of ``results/*/`` (CSVs and run.json), of ``experiments/paper/`` (the sections in
``sections.toml``, the claims, their rules' thresholds and the paper numbers in ``*_claims.csv``) and
of the figures/tables ``build_all`` drew from the same CSVs (for the conceptual figures, the CSVs it
computed from the objective library into the figures folder). A run that is missing gives a section
that says so and names the command that makes it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

import geobench.report.llm_report as llm_report
import geobench.report.mujoco_report as mujoco_report
import geobench.report.toy_figure as toy_figure
from geobench.concepts.tables import Tables, read_tables
from geobench.report.artifacts import bandit_claims
from geobench.report.cards import card_summaries
from geobench.report.claims import PAPER_DIR, REPORT_COLUMNS, read_claims
from geobench.report.concept_report import CONCEPTS
from geobench.report.leaderboard import leaderboard_summary
from geobench.report.llm_ablations import stress_claims
from geobench.report.markdown import markdown_table
from geobench.report.stats import VERDICTS
from geobench.results import preferred_run, read_run


@dataclass(frozen=True)
class Section:
    """One artifact of a paper: where our numbers come from and what the paper claims."""

    paper: str
    artifact: str
    title: str
    claim: str
    command: str
    run: str | tuple[str, ...] | None = None  # run folder(s) under results/, first present wins; None: the registry
    figures: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


@cache
def _layout() -> dict:
    return tomllib.loads((PAPER_DIR / "sections.toml").read_text())


def sections() -> tuple[Section, ...]:
    """REPORT.md's sections, in order, as ``experiments/paper/sections.toml`` states them."""
    return tuple(
        Section(
            **{
                **spec,
                "run": tuple(spec["run"]) if isinstance(spec.get("run"), list) else spec.get("run"),
                "figures": tuple(spec.get("figures", ())),
                "tables": tuple(spec.get("tables", ())),
            }
        )
        for spec in _layout()["section"]
    )


def _demote(markdown: str) -> str:
    """Push the embedded tables' headings two levels down, under the section's own heading."""
    return "\n".join("##" + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"


def _basis(run: tuple[pd.DataFrame, dict]) -> str:
    frame, meta = run
    seeds = frame["seed"].nunique() if "seed" in frame.columns else 1
    commit = str(meta.get("git_commit", "unknown"))[:10] + (" (dirty)" if meta.get("git_dirty") else "")
    return (
        f"Ours: {meta['profile']} profile, {seeds} seed(s), wall time {meta['wall_time_s']:.1f} s, "
        f"commit {commit}; command `{meta['command']}`."
    )


def section(spec: Section, results: Path, figures: Path, link_prefix: str) -> str:
    lines = [f"### {spec.artifact}: {spec.title}", "", f"**The paper's claim.** {spec.claim}", ""]
    folders = (spec.run,) if isinstance(spec.run, str) else spec.run or ()
    run = next((r for r in (read_run(preferred_run(results, f)) for f in folders) if r is not None), None)
    if folders and run is None:
        lines += [f"**Not run.** `results/{folders[-1]}/` has no run.json: run `{spec.command}`.", ""]
        return "\n".join(lines) + "\n"
    if run is not None:
        lines += [_basis(run), ""]
    for stem in spec.figures:
        if (figures / f"{stem}.png").exists():
            lines += [f"![{spec.artifact}]({link_prefix}/{stem}.png)", ""]
    for stem in spec.tables:
        path = figures / f"{stem}.md"
        lines += [_demote(path.read_text()) if path.exists() else f"(`{stem}.md` not drawn: `geobench figures`)", ""]
    return "\n".join(lines) + "\n"


def _labelled(frame: pd.DataFrame, artifact: str) -> pd.DataFrame:
    """Claim rows with their artifact and paper (its first word) in front; 'paper' values become 'paper_value'."""
    frame = frame.rename(columns={"paper": "paper_value"})
    if "artifact" not in frame.columns:
        frame.insert(0, "artifact", artifact)
    frame.insert(0, "paper", frame["artifact"].str.split().str[0])
    return frame


def _concept(figures: Path | None, stem: str) -> tuple[Tables, dict] | None:
    """The tables ``geobench figures`` computed for a conceptual figure, if it has drawn it into ``figures``."""
    path = None if figures is None else figures / f"{stem}.csv"
    return None if path is None or not path.exists() else (read_tables(path), {})


def _llm_claims(run: llm_report.LLMRun, meta: dict) -> pd.DataFrame:
    return llm_report.claims(run, read_claims("llm_claims"))


LLM_SOURCES = frozenset({"llm", "llm-stress"})  # read as llm_report.LLMRun (metrics, timing, per-pair check)
# Per source of sections.toml's claims: its claims table from (the source's frame or tables, its run.json).
JUDGES: dict[str, Callable[[Any, dict], pd.DataFrame]] = {
    "opo_fig1": lambda t, m: CONCEPTS["opo_fig1"].claims(t),
    "toy-saturation": lambda f, m: toy_figure.claims(f),
    "llm": _llm_claims,
    "llm-stress": lambda r, m: stress_claims(r),
    "adpo_fig1": lambda t, m: CONCEPTS["adpo_fig1"].claims(t),
    "bandits": bandit_claims,
    "mujoco": lambda f, m: mujoco_report.claims(mujoco_report.final(f)),
}


def all_claims(results: Path, figures: Path | None = None) -> pd.DataFrame:
    """Every quantitative claim with ours and a verdict; an experiment not run contributes a 'not run' row.

    The conceptual figures' claims come from the CSVs ``build_all`` wrote into ``figures``
    (none given: 'not run' rows naming ``geobench figures``).
    """
    parts = []
    for spec in _layout()["claims"]:
        folder, artifact = spec["source"], spec["artifact"]
        reader = llm_report.read_llm_run if folder in LLM_SOURCES else read_run
        run = _concept(figures, folder) if folder in CONCEPTS else reader(preferred_run(results, folder))
        if run is None:
            missing = {
                "claim": f"every claim of {artifact}",
                "ours": f"not run: `{spec['command']}`",
                "verdict": "inconclusive",
                "rule": "needs the run",
            }
            parts.append(_labelled(pd.DataFrame([missing]), artifact))
        else:
            parts.append(_labelled(JUDGES[folder](*run), artifact))
    adpo_run = llm_report.read_llm_run(preferred_run(results, "llm-adpo"))  # the paper profile runs ADPO's LLM study
    if adpo_run is not None:
        adpo = _labelled(_llm_claims(*adpo_run), "")
        parts = [
            p[~p["artifact"].str.startswith("ADPO Fig. 3") & ~p["artifact"].str.startswith("ADPO Table 4")]
            for p in parts
        ]
        parts.append(adpo[adpo["paper"] == "ADPO"])
    return pd.concat(parts, ignore_index=True).reindex(columns=list(REPORT_COLUMNS)).astype(object).fillna("-")


def build_report(results: Path, figures: Path, out: Path) -> str:
    """The Markdown text of REPORT.md (written to ``out`` by the caller)."""
    link_prefix = Path(os.path.relpath(figures.resolve(), out.parent.resolve()))  # default: ../figures
    claims = all_claims(results, figures)
    counts = {v: int((claims["verdict"] == v).sum()) for v in VERDICTS}
    head = [
        "# geobench reproduction report",
        "",
        "Generated by `geobench figures` from the CSVs under `results/`; every number called ours comes from "
        "a run's CSV (for the papers' conceptual figures, from the CSV `geobench figures` computes from the "
        "objective library beside each figure), every number called the paper's from `experiments/paper/`. "
        "Verdicts follow the rule printed beside each claim (code: `geobench/report/`), never a hand edit.",
        "",
        f"**Claims: {len(claims)} — {', '.join(f'{counts[v]} {v}' for v in VERDICTS)}.** "
        "The quick profile runs small models on a 2-core CPU: "
        "a verdict there is about the claim's mechanism at that scale, not the paper's exact setting.",
        "",
    ]
    body = []
    for paper in ("OPO", "ADPO", "Ablation (ours)"):
        body.append(f"## {paper}\n")
        body += [section(s, results, figures, str(link_prefix)) for s in sections() if s.paper == paper]
    body.append(leaderboard_summary(results, out))
    body.append(card_summaries(results, out))
    tail = ["## Claims", "", markdown_table(claims)]
    return "\n".join(head) + "\n" + "\n".join(body) + "\n".join(tail)
