"""OPO Table 1 / Figs. 4-7 and ADPO Fig. 3 / Table 4 from ``metrics.csv``: pure functions.

Every number is a per-seed statistic of the run's CSV (final-20-step means, peaks, run
means) with a 95% bootstrap CI over seeds. The claims are rows of ``experiments/paper/llm_claims.csv``;
the rules that judge them, and the guards that void a verdict, are here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from geobench.report.claims import Outcome, ci_verdict, evaluate, rule, text
from geobench.report.llm_regime import has_collapsed, regime
from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_diff_ci, bootstrap_mean_ci, bootstrap_ratio_ci, ci_text
from geobench.report.style import add_caption, fit, label, style

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


def table1(frame: pd.DataFrame, paper: pd.DataFrame) -> str:
    """OPO Table 1: reward and grad norm over the final 20 steps, ours (CI over seeds) and the paper's."""
    reward, grad = per_seed(frame, "reward_mean"), per_seed(frame, "grad_norm")
    rows = []
    for variant in variants(frame):
        p = paper[paper["variant"] == variant]
        rows.append(
            {
                "algorithm": label(variant),
                "mean reward, ours": ci_text(variant_values(reward, variant)),
                "mean reward, paper": f"{p['reward'].iloc[0]:.3f}" if len(p) else "-",
                "grad norm, ours": ci_text(variant_values(grad, variant), "{:.2f}"),
                "grad norm, paper": f"{p['grad_norm'].iloc[0]:.2f}" if len(p) else "-",
                "held-out accuracy, start -> end (ours)": _heldout_text(frame, variant),
            }
        )
    return markdown_table(pd.DataFrame(rows))


def _heldout_text(frame: pd.DataFrame, variant: str) -> str:
    rows = frame[(frame["variant"] == variant) & (frame["metric"] == "heldout_accuracy")]
    if rows.empty:
        return "-"
    first, last = rows[rows["step"] == rows["step"].min()], rows[rows["step"] == rows["step"].max()]
    return f"{first['value'].mean():.3f} -> {ci_text(last['value'].to_numpy(dtype=float))}"


def table4(frame: pd.DataFrame, paper: pd.DataFrame, micro_batch: str) -> str:
    """ADPO Table 4 like for like: actor update time per step at one micro-batch for all."""
    times = per_seed(frame, "update_time_s", how="mean")
    adpo = variant_values(times, "adpo")
    rows = []
    for variant in variants(frame):
        p = paper[paper["variant"] == variant]
        other = variant_values(times, variant)
        speed = bootstrap_ratio_ci(adpo, other) if len(adpo) and len(other) else None
        rows.append(
            {
                "algorithm": label(variant),
                "micro-batch, ours": micro_batch,
                "update time (s/step), ours": ci_text(variant_values(times, variant), "{:.4f}"),
                "ADPO speedup, ours": f"{1 / (speed[0] + 1):.2f}x" if speed else "-",
                "micro-batch, paper": str(int(p["micro_batch"].iloc[0])) if len(p) else "-",
                "update time (s), paper": f"{p['update_time_s'].iloc[0]:.1f}" if len(p) else "-",
            }
        )
    return markdown_table(pd.DataFrame(rows))


def ablation_table(runs: dict[str, pd.DataFrame], variant: str) -> str:
    """One algorithm under several settings: final-20 reward, final held-out accuracy, entropy, grad norm."""
    rows = []
    for name, frame in runs.items():
        part = frame[frame["variant"] == variant]
        heldout = part[part["metric"] == "heldout_accuracy"]
        last = heldout[heldout["step"] == heldout["step"].max()]["value"].to_numpy(dtype=float)
        rows.append(
            {
                "setting": name,
                "final reward": ci_text(variant_values(per_seed(part, "reward_mean"), variant)),
                "final held-out accuracy": ci_text(last) if len(last) else "-",
                "entropy (final 20)": ci_text(variant_values(per_seed(part, "entropy"), variant)),
                "grad norm (final 20)": ci_text(variant_values(per_seed(part, "grad_norm"), variant), "{:.2f}"),
            }
        )
    return markdown_table(pd.DataFrame(rows))


