"""OPO Figs. 4-7 and ADPO Fig. 3 from ``metrics.csv``, the per-seed statistics every LLM table reads
(the tables: :mod:`~geobench.report.llm_tables`), and the LLM claims' rules and guards: pure functions.

Every number is a per-seed statistic of the run's CSV (final-20-step means, peaks, run
means) with a 95% bootstrap CI over seeds; a difference or ratio between two algorithms is a paired
bootstrap (seed k of one with seed k of the other: they share prompts). The claims are rows of
``experiments/paper/llm_claims.csv``; the rules that judge them, and the guards that void a verdict,
are here. A run cannot test a claim (verdict "not testable", with the reason) when it is shorter than
the claim's ``horizon``, has fewer than 2 seeds for a CI, or when the algorithms compared make the
same update (the per-pair check, :mod:`~geobench.report.llm_pairs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from geobench.experiments import UPDATE_TIME
from geobench.report.claims import Outcome, Void, ci_verdict, evaluate, rule, text
from geobench.report.files import with_timing
from geobench.report.llm_pairs import read_pairs
from geobench.report.llm_regime import Discrimination, has_collapsed
from geobench.report.stats import NOT_TESTABLE, bootstrap_mean_ci, paired_diff_ci, paired_ratio_ci
from geobench.report.style import add_caption, fit, label, style
from geobench.results import read_run

UPDATE_TIME_FOLDER = UPDATE_TIME.name  # the interleaved benchmark's run, beside the LLM runs in results/

ORDER = ("opo", "adpo", "grpo", "gspo", "dapo")
ADPO_FIG3 = ("adpo", "gspo", "grpo")
FINAL_STEPS = 20  # "Reward and gradient norm are averaged over the final 20 training steps" (OPO Table 1)
SMOOTH = 5  # steps in the rolling mean used for curves and peaks
_MARKED = 30  # a curve of at most this many points gets a marker at each
UNITS = {
    "reward_mean": "mean reward (fraction correct)",
    "grad_norm": "gradient norm (L2, before clipping)",
    "response_efficiency": "||grad|| / (0.5 x advantage range)",
    "entropy": "token entropy under pi_old (nats)",
    "completion_length": "completion length (tokens)",
    "heldout_accuracy": "held-out accuracy (greedy)",
}


def task_of(frame: pd.DataFrame, meta: dict) -> str:
    """The task a run trained on (the CSV's ``task`` column, else the config's dataset)."""
    return str(frame["task"].iloc[0]) if "task" in frame.columns and len(frame) else meta["config"]["dataset"]


def variants(frame: pd.DataFrame, among: tuple[str, ...] = ORDER) -> list[str]:
    present = set(frame["variant"])
    return [v for v in among if v in present]


def series(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(variant, seed, step, value) rows of one metric, training steps only (step >= 1)."""
    rows = frame[(frame["metric"] == metric) & (frame["step"] >= 1)]
    return rows[["variant", "seed", "step", "value"]].sort_values(["variant", "seed", "step"])


def per_seed(frame: pd.DataFrame, metric: str, how: str = "final") -> pd.DataFrame:
    """One value per (variant, seed): mean of the final 20 steps, run mean, or smoothed peak."""
    rows = series(frame, metric)
    out = []
    for (variant, seed), group in rows.groupby(["variant", "seed"]):
        v = group["value"].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        if len(v) == 0:
            continue
        if how == "final":
            value = v[-FINAL_STEPS:].mean()
        elif how == "mean":
            value = v.mean()
        elif how == "peak":
            value = pd.Series(v).rolling(SMOOTH, min_periods=1).mean().max()
        elif how == "start":
            value = v[:FINAL_STEPS].mean()
        else:
            raise ValueError(how)
        out.append({"variant": variant, "seed": seed, "value": float(value)})
    return pd.DataFrame(out, columns=["variant", "seed", "value"])


def variant_values(stats: pd.DataFrame, variant: str) -> np.ndarray:
    """The per-seed values of ``variant`` in a (variant, seed, value) table."""
    return stats.loc[stats["variant"] == variant, "value"].to_numpy(dtype=float)


