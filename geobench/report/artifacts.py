"""The artifacts of the toy, bandit and distillation runs, the taxonomy tables and the conceptual figures.

Each ``draw_*`` reads one finished run folder and writes PNG (for the report) and PDF (for
papers) beside Markdown tables with the paper's numbers and claims; each ``build_*`` finds the
preferred run folder under ``results/`` (the paper profile's when it exists). The conceptual
figures need no run: :func:`build_concept` computes them from the objective library, writes the
numbers as a CSV beside the figure and draws from that CSV.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import geobench.report.bandits_report as bandits_report
import geobench.report.mujoco_report as mujoco_report
from geobench.concepts.tables import write_tables
from geobench.config import EXPERIMENTS_DIR
from geobench.report.concept_report import CONCEPTS
from geobench.report.files import require_run, save_figure
from geobench.report.markdown import markdown_table
from geobench.report.taxonomy import taxonomy_tables
from geobench.report.toy_figure import saturation_figure
from geobench.results import atomic_write_text, preferred_run


def draw_toy(run_folder: Path, figures: Path) -> list[Path]:
    """OPO Fig. 3 from a toy-saturation run folder."""
    frame, meta = require_run(run_folder, "geobench toy-saturation")
    floor = meta["config"]["log_floor"]
    caption = (
        f"OPO Fig. 3 reproduction ({meta['profile']} profile, {frame['p'].nunique()} grid points, deterministic). "
        f"Exact zeros are drawn at {floor:g} on the log panels (dotted line)."
    )
    return save_figure(saturation_figure(frame, floor, caption), figures, "opo_fig3")


def build_toy(results: Path, figures: Path) -> list[Path]:
    return draw_toy(preferred_run(results, "toy-saturation"), figures)


def bandit_claims(frame: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """ADPO Sec. 6.1's claims with verdicts, from a bandits run's CSV and metadata."""
    config = meta["config"]
    final = bandits_report.final_values(frame)
    scaling = (config["scaling_noise"], config["scaling_level"], tuple(config["scaling_hidden"]))
    paper = pd.read_csv(EXPERIMENTS_DIR / "paper" / "adpo_fig2_claims.csv")
    return bandits_report.claims(final, bandits_report.summary(final), paper, config["hidden"][0], scaling)


def draw_bandits(run_folder: Path, figures: Path) -> list[Path]:
    """ADPO Fig. 2a/2b and their Markdown tables (with the claims) from a bandits run folder."""
    frame, meta = require_run(run_folder, "geobench bandits --scaling")
    config = meta["config"]
    hidden = config["hidden"][0]
    final = bandits_report.final_values(frame)
    stats = bandits_report.summary(final)
    reference = bandits_report.reference_level(frame, hidden)
    seeds = final["seed"].nunique()
    basis = f"{meta['profile']} profile, {seeds} seeds, {config['steps']} steps, 95% bootstrap CIs"
    paths = save_figure(
        bandits_report.fig2a(
            stats, hidden, reference, f"ADPO Fig. 2a reproduction: final WinMass ({basis}); hidden {hidden}"
        ),
        figures,
        "adpo_fig2a",
    )
    scaling = (config["scaling_noise"], config["scaling_level"], tuple(config["scaling_hidden"]))
    paper = pd.read_csv(EXPERIMENTS_DIR / "paper" / "adpo_fig2_claims.csv")
    claims = bandit_claims(frame, meta)
    has_scaling = stats[(stats["scenario"] == scaling[0]) & (stats["level"] == scaling[1])]["hidden"].nunique() > 1
    if has_scaling:
        caption = f"ADPO Fig. 2b reproduction: WinMass vs width on {scaling[0]}/{scaling[1]} ({basis})"
        paths += save_figure(bandits_report.fig2b(stats, scaling[0], scaling[1], caption), figures, "adpo_fig2b")
    ref_line = f"Reference policy (30 clean steps) WinMass: {reference:.3f}.\n\n" if reference is not None else ""
    for panel in ("a", "b"):
        rows = claims[claims["claim"].isin(paper[paper["panel"] == panel]["statement"])]
        body = (
            bandits_report.scenario_table(stats, hidden)
            if panel == "a"
            else markdown_table(
                stats[(stats["scenario"] == scaling[0]) & (stats["level"] == scaling[1])]
                .pivot(index="variant", columns="hidden", values="mean")
                .reset_index()
            )
            if has_scaling
            else "The scaling study was not run (`geobench bandits --scaling`).\n"
        )
        text = (
            f"### ADPO Fig. 2{panel}: ours ({basis})\n\n{ref_line}{body}\n"
            f"#### The paper's claims beside ours\n\n{markdown_table(rows)}"
        )
        path = figures / f"adpo_fig2{panel}.md"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


def build_bandits(results: Path, figures: Path) -> list[Path]:
    return draw_bandits(preferred_run(results, "bandits"), figures)


def build_anchor_ablation(results: Path, figures: Path) -> list[Path]:
    """ADPO's bandit results under the fixed vs the on-policy anchor (an ablation of ours)."""
    # Both arms from one profile: the paper profile's only when both of its runs exist.
    moving_folder = preferred_run(results, "bandits-onpolicy-anchor")
    fixed_folder = results / ("bandits" + moving_folder.name.removeprefix("bandits-onpolicy-anchor"))
    fixed, meta = require_run(fixed_folder, "geobench bandits --scaling")
    moving, _ = require_run(
        moving_folder,
        "geobench bandits --methods adpo-listwise-raw,adpo-listwise-rank,adpo-pairwise --anchors "
        "adpo-listwise-raw=old,adpo-listwise-rank=old,adpo-pairwise=old --out results/bandits-onpolicy-anchor",
    )
    table = bandits_report.anchor_ablation_table(fixed, moving, meta["config"]["hidden"][0])
    text = (
        "### Ablation (ours): ADPO on the bandits with a fixed vs an on-policy anchor\n\n"
        "Final WinMass, mean [95% bootstrap CI] over seeds, and top_prob = E_x[max_i pi(i|x)], the "
        "policy's confidence. The on-policy anchor's loss never stops pushing (its gradient at u = 0 "
        "is (1/K - q)/tau), so the policy grows confident whether or not it is right.\n\n" + table
    )
    path = figures / "adpo_fig2_anchor_ablation.md"
    atomic_write_text(path, text)
    return [path]


