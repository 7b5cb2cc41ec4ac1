"""The LLM runs' artifacts: OPO Table 1 and Figs. 4-7, ADPO Fig. 3 and Table 4, the per-pair check (or,
for a run without one, the coarser regime check), the pairwise differences, the claims, tau over
training, the completions each algorithm wrote, the OPO-form and stress ablations, and OPO v5's Experiment 2
(out of distribution)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import geobench.report.llm_ablations as llm_ablations
import geobench.report.llm_ood as llm_ood
import geobench.report.llm_regime as llm_regime
import geobench.report.llm_report as llm_report
import geobench.report.llm_tables as llm_tables
import geobench.report.llm_tau as llm_tau
from geobench.config import EXPERIMENTS_DIR
from geobench.report.files import require_run, save_figure
from geobench.report.markdown import markdown_table
from geobench.report.style import label
from geobench.results import atomic_write_text, preferred_run

ADPO_LLM_STEMS = frozenset({"adpo_fig3", "adpo_table4"})
SAMPLES = "samples.jsonl"  # beside an LLM run's metrics.csv (geobench.llm.samples writes it)
SHOWN_CHARS = 300  # of a completion, in the report; the file keeps it whole (at most max_new_tokens)


def draw_llm(run_folder: Path, figures: Path, only: frozenset[str] | None = None) -> list[Path]:
    """OPO Table 1, Figs. 4-7 and ADPO Fig. 3, Table 4 (figures, tables, claims) from an LLM run folder;
    ``only`` restricts it to some of those artifacts (by file stem)."""
    run, meta = _read(run_folder, "geobench llm")
    frame, config = run.frame, meta["config"]
    shape = (
        f"{meta['profile']} profile, {run.task}, {frame['seed'].nunique()} seeds, {config['steps']} steps, "
        f"{config['prompts_per_step']} prompts x {config['group']} samples"
    )
    basis = f"{shape}; mean +- 95% CI over seeds"
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
    if only is None or "llm_tau" in only:
        fig = llm_tau.tau_figure(frame, config, f"tau over training, each seed and their mean ({shape})")
        paths += save_figure(fig, figures, "llm_tau")
    paper_t1 = pd.read_csv(EXPERIMENTS_DIR / "paper" / "opo_table1.csv")
    paper_t4 = pd.read_csv(EXPERIMENTS_DIR / "paper" / "adpo_table4.csv")
    paper_claims = pd.read_csv(EXPERIMENTS_DIR / "paper" / "llm_claims.csv")
    micro = str(config["micro_batch"] or "whole mini-batch")
    texts = {
        "opo_table1": f"### OPO Table 1: ours ({basis}) beside the paper's\n\nMean over the final "
        f"{llm_report.FINAL_STEPS} steps per seed, then mean [95% bootstrap CI] over seeds.\n\n"
        + llm_tables.table1(frame, paper_t1),
        "adpo_table4": f"### ADPO Table 4: actor update time ({basis})\n\n"
        "Ours: every algorithm at the same micro-batch, on the same machine, mean seconds per RL step of "
        "the update phase (forward, backward, optimizer). The paper's times are at unequal micro-batches "
        "(ADPO 8, GRPO/GSPO 6), so its 3.5x is not a like-for-like figure. The cells' times ran at "
        "different moments on a shared machine, so their ratio moves with the load; the speedup the claim "
        "is judged on is the interleaved benchmark's (results/llm-update-time: the updates alternate in "
        "one process on the same rollouts, so load hits both alike).\n\n"
        + llm_tables.table4(frame, paper_t4, micro, run.update_times),
        "llm_pairs": f"### Per-pair check: which algorithms make different updates ({shape})\n\n"
        + run.discrimination.text(_updates_per_batch(config)),
        "llm_regime": f"### Regime check: what the mechanisms that separate objectives did ({shape})\n\n"
        "Per algorithm, means over seeds and steps (no CIs).\n\n" + llm_regime.regime_table(frame),
        "llm_pairwise": f"### Which algorithms this run can tell apart ({basis})\n\n"
        "Differences (row's first algorithm minus second), mean [95% paired bootstrap CI] over seeds (seed k "
        "of one with seed k of the other: they share prompts); final reward and entropy over the final 20 "
        "steps, held-out accuracy at the last evaluation. A pair whose updates coincide is not testable.\n\n"
        + llm_regime.pairwise_table(frame, pairs=run.pairs),
        "llm_claims": f"### LLM claims of both papers beside ours ({basis})\n\n"
        + markdown_table(llm_report.claims(run, paper_claims)),
        "llm_tau": f"### tau over training ({shape})\n\n" + llm_tau.tau_sentence(frame, config),
        "llm_samples": "### What each algorithm writes at the start, middle and end of training "
        f"({meta['profile']} profile, {run.task}, {config['steps']} steps)\n\n"
        + samples_table(run_folder, tuple(llm_report.variants(frame))),
    }
    for stem, text in texts.items():
        if only is not None and stem not in only:
            continue
        path = figures / f"{stem}.md"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


def _read(run_folder: Path, command: str) -> tuple[llm_report.LLMRun, dict]:
    """An LLM run folder as its claims read it, or FileNotFoundError naming the command that makes it."""
    require_run(run_folder, command)
    return llm_report.read_llm_run(run_folder)


def _updates_per_batch(config: dict) -> int | None:
    epochs, minibatches = config.get("epochs"), config.get("minibatches")
    return epochs * minibatches if epochs and minibatches else None


def samples_table(run_folder: Path, among: tuple[str, ...]) -> str:
    """Per algorithm of ``among``, the first completion kept at the first, middle and last kept step of its
    first seed, from the run's ``samples.jsonl``; a sentence saying so for a run that kept none."""
    path = run_folder / SAMPLES
    if not path.exists():
        return (
            f"No samples in this run: it has no `{SAMPLES}` (runs made before geobench kept completions, or "
            "with the TRL engine, have none). Rerun it to see what each algorithm writes.\n"
        )
    kept = pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    rows = []
    for variant in (v for v in among if v in set(kept["variant"])):
        part = kept[kept["variant"] == variant]
        part = part[part["seed"] == part["seed"].min()]
        steps = sorted(part["step"].unique())
        picked = {steps[-1]: "end"}  # fewer than three when the run kept fewer steps
        picked.setdefault(steps[len(steps) // 2], "middle")
        picked[steps[0]] = "start"
        for step, when in sorted(picked.items()):
            sample = part[part["step"] == step].iloc[0]
            rows.append(
                {
                    "algorithm": label(variant),
                    "when": f"{when}: step {step}, seed {sample['seed']}",
                    "prompt": _code(sample["prompt"]),
                    "completion": _code(sample["completion"]),
                    "reward": float(sample["reward"]),
                    "tokens": int(sample["length"]),
                    "cut at max_new_tokens": "yes" if sample["truncated"] else "no",
                }
            )
    per_cell = kept.groupby(["variant", "seed"]).size()
    return (
        f"{len(kept)} completions kept in `{SAMPLES}` ({int(per_cell.min())} to {int(per_cell.max())} per cell: the "
        "first completion of the step's first two prompts at step 1, every `eval_every` steps and the last step); "
        f"below, one per algorithm at three of those steps, cut at {SHOWN_CHARS} characters.\n\n"
        + markdown_table(pd.DataFrame(rows))
    )


def _code(text: str) -> str:
    """A completion as one table cell: in a code span, its line breaks shown as ⏎, cut at SHOWN_CHARS."""
    shown = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " [...]"
    return "`" + shown.replace("`", "'").replace("\n", " ⏎ ") + "`" if shown else "(empty)"


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
        "reward. App. A.3 (Step 2) drops it as absorbed by the sampling measure. The authors' verl fork "
        "(wk222/verlm, verl/trainer/adpo/core_algos.py) drives with -(1/alpha) sum g s, p the softmax of the "
        "clipped length-normalised log-ratio over tau with their adaptive tau, and runs their configuration "
        "(alpha 0.75, mu 0.5, tau 0.5). Not run here: v5's Algorithm 1 (registered as opo-v5), which centres "
        "an unnormalised escort over the mini-batch; its claim that an overall scale of the escort cancels after "
        "centring does not hold (only an additive constant does), so it is v4 scaled by the batch mean of the "
        "unnormalised escort, and at these settings its gradient norm overflows within the first 20 steps "
        "(the run stops as diverged and writes nothing). Same seeds, prompts and settings otherwise; "
        f"mean [95% bootstrap CI] over seeds ({meta['profile']} profile).\n\n" + llm_ablations.opo_forms_table(runs)
    )
    path = figures / "opo_forms.md"
    atomic_write_text(path, text)
    return [path]


def build_llm_stress(results: Path, figures: Path) -> list[Path]:
    """The stress ablation: a larger step where collapse can happen, with its two claims."""
    run, meta = _read(preferred_run(results, "llm-stress"), "make reproduce (the llm-stress stage)")
    frame, config = run.frame, meta["config"]
    text = (
        f"### Stress ablation (ours): lr {config['lr']:g}, {config['epochs']} epochs x {config['minibatches']} "
        f"mini-batches per rollout batch, {frame['seed'].nunique()} seeds\n\n"
        + run.discrimination.text(_updates_per_batch(config))
        + "\n\n"
        + llm_ablations.stress_table(frame)
        + "\n\n"
        + markdown_table(llm_ablations.stress_claims(run))
    )
    path = figures / "llm_stress.md"
    atomic_write_text(path, text)
    paths = [path]
    fig = llm_report.curve_figure(
        frame, ["reward_mean", "grad_norm"], llm_report.ORDER, "Stress ablation: reward and pre-clip gradient norm"
    )
    return paths + save_figure(fig, figures, "llm_stress")


OOD_RUN = "llm-opo-v5-ood"


def build_opo_v5_ood(results: Path, figures: Path) -> list[Path]:
    """OPO v5 Experiment 2: validation accuracy on levels RL never trained on, ours beside the paper's."""
    run, meta = _read(preferred_run(results, OOD_RUN), f"make reproduce (the {OOD_RUN} stage)")
    frame, config = run.frame, meta["config"]
    paper = pd.read_csv(EXPERIMENTS_DIR / "paper" / "opo_v5_ood.csv")
    levels, eval_levels = (_levels(config[key] or config["levels"]) for key in ("levels", "eval_levels"))
    text = (
        f"### OPO v5 Experiment 2: out of distribution ({meta['profile']} profile, {run.task}, "
        f"{frame['seed'].nunique()} seeds, {config['steps']} steps)\n\n"
        f"RL on {levels}; validation accuracy (greedy) on {config['eval_prompts']} problems per seed at "
        f"{eval_levels}, every {config['eval_every']} steps. Accuracy at the last evaluation with its "
        "Wilson 95% interval: ours pooled over seeds (problem sampling at fixed trained policies; the per-seed "
        "values show the training spread), the paper's over its 100 Level 4 problems of one seed. Reward, grad "
        f"norm and entropy: mean of the final {llm_report.FINAL_STEPS} steps per seed, mean [95% bootstrap CI] "
        "over seeds; the paper's as it reports them (their window unstated).\n\n"
        + llm_ood.ood_table(frame, paper, int(config["eval_prompts"]))
    )
    path = figures / "opo_v5_ood.md"
    atomic_write_text(path, text)
    return [path]


def _levels(levels: list[int]) -> str:
    return ("level " if len(levels) == 1 else "levels ") + ", ".join(map(str, levels))