def paired_values(
    stats: pd.DataFrame, a: str, b: str, other_stats: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seed k of ``a`` beside seed k of ``b`` (from ``other_stats`` if given), on the seeds both have:
    two (n,) arrays for a paired bootstrap."""
    x = stats.loc[stats["variant"] == a].set_index("seed")["value"]
    y = (stats if other_stats is None else other_stats).loc[lambda t: t["variant"] == b].set_index("seed")["value"]
    seeds = x.index.intersection(y.index).sort_values()
    return x[seeds].to_numpy(dtype=float), y[seeds].to_numpy(dtype=float)


def curve_figure(frame: pd.DataFrame, metrics: list[str], among: tuple[str, ...], caption: str) -> Figure:
    """One panel per metric: the seed mean with a band of +-1.96 standard errors.

    A training metric is smoothed (rolling 5 steps). An evaluation, a metric the run also measured
    before training (step 0: the held-out accuracy every ``eval_every`` steps), is drawn unsmoothed
    from that start point. A curve of at most ``_MARKED`` points has a marker at each, so a short run's
    curve is never an invisible one-point line.
    """
    fig = Figure(figsize=(5.2 * len(metrics), 4.2))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        rows = frame.loc[frame["metric"] == metric, ["variant", "seed", "step", "value"]]
        evaluation = bool((rows["step"] == 0).any())
        for variant in variants(frame, among):
            wide = rows[rows["variant"] == variant].pivot(index="step", columns="seed", values="value").sort_index()
            if not evaluation:
                wide = wide.rolling(SMOOTH, min_periods=1).mean()
            mean = wide.mean(axis=1)
            half = 1.96 * wide.std(axis=1).fillna(0.0) / np.sqrt(max(wide.shape[1], 1))
            kw = style(variant)
            marker = kw["marker"] if len(mean) <= _MARKED else None
            ax.plot(mean.index, mean, color=kw["color"], label=kw["label"], lw=1.6, marker=marker, ms=4)
            ax.fill_between(mean.index, mean - half, mean + half, color=kw["color"], alpha=0.15, lw=0)
        ax.set(xlabel="RL step", ylabel=UNITS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    add_caption(fig, caption)
    fit(fig)
    return fig


def saturation_figure(frame: pd.DataFrame, caption: str) -> Figure:
    """OPO Fig. 6: (a) gradient norm against mean reward, binned; (b) response efficiency over steps."""
    fig = Figure(figsize=(11, 4.2))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.86, wspace=0.28)
    ax_a, ax_b = fig.subplots(1, 2)
    joined = series(frame, "grad_norm").merge(series(frame, "reward_mean"), on=["variant", "seed", "step"])
    bins = np.linspace(0.0, 1.0, 11)
    for variant in variants(frame):
        part = joined[joined["variant"] == variant]
        binned = part.groupby(pd.cut(part["value_y"], bins), observed=True)["value_x"].agg(["mean", "count"])
        binned = binned[binned["count"] >= 3]
        centres = [interval.mid for interval in binned.index]
        kw = style(variant)
        ax_a.plot(centres, binned["mean"], marker=kw["marker"], color=kw["color"], label=kw["label"])
    ax_a.set(xlabel="mean reward of the step (confidence proxy)", ylabel=UNITS["grad_norm"], title="(a)")
    ax_a.grid(alpha=0.3)
    ax_a.legend(fontsize=8)
    rows = series(frame, "response_efficiency")
    for variant in variants(frame):
        wide = rows[rows["variant"] == variant].pivot(index="step", columns="seed", values="value")
        mean = wide.rolling(SMOOTH, min_periods=1).mean().mean(axis=1)
        ax_b.plot(mean.index, mean, color=style(variant)["color"], label=label(variant))
    ax_b.set(xlabel="RL step", ylabel=UNITS["response_efficiency"], title="(b)", yscale="log")
    # Plain numbers (0.3, 20), and minor ticks labelled only where the range spans about a decade or
    # less (matplotlib's thresholds): labelled over two decades they print over one another.
    ax_b.yaxis.set_major_formatter(LogFormatter())
    ax_b.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    ax_b.grid(alpha=0.3)
    fig.suptitle(caption, fontsize=9)
    return fig


@dataclass(frozen=True)
class LLMRun:
    """What the LLM claims are judged on: a run's metrics (with its timing rows), the task it trained on,
    and its per-pair check (``pairs.csv``; None for a run without one)."""

    frame: pd.DataFrame
    task: str = ""
    pairs: pd.DataFrame | None = None
    update_times: pd.DataFrame | None = None  # the interleaved benchmark's rows (results/llm-update-time)

    @cached_property
    def discrimination(self) -> Discrimination:
        return Discrimination(self.frame, self.pairs)

    @cached_property
    def last_step(self) -> int:
        steps = self.frame.loc[self.frame["step"] >= 1, "step"]
        return int(steps.max()) if len(steps) else 0

    def seeds(self, *algorithms: str) -> int:
        """How many seeds every one of ``algorithms`` has (what a paired CI between them is over)."""
        sets = [set(self.frame.loc[self.frame["variant"] == a, "seed"]) for a in algorithms]
        return len(set.intersection(*sets)) if sets else 0


def read_llm_run(run_folder: Path) -> tuple[LLMRun, dict] | None:
    """An LLM run folder as its claims read it (metrics, timing rows, task, per-pair check) and its
    run.json; None if it has not been run."""
    run = read_run(run_folder)
    if run is None:
        return None
    frame, meta = run
    timed = read_run(run_folder.parent / UPDATE_TIME_FOLDER)
    update_times = None if timed is None else timed[0]
    return LLMRun(with_timing(frame, run_folder), task_of(frame, meta), read_pairs(run_folder), update_times), meta


def _no_seed_in_common(subject: str, other: str) -> Outcome:
    return Outcome("-", NOT_TESTABLE, rule=f"{NOT_TESTABLE} ({label(subject)} and {label(other)} share no seed)")


def _best_other(stats: pd.DataFrame, variant: str, among: list[str], pick=max) -> str | None:
    others = [v for v in among if v != variant and len(variant_values(stats, v))]
    return pick(others, key=lambda v: variant_values(stats, v).mean()) if others else None


def _beats_the_rest(
    run: LLMRun, subject: str, metric: str, statistic: str, threshold: str, versus: str = "", pick=max
) -> Outcome | None:
    stats = per_seed(run.frame, metric, statistic)
    other = _best_other(stats, subject, versus.split() or variants(run.frame), pick)
    if other is None or not len(variant_values(stats, subject)):
        return None
    treated, base = paired_values(stats, subject, other)
    if not len(treated):
        return _no_seed_in_common(subject, other)
    # The gap is always taken so that the claim holds when it is above 0: subject - best, lowest - subject.
    mean, low, high = paired_diff_ci(treated, base) if pick is max else paired_diff_ci(base, treated)
    return Outcome(
        f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] vs {label(other)}", ci_verdict(low, high, threshold, "above")
    )


@rule("highest")
def highest(run: LLMRun, subject: str, metric: str, statistic: str, threshold: str, versus: str = "") -> Outcome | None:
    """``subject`` minus the best of ``versus`` (default: every other algorithm of the run), a paired CI over seeds."""
    return _beats_the_rest(run, subject, metric, statistic, threshold, versus)


@rule("lowest")
def lowest(run: LLMRun, subject: str, metric: str, statistic: str, threshold: str, versus: str = "") -> Outcome | None:
    """The lowest of ``versus`` (default: every other algorithm) minus ``subject``, a paired CI over seeds."""
    return _beats_the_rest(run, subject, metric, statistic, threshold, versus, pick=min)


@rule("ratio_above")
def ratio_above(run: LLMRun, subject: str, versus: str, metric: str, statistic: str, threshold: str) -> Outcome | None:
    """mean(subject) / mean(versus) with a paired CI over seeds, held above ``threshold``."""
    stats = per_seed(run.frame, metric, statistic)
    if not len(variant_values(stats, subject)) or not len(variant_values(stats, versus)):
        return None
    treated, base = paired_values(stats, subject, versus)
    if not len(treated):
        return _no_seed_in_common(subject, versus)
    ratio, low, high = paired_ratio_ci(treated, base)
    return Outcome(
        f"{ratio + 1:.2f}x [{low + 1:.2f}, {high + 1:.2f}]", ci_verdict(low + 1, high + 1, threshold, "above")
    )


def interleaved_pairs(
    times: pd.DataFrame | None, subject: str, versus: str, metric: str = "update_time_s"
) -> pd.DataFrame | None:
    """The interleaved benchmark's ``metric`` of ``subject`` and ``versus``, one row per repetition
    (its step) and one column each, repetitions missing either dropped; None where it ran not both."""
    times = None if times is None else times[times["metric"] == metric]
    if times is None or not {subject, versus} <= set(times["variant"]):
        return None
    wide = times.pivot_table(index="step", columns="variant", values="value", aggfunc="mean")
    return wide[[subject, versus]].dropna()


@rule("interleaved_ratio_above")
def interleaved_ratio_above(run: LLMRun, subject: str, versus: str, metric: str, threshold: str) -> Outcome | None:
    """mean(subject) / mean(versus) of ``metric`` in the interleaved benchmark, a paired CI over its
    repetitions (each a subject and a versus update back to back), held above ``threshold``."""
    if subject not in variants(run.frame) or versus not in variants(run.frame):
        return None
    wide = interleaved_pairs(run.update_times, subject, versus, metric)
    if wide is None:
        return Outcome("-", NOT_TESTABLE, rule=f"{NOT_TESTABLE} (no interleaved benchmark: run {UPDATE_TIME_FOLDER})")
    if len(wide) < 2:
        return Outcome("-", NOT_TESTABLE, rule=f"{NOT_TESTABLE} (fewer than 2 interleaved repetitions)")
    ratio, low, high = paired_ratio_ci(wide[subject].to_numpy(float), wide[versus].to_numpy(float))
    return Outcome(
        f"{ratio + 1:.2f}x [{low + 1:.2f}, {high + 1:.2f}]",
        ci_verdict(low + 1, high + 1, threshold, "above"),
        {"repetitions": len(wide)},
    )


@rule("collapses")
def collapses(run: LLMRun, subject: str, metric: str, threshold: str) -> Outcome | None:
    """The final-20 mean of ``metric`` minus half its peak (5-step rolling mean), held below ``threshold``."""
    peak, final = per_seed(run.frame, metric, "peak"), per_seed(run.frame, metric)
    if not len(variant_values(peak, subject)):
        return None
    mean, low, high = bootstrap_mean_ci(variant_values(final, subject) - 0.5 * variant_values(peak, subject))
    return Outcome(f"final - peak/2 = {mean:+.3f} [{low:+.3f}, {high:+.3f}]", ci_verdict(low, high, threshold, "below"))


@rule("stays_within")
def stays_within(run: LLMRun, subject: str, metric: str, lower: str, upper: str) -> Outcome | None:
    """Final-20 over first-20 mean of ``metric`` (each seed's end with its own start, a paired CI): a CI
    inside [lower, upper] reproduces, wholly outside refutes."""
    start, end = per_seed(run.frame, metric, "start"), per_seed(run.frame, metric)
    if not len(variant_values(end, subject)):
        return None
    ratio, low, high = paired_ratio_ci(*paired_values(end, subject, subject, start))
    low, high, lower, upper = low + 1, high + 1, float(lower), float(upper)
    inside, outside = lower <= low and high <= upper, high < lower or low > upper
    return Outcome(
        f"final / first {FINAL_STEPS} steps {ratio + 1:.2f}x [{low:.2f}, {high:.2f}]",
        "reproduced" if inside else "not reproduced" if outside else "inconclusive",
    )


@rule("not_judged")
def not_judged(run: LLMRun, subject: str, **_: str) -> Outcome | None:
    """A claim this run's task cannot test (the row's ``skip_task``): not testable, for the reason given."""
    return Outcome("-", NOT_TESTABLE) if subject in variants(run.frame) else None


def collapsed(
    run: LLMRun, row: Mapping[str, str], verdict: str, what: str = "numbers cannot support the claim"
) -> Void | None:
    """A verdict about an algorithm's gradients or entropy means nothing once it has collapsed."""
    subject = row["subject"]
    if verdict == "reproduced" and has_collapsed(run.frame, subject):
        return Void(f"{label(subject)} COLLAPSED in this run, so its {what}")
    return None


def coincide(run: LLMRun, row: Mapping[str, str], verdict: str) -> Void | None:
    """A comparison of ``subject`` with ``versus`` (blank: every other algorithm of the run) cannot be
    tested where their updates coincide, whatever the numbers say (the per-pair check; without one, the
    coarser run-level regime check)."""
    subject = row["subject"]
    others = row.get("versus", "").split() or [v for v in variants(run.frame) if v != subject]
    for other in others:
        void = run.discrimination.void(subject, other)
        if void is not None:
            pair = f": {label(subject)} and {label(other)}" if run.discrimination.verdict(subject, other) else ""
            return Void(void + pair, NOT_TESTABLE)
    return None


def enough_seeds(run: LLMRun, row: Mapping[str, str], verdict: str) -> Void | None:
    """A CI over seeds needs at least 2 seeds (of ``subject``, and of ``versus`` where the row names it)."""
    seeds = run.seeds(row["subject"], *row.get("versus", "").split())
    return (
        None
        if seeds >= 2
        else Void(f"{NOT_TESTABLE} ({seeds} seed(s): a CI over seeds needs at least 2)", NOT_TESTABLE)
    )


def within_horizon(run: LLMRun, row: Mapping[str, str], verdict: str) -> Void | None:
    """A claim about what happens by step ``horizon`` (the row's column) cannot be tested by a shorter run."""
    horizon = row.get("horizon", "")
    if not horizon or run.last_step >= int(float(horizon)):
        return None
    return Void(f"{NOT_TESTABLE} (the run has {run.last_step} steps; the claim needs {horizon})", NOT_TESTABLE)


GUARDS = {
    "collapsed": collapsed,
    "collapsed-gradients": partial(collapsed, what="gradients support nothing"),
    "coincide": coincide,
    "seeds": enough_seeds,
    "horizon": within_horizon,
}


def claims(run: LLMRun, paper: pd.DataFrame) -> pd.DataFrame:
    """The LLM claims of both papers (rows of ``experiments/paper/llm_claims.csv``) judged on a run.

    A row whose ``skip_task`` names the run's task is not judged and says why (``skip_rule``).
    """
    rows = paper.copy()
    if "skip_task" in rows.columns:
        skip = rows["skip_task"].map(lambda tasks: run.task in text(tasks).split())
        rows.loc[skip, "rule"] = "not_judged"
        rows.loc[skip, "rule_text"] = rows.loc[skip, "skip_rule"].map(lambda why: f"{NOT_TESTABLE} ({why})")
    return evaluate(rows, run, GUARDS)