def draw_mujoco(run_folder: Path, figures: Path) -> list[Path]:
    """ADPO Table 2 (Markdown, beside the paper's) and its figure from a distillation run folder."""
    frame, meta = require_run(run_folder, "geobench mujoco distill")
    fin = mujoco_report.final(frame)
    config = meta["config"]
    basis = f"{meta['profile']} profile, {fin['seed'].nunique()} seeds, {config['steps']} steps"
    paths = save_figure(
        mujoco_report.figure(fin, f"ADPO Table 2 reproduction ({basis}); 95% bootstrap CIs"), figures, "adpo_table2"
    )
    paper = pd.read_csv(EXPERIMENTS_DIR / "paper" / "adpo_table2.csv")
    text = (
        f"### ADPO Table 2: ours ({basis}) beside the paper's\n\n"
        + mujoco_report.table(fin, paper, meta.get("teacher_returns", {}), meta.get("teacher_forward"))
        + "\n#### The paper's claims beside ours\n\n"
        + markdown_table(mujoco_report.claims(fin))
    )
    path = figures / "adpo_table2.md"
    atomic_write_text(path, text)
    return [*paths, path]


def build_mujoco(results: Path, figures: Path) -> list[Path]:
    return draw_mujoco(preferred_run(results, "mujoco"), figures)


def build_taxonomy(results: Path, figures: Path) -> list[Path]:
    paths = []
    for name, text in taxonomy_tables(EXPERIMENTS_DIR / "taxonomy.toml").items():
        path = figures / f"{name}.md"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


def build_concept(stem: str, results: Path, figures: Path) -> list[Path]:
    """A conceptual figure from the objective library: ``stem.csv`` (its numbers), then ``stem.png/.pdf``
    and ``stem.md`` (what it shows, its claims) drawn from that CSV; ``results`` is not read."""
    concept = CONCEPTS[stem]
    csv = figures / f"{stem}.csv"
    tables = write_tables(concept.compute(), csv)
    paths = [csv, *save_figure(concept.draw(tables, concept.caption(tables)), figures, stem)]
    text = figures / f"{stem}.md"
    atomic_write_text(text, concept.text(tables))
    return [*paths, text]