@dataclass(frozen=True)
class LLMRun:
    """What the LLM claims are judged on: a run's metrics (with its timing rows) and the task it trained on."""

    frame: pd.DataFrame
    task: str = ""

    @cached_property
    def discriminates(self) -> bool:
        return regime(self.frame).discriminates


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
    treated, base = variant_values(stats, subject), variant_values(stats, other)
    # The gap is always taken so that the claim holds when it is above 0: subject - best, lowest - subject.
    mean, low, high = bootstrap_diff_ci(treated, base) if pick is max else bootstrap_diff_ci(base, treated)
    return Outcome(
        f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] vs {label(other)}", ci_verdict(low, high, threshold, "above")
    )


@rule("highest")
def highest(run: LLMRun, subject: str, metric: str, statistic: str, threshold: str, versus: str = "") -> Outcome | None:
    """``subject`` minus the best of ``versus`` (default: every other algorithm of the run), a CI over seeds."""
    return _beats_the_rest(run, subject, metric, statistic, threshold, versus)


@rule("lowest")
def lowest(run: LLMRun, subject: str, metric: str, statistic: str, threshold: str, versus: str = "") -> Outcome | None:
    """The lowest of ``versus`` (default: every other algorithm) minus ``subject``, a CI over seeds."""
    return _beats_the_rest(run, subject, metric, statistic, threshold, versus, pick=min)


@rule("ratio_above")
def ratio_above(run: LLMRun, subject: str, versus: str, metric: str, statistic: str, threshold: str) -> Outcome | None:
    """mean(subject) / mean(versus) with a CI over seeds, held above ``threshold``."""
    stats = per_seed(run.frame, metric, statistic)
    treated, base = variant_values(stats, subject), variant_values(stats, versus)
    if not len(treated) or not len(base):
        return None
    ratio, low, high = bootstrap_ratio_ci(treated, base)
    return Outcome(
        f"{ratio + 1:.2f}x [{low + 1:.2f}, {high + 1:.2f}]", ci_verdict(low + 1, high + 1, threshold, "above")
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
    """Final-20 over first-20 mean of ``metric``: a CI inside [lower, upper] reproduces, wholly outside refutes."""
    start, end = per_seed(run.frame, metric, "start"), per_seed(run.frame, metric)
    if not len(variant_values(end, subject)):
        return None
    ratio, low, high = bootstrap_ratio_ci(variant_values(end, subject), variant_values(start, subject))
    low, high, lower, upper = low + 1, high + 1, float(lower), float(upper)
    inside, outside = lower <= low and high <= upper, high < lower or low > upper
    return Outcome(
        f"final / first {FINAL_STEPS} steps {ratio + 1:.2f}x [{low:.2f}, {high:.2f}]",
        "reproduced" if inside else "not reproduced" if outside else "inconclusive",
    )


@rule("not_judged")
def not_judged(run: LLMRun, subject: str, **_: str) -> Outcome | None:
    """A claim this run's task cannot test (the row's ``skip_task``): inconclusive, for the reason given."""
    return Outcome("-", "inconclusive") if subject in variants(run.frame) else None


def collapsed(
    run: LLMRun, params: Mapping[str, str], verdict: str, what: str = "numbers cannot support the claim"
) -> str | None:
    """A verdict about an algorithm's gradients or entropy means nothing once it has collapsed."""
    subject = params["subject"]
    if verdict == "reproduced" and has_collapsed(run.frame, subject):
        return f"{label(subject)} COLLAPSED in this run, so its {what}"
    return None


def not_discriminating(run: LLMRun, params: Mapping[str, str], verdict: str) -> str | None:
    """The objectives coincide in this run's regime: no comparison between them can count."""
    return None if run.discriminates else "NOT DISCRIMINATING: this run's regime makes the objectives coincide"


GUARDS = {
    "collapsed": collapsed,
    "collapsed-gradients": partial(collapsed, what="gradients support nothing"),
    "regime": not_discriminating,
}


def claims(frame: pd.DataFrame, paper: pd.DataFrame, task: str) -> pd.DataFrame:
    """The LLM claims of both papers (rows of ``experiments/paper/llm_claims.csv``) judged on a run.

    A row whose ``skip_task`` names ``task`` is not judged and says why (``skip_rule``).
    """
    rows = paper.copy()
    if "skip_task" in rows.columns:
        skip = rows["skip_task"].map(lambda tasks: task in text(tasks).split())
        rows.loc[skip, "rule"] = "not_judged"
        rows.loc[skip, "rule_text"] = rows.loc[skip, "skip_rule"]
    return evaluate(rows, LLMRun(frame, task), GUARDS)
