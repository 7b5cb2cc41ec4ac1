"""Figures and tables: pure functions of the CSVs in ``results/`` (and of the registry).

``build_all`` is what ``make figures`` / ``geobench figures`` runs. Each artifact builder
reads a finished run folder and writes PNG (for the report) and PDF (for papers); a run
that is missing is reported, not fatal. The papers' conceptual figures (ADPO Fig. 1, OPO
Figs. 1-2) need no run: their builders compute them from the objective library, write the
numbers as a CSV beside the figure, and draw from that CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from geobench.concepts.tables import write_tables
from geobench.config import EXPERIMENTS_DIR
from geobench.report import bandits_report, llm_ablations, llm_regime, llm_report, mujoco_report
from geobench.report.markdown import markdown_table
from geobench.report.taxonomy import taxonomy_tables
from geobench.report.toy_figure import saturation_figure
from geobench.results import atomic_write_text, preferred_run, read_run


def save_figure(fig: Figure, figures: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf``; returns both paths."""
    figures.mkdir(parents=True, exist_ok=True)
    paths = [figures / f"{stem}.png", figures / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1], metadata={"CreationDate": None})  # no timestamp: same CSVs, same bytes
    return paths


def require_run(run_folder: Path, command: str) -> tuple[pd.DataFrame, dict]:
    """The CSV and metadata of a finished run, or FileNotFoundError naming the command that makes it
    (``build_all`` reports it as a skipped artifact)."""
    run = read_run(run_folder)
    if run is None:
        raise FileNotFoundError(f"{run_folder} has no run.json: run `{command}`")
    return run


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
    ref = frame[(frame["variant"] == "reference") & (frame["hidden"] == hidden) & (frame["metric"] == "winmass")][
        "value"
    ]
    reference = float(ref.mean()) if len(ref) else None
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


def with_timing(frame: pd.DataFrame, run_folder: Path) -> pd.DataFrame:
    """An LLM run's metrics plus its wall-clock rows, which live apart so metrics.csv stays deterministic."""
    timing = read_run(run_folder / "timing")
    return frame if timing is None else pd.concat([frame, timing[0]], ignore_index=True)


ADPO_LLM_STEMS = frozenset({"adpo_fig3", "adpo_table4"})


def draw_llm(run_folder: Path, figures: Path, only: frozenset[str] | None = None) -> list[Path]:
    """OPO Table 1, Figs. 4-7 and ADPO Fig. 3, Table 4 (figures, tables, claims) from an LLM run folder;
    ``only`` restricts it to some of those artifacts (by file stem)."""
    frame, meta = require_run(run_folder, "geobench llm")
    frame = with_timing(frame, run_folder)
    config = meta["config"]
    task = llm_report.task_of(frame, meta)
    basis = (
        f"{meta['profile']} profile, {task}, {frame['seed'].nunique()} seeds, {config['steps']} steps, "
        f"{config['prompts_per_step']} prompts x {config['group']} samples; mean +- 95% CI over seeds"
    )
    panels = {
        "opo_fig4": (["reward_mean"], llm_report.ORDER, "OPO Fig. 4: training reward"),
        "opo_fig5": (["grad_norm"], llm_report.ORDER, "OPO Fig. 5: gradient norm"),
        "opo_fig7": (["entropy"], llm_report.ORDER, "OPO Fig. 7: policy entropy"),
        "adpo_fig3": (
            ["reward_mean", "completion_length"],
            llm_report.ADPO_FIG3,
            "ADPO Fig. 3: (a) reward, (b) length",
        ),
    }
    paths: list[Path] = []
    for stem, (metrics, among, title) in panels.items():
        if only is not None and stem not in only:
            continue
        fig = llm_report.curve_figure(frame, metrics, among, f"{title} ({basis})")
        paths += save_figure(fig, figures, stem)
    if only is None or "opo_fig6" in only:
        fig = llm_report.saturation_figure(frame, f"OPO Fig. 6: gradient saturation ({basis})")
        paths += save_figure(fig, figures, "opo_fig6")
    paper_t1 = pd.read_csv(EXPERIMENTS_DIR / "paper" / "opo_table1.csv")
    paper_t4 = pd.read_csv(EXPERIMENTS_DIR / "paper" / "adpo_table4.csv")
    paper_claims = pd.read_csv(EXPERIMENTS_DIR / "paper" / "llm_claims.csv")
    micro = str(config["micro_batch"] or "whole mini-batch")
    texts = {
        "opo_table1": f"### OPO Table 1: ours ({basis}) beside the paper's\n\nMean over the final "
        f"{llm_report.FINAL_STEPS} steps per seed, then mean [95% bootstrap CI] over seeds.\n\n"
        + llm_report.table1(frame, paper_t1),
        "adpo_table4": f"### ADPO Table 4: actor update time ({basis})\n\n"
        "Ours: every algorithm at the same micro-batch, on the same machine, mean seconds per RL step of "
        "the update phase (forward, backward, optimizer). The paper's times are at unequal micro-batches "
        "(ADPO 8, GRPO/GSPO 6), so its 3.5x is not a like-for-like figure.\n\n"
        + llm_report.table4(frame, paper_t4, micro),
        "llm_regime": f"### Regime check: could this run tell the objectives apart? ({basis})\n\n"
        + llm_regime.regime(frame).sentence()
        + "\n\n"
        + llm_regime.regime_table(frame),
        "llm_pairwise": f"### Which algorithms this run can tell apart ({basis})\n\n"
        "Differences (row's first algorithm minus second), mean [95% bootstrap CI] over seeds; final reward "
        "and entropy over the final 20 steps, held-out accuracy at the last evaluation.\n\n"
        + llm_regime.pairwise_table(frame),
        "llm_claims": f"### LLM claims of both papers beside ours ({basis})\n\n"
        + markdown_table(llm_report.claims(frame, paper_claims, task)),
    }
    for stem, text in texts.items():
        if only is not None and stem not in only:
            continue
        path = figures / f"{stem}.md"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


