"""``results/REPORT.md``: one section per artifact of the two papers, then every claim with a verdict.

A pure function of ``results/*/`` (CSVs and run.json), the paper numbers in
``experiments/paper/`` and the figures/tables ``build_all`` drew from the same CSVs (for the
conceptual figures, the CSVs it computed from the objective library into the figures
folder). A run that is missing gives a section that says so and names the command that
makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from geobench.concepts.tables import Tables, read_tables
from geobench.config import EXPERIMENTS_DIR
from geobench.report import llm_report, mujoco_report, toy_figure
from geobench.report.artifacts import bandit_claims
from geobench.report.cards import card_summaries
from geobench.report.files import with_timing
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
    run: str | tuple[str, ...] | None  # run folder(s) under results/, first present wins; None: from the registry
    command: str
    figures: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


_LLM = "geobench llm"
_FIGURES = "geobench figures"
SECTIONS = (
    Section(
        "OPO",
        "OPO Fig. 1",
        "The work-dissipation picture",
        "The anchor pi_k sits at the minimum of a quadratic fluctuation energy (mu/2) E[v^2]; the escort drive "
        "omega_alpha tilts it, and the conservation law E_pi_k[v] = 0 makes the response the centred "
        "v* = (omega_alpha - 1)/mu.",
        None,
        _FIGURES,
        ("opo_fig1",),
        ("opo_fig1",),
    ),
    Section(
        "OPO",
        "OPO Fig. 2",
        "Flowchart of Algorithm 1",
        "OPO's update decomposes into an alpha-escort drive (external work) and a chi^2 penalty (intrinsic "
        "dissipation), two structurally orthogonal axes.",
        None,
        _FIGURES,
        ("opo_fig2",),
        ("opo_fig2",),
    ),
    Section(
        "OPO",
        "OPO Fig. 3",
        "Gradient saturation on a binary logit",
        "SFT, DPO, GRPO, DAPO and GSPO gradients vanish as the model grows confident; OPO's chi^2 gradient "
        "stays O(1) and grows linearly.",
        "toy-saturation",
        "geobench toy-saturation",
        ("opo_fig3",),
    ),
    Section(
        "OPO",
        "OPO Table 1",
        "Final reward and gradient norm",
        "OPO reaches the highest mean reward (0.756) with the largest gradient norm (0.90) over the final 20 "
        "steps on Qwen3-1.7B + MATH Level 3.",
        "llm",
        _LLM,
        (),
        ("llm_regime", "opo_table1", "llm_pairwise"),
    ),
    Section(
        "OPO",
        "OPO Fig. 4",
        "Training reward",
        "GRPO starts strong but plateaus; OPO keeps improving and ends highest.",
        "llm",
        _LLM,
        ("opo_fig4",),
    ),
    Section(
        "OPO",
        "OPO Fig. 5",
        "Gradient norm",
        "OPO keeps healthy gradient norms (0.9) while DAPO (0.22) and GSPO (0.50) decay.",
        "llm",
        _LLM,
        ("opo_fig5",),
    ),
    Section(
        "OPO",
        "OPO Fig. 6",
        "Gradient saturation analysis",
        "Baseline gradients decay as reward (confidence) "
        "grows while OPO's do not; OPO's gradient-response efficiency is ~5x GRPO's.",
        "llm",
        _LLM,
        ("opo_fig6",),
    ),
    Section(
        "OPO",
        "OPO Fig. 7",
        "Entropy",
        "OPO keeps a higher policy entropy than the baselines.",
        "llm",
        _LLM,
        ("opo_fig7",),
    ),
    Section(
        "OPO",
        "OPO Table 2",
        "Taxonomy: sampling vs optimization geometry",
        "Existing objectives couple their sampling and optimization geometries; OPO separates them.",
        None,
        _FIGURES,
        (),
        ("opo_table2",),
    ),
    Section(
        "ADPO",
        "ADPO Fig. 1",
        "Geometric unification",
        "SFT slides down a 'slippery slope' on the probability simplex towards one corner, while in anchored "
        "coordinates u = log(pi/pi_ref) ADPO's loss is a stable quadratic bowl around the anchor, an implicit "
        "trust region.",
        None,
        _FIGURES,
        ("adpo_fig1",),
        ("adpo_fig1",),
    ),
    Section(
        "ADPO",
        "ADPO Table 1",
        "Anchored coordinates and targets",
        "SFT, KD and ADPO are one listwise objective differing in anchor and target.",
        None,
        _FIGURES,
        (),
        ("adpo_table1",),
    ),
    Section(
        "ADPO",
        "ADPO Fig. 2a",
        "Noisy contextual bandits",
        "Trust-region RL wins 8/12 scenarios; ADPO "
        "Listwise-Raw beats DPO under shift (+13.6%) and adversarial noise (+9.3%).",
        "bandits",
        "geobench bandits --scaling",
        ("adpo_fig2a",),
        ("adpo_fig2a",),
    ),
    Section(
        "ADPO",
        "ADPO Fig. 2b",
        "Model scaling",
        "TRPO is best at width 128; ADPO Listwise improves with "
        "width (0.558 -> 0.791) while PPO degrades (0.772 -> 0.748).",
        "bandits",
        "geobench bandits --scaling",
        ("adpo_fig2b",),
        ("adpo_fig2b",),
    ),
    Section(
        "ADPO",
        "ADPO Table 2",
        "MuJoCo distillation",
        "Anchored students beat KD on return and lower the student-teacher KL 4-49x.",
        "mujoco",
        "geobench mujoco distill",
        ("adpo_table2",),
        ("adpo_table2",),
    ),
    Section(
        "ADPO",
        "ADPO Table 3",
        "Trust-region geometries",
        "TRPO, KD and ADPO differ in the space, centre and metric of their trust region.",
        None,
        _FIGURES,
        (),
        ("adpo_table3",),
    ),
    Section(
        "ADPO",
        "ADPO Fig. 3",
        "LLM reasoning: reward and completion length",
        "ADPO reaches a peak reward of "
        "0.89 (GSPO 0.75, GRPO 0.68); GRPO collapses near step 40; ADPO's length stays stable.",
        ("llm-adpo", "llm"),
        _LLM,
        ("adpo_fig3",),
    ),
    Section(
        "ADPO",
        "ADPO Table 4",
        "Actor update time",
        "ADPO's update is 3.5x faster (19.7 s vs 68.5 s), at unequal micro-batches (8 vs 6).",
        ("llm-adpo", "llm"),
        _LLM,
        (),
        ("adpo_table4",),
    ),
    Section(
        "Ablation (ours)",
        "Anchor ablation",
        "ADPO on the bandits with a fixed vs an on-policy anchor",
        "Not a paper artifact: which anchor ADPO's bandit numbers depend on.",
        "bandits-onpolicy-anchor",
        "make reproduce (the ablation step)",
        (),
        ("adpo_fig2_anchor_ablation",),
    ),
    Section(
        "Ablation (ours)",
        "OPO forms",
        "OPO as printed, as in App. A.3, and as in the authors' code",
        "Not a paper artifact: OPO Eq. 7's escort as printed vs App. A.3 Step 2's form vs the authors' "
        "public code form, on the LLM task.",
        ("llm-opo-code", "llm-opo-escort-no-ref"),
        "make reproduce (the OPO-form stages)",
        (),
        ("opo_forms",),
    ),
    Section(
        "Ablation (ours)",
        "LLM stress",
        "A larger step, where collapse can happen",
        "ADPO Fig. 3a: GRPO collapses near step 40; OPO Sec. 9: OPO's gradients stay large but non-exploding.",
        "llm-stress",
        "make reproduce (the llm-stress stage)",
        ("llm_stress",),
        ("llm_stress",),
    ),
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


def all_claims(results: Path, figures: Path | None = None) -> pd.DataFrame:
    """Every quantitative claim with ours and a verdict; an experiment not run contributes a 'not run' row.

    The conceptual figures' claims come from the CSVs ``build_all`` wrote into ``figures``
    (none given: 'not run' rows naming ``geobench figures``).
    """
    from geobench.report.concept_report import CONCEPTS

    paper_llm = pd.read_csv(EXPERIMENTS_DIR / "paper" / "llm_claims.csv")
    sources: list[tuple[str, str, str, Callable[..., pd.DataFrame]]] = [
        ("opo_fig1", _FIGURES, "OPO Fig. 1", lambda t, m: CONCEPTS["opo_fig1"].claims(t)),
        ("toy-saturation", "geobench toy-saturation", "OPO Fig. 3", lambda f, m: toy_figure.claims(f)),
        (
            "llm",
            _LLM,
            "OPO Table 1, Figs. 4-7; ADPO Fig. 3, Table 4",
            lambda f, m: llm_report.claims(f, paper_llm, llm_report.task_of(f, m)),
        ),
        ("llm-stress", "make reproduce (the llm-stress stage)", "LLM stress ablation", lambda f, m: stress_claims(f)),
        ("adpo_fig1", _FIGURES, "ADPO Fig. 1", lambda t, m: CONCEPTS["adpo_fig1"].claims(t)),
        ("bandits", "geobench bandits --scaling", "ADPO Fig. 2", bandit_claims),
        (
            "mujoco",
            "geobench mujoco distill",
            "ADPO Table 2",
            lambda f, m: mujoco_report.claims(mujoco_report.final(f)),
        ),
    ]
    parts = []
    for folder, command, artifact, claims_of in sources:
        run = _concept(figures, folder) if folder in CONCEPTS else read_run(preferred_run(results, folder))
        if run is not None and folder == "llm":
            run = (with_timing(run[0], preferred_run(results, folder)), run[1])
        if run is None:
            missing = {
                "claim": f"every claim of {artifact}",
                "ours": f"not run: `{command}`",
                "verdict": "inconclusive",
                "rule": "needs the run",
            }
            parts.append(_labelled(pd.DataFrame([missing]), artifact))
        else:
            parts.append(_labelled(claims_of(*run), artifact))
    adpo_run = read_run(preferred_run(results, "llm-adpo"))  # the paper profile runs ADPO's LLM study on its own
    if adpo_run is not None:
        frame = with_timing(adpo_run[0], preferred_run(results, "llm-adpo"))
        adpo = _labelled(llm_report.claims(frame, paper_llm, llm_report.task_of(frame, adpo_run[1])), "")
        parts = [
            p[~p["artifact"].str.startswith("ADPO Fig. 3") & ~p["artifact"].str.startswith("ADPO Table 4")]
            for p in parts
        ]
        parts.append(adpo[adpo["paper"] == "ADPO"])
    columns = ["paper", "artifact", "claim", "paper_value", "ours", "verdict", "rule"]
    return pd.concat(parts, ignore_index=True).reindex(columns=columns).astype(object).fillna("-")


def build_report(results: Path, figures: Path, out: Path) -> str:
    """The Markdown text of REPORT.md (written to ``out`` by the caller)."""
    link_prefix = Path("..") / figures.name if out.parent == results else figures.resolve()
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
        f"**Claims: {len(claims)} — {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
        f"{counts['inconclusive']} inconclusive.** The quick profile runs small models on a 2-core CPU: "
        "a verdict there is about the claim's mechanism at that scale, not the paper's exact setting.",
        "",
    ]
    body = []
    for paper in ("OPO", "ADPO", "Ablation (ours)"):
        body.append(f"## {paper}\n")
        body += [section(s, results, figures, str(link_prefix)) for s in SECTIONS if s.paper == paper]
    body.append(card_summaries(results, out))
    tail = ["## Claims", "", markdown_table(claims)]
    return "\n".join(head) + "\n" + "\n".join(body) + "\n".join(tail)