def build_llm(results: Path, figures: Path) -> list[Path]:
    """The LLM artifacts from results/llm; ADPO's from results/llm-adpo where the paper profile made it."""
    paths = draw_llm(preferred_run(results, "llm"), figures)
    adpo = preferred_run(results, "llm-adpo")
    if (adpo / "run.json").exists():
        paths += draw_llm(adpo, figures, only=ADPO_LLM_STEMS)
    return paths


def build_opo_forms(results: Path, figures: Path) -> list[Path]:
    """OPO in three forms on the same seeds and prompts: Eq. 7 as printed, App. A.3, the authors' code."""
    runs = {}
    for name, folder in llm_ablations.OPO_FORMS:
        frame, meta = require_run(results / folder, f"make reproduce (the {folder} stage)")
        runs[name] = frame
    text = (
        "### OPO in three forms\n\n"
        "Eq. 7 weights each sampled sequence by exp((1 - alpha) A) pi_ref(y)^-(1 - alpha), normalised over the "
        "mini-batch; for whole sequences the second factor favours the least likely samples whatever their "
        "reward. App. A.3 (Step 2) drops it as absorbed by the sampling measure. The authors' public code "
        "uses w = q^alpha p^(1-alpha) per group (q = softmax of rewards, p = softmax of anchored log-ratios), "
        "renormalised and centred. Same seeds, prompts and settings otherwise; mean [95% bootstrap CI] over "
        f"seeds ({meta['profile']} profile).\n\n" + llm_ablations.opo_forms_table(runs)
    )
    path = figures / "opo_forms.md"
    atomic_write_text(path, text)
    return [path]


def build_llm_stress(results: Path, figures: Path) -> list[Path]:
    """The stress ablation: a larger step where collapse can happen, with its two claims."""
    frame, meta = require_run(preferred_run(results, "llm-stress"), "make reproduce (the llm-stress stage)")
    config = meta["config"]
    text = (
        f"### Stress ablation (ours): lr {config['lr']:g}, {config['epochs']} epochs x {config['minibatches']} "
        f"mini-batches per rollout batch, {frame['seed'].nunique()} seeds\n\n"
        + llm_regime.regime(frame).sentence()
        + "\n\n"
        + llm_ablations.stress_table(frame)
        + "\n\n"
        + markdown_table(llm_ablations.stress_claims(frame))
    )
    path = figures / "llm_stress.md"
    atomic_write_text(path, text)
    paths = [path]
    fig = llm_report.curve_figure(
        frame, ["reward_mean", "grad_norm"], llm_report.ORDER, "Stress ablation: reward and pre-clip gradient norm"
    )
    return paths + save_figure(fig, figures, "llm_stress")


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
    from geobench.report.concept_report import CONCEPTS

    concept = CONCEPTS[stem]
    csv = figures / f"{stem}.csv"
    tables = write_tables(concept.compute(), csv)
    paths = [csv, *save_figure(concept.draw(tables, concept.caption(tables)), figures, stem)]
    text = figures / f"{stem}.md"
    atomic_write_text(text, concept.text(tables))
    return [*paths, text]


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


def write_report(results: Path, figures: Path) -> Path:
    """``results/REPORT.md`` from the runs under ``results`` and the figures ``build_all`` drew."""
    from geobench.report.reproduction import build_report

    path = results / "REPORT.md"
    atomic_write_text(path, build_report(results, figures, path))
    return path
