"""ADPO Fig. 2 from ``winmass.csv``: panels (a) and (b), their tables, and the claims with verdicts.

Every number here is computed from the CSV a run wrote; the claims, the paper's numbers and the
thresholds are rows of ``experiments/paper/adpo_fig2_claims.csv``, judged by the rules below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from geobench.report.claims import Outcome, ci_verdict, evaluate, rule, verdict_of
from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_diff_ci, bootstrap_mean_ci, bootstrap_ratio_ci, last_logged
from geobench.report.style import add_caption, fit, style

NOISE_ORDER = ("gaussian-outliers", "shift", "adversarial", "cauchy")
LEVEL_ORDER = ("light", "medium", "heavy")
# The methods ADPO Fig. 2 compares; grpo and opo are ours, shown but not counted in its claims.
PAPER_METHODS = ("adpo-listwise-raw", "adpo-listwise-rank", "adpo-pairwise", "dpo-soft", "dpo-hard", "ppo", "trpo")


def final_values(frame: pd.DataFrame, metric: str = "winmass") -> pd.DataFrame:
    """The last logged ``metric`` of every (scenario, level, hidden, variant, seed)."""
    frame = frame[(frame["metric"] == metric) & (frame["variant"] != "reference")]
    return last_logged(frame, ["scenario", "level", "hidden", "variant"])


def seed_values(final: pd.DataFrame, variant: str, **where: object) -> np.ndarray:
    """Per-seed WinMass of ``variant`` where the key columns equal ``where``, averaged over
    whatever keys are left free (e.g. the three levels of one noise type)."""
    part = final[final["variant"] == variant]
    for column, value in where.items():
        part = part[part[column] == value]
    return part.groupby("seed")["value"].mean().to_numpy()


def reference_level(frame: pd.DataFrame, hidden: int) -> float | None:
    """The pretrained reference policy's WinMass at width ``hidden`` (every method's starting level; its
    cells evaluate it once, on clean contexts), or None for a run without it."""
    rows = frame[(frame["variant"] == "reference") & (frame["hidden"] == hidden) & (frame["metric"] == "winmass")]
    return float(rows["value"].mean()) if len(rows) else None


def summary(final: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% bootstrap CI over seeds per (scenario, level, hidden, variant)."""
    rows = []
    for key, part in final.groupby(["scenario", "level", "hidden", "variant"]):
        mean, low, high = bootstrap_mean_ci(part["value"].to_numpy())
        rows.append(
            dict(
                zip(["scenario", "level", "hidden", "variant"], key, strict=True),
                mean=mean,
                low=low,
                high=high,
                seeds=len(part),
            )
        )
    return pd.DataFrame(rows)


def _ordered(values: list[str], order: tuple[str, ...]) -> list[str]:
    return [v for v in order if v in values] + sorted(set(values) - set(order))


def fig2a(stats: pd.DataFrame, hidden: int, reference: float | None, caption: str) -> Figure:
    """The 12 scenarios: final WinMass per method with 95% bootstrap CIs; the reference policy's
    WinMass dashed (and in the legend) where it is given."""
    stats = stats[stats["hidden"] == hidden]
    noises = _ordered(list(stats["scenario"].unique()), NOISE_ORDER)
    levels = _ordered(list(stats["level"].unique()), LEVEL_ORDER)
    variants = _ordered(list(stats["variant"].unique()), PAPER_METHODS + ("grpo", "opo"))
    fig = Figure(figsize=(3.6 * len(levels) + 1.6, 2.6 * len(noises) + 0.8))
    axes = fig.subplots(len(noises), len(levels), squeeze=False, sharey=True)
    for row, noise in zip(axes, noises, strict=True):
        for ax, level in zip(row, levels, strict=True):
            cell = stats[(stats["scenario"] == noise) & (stats["level"] == level)].set_index("variant")
            for i, variant in enumerate(v for v in variants if v in cell.index):
                r = cell.loc[variant]
                kw = style(variant)
                ax.bar(i, r["mean"], color=kw["color"], label=kw["label"], alpha=0.85)
                ax.errorbar(
                    i, r["mean"], yerr=[[r["mean"] - r["low"]], [r["high"] - r["mean"]]], color="black", lw=1, capsize=2
                )
            if reference is not None:
                ax.axhline(reference, color="0.4", ls="--", lw=0.8, label="reference policy")
            ax.set_title(f"{noise} / {level}", fontsize=9)
            ax.set_xticks([])
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
        row[0].set_ylabel("WinMass (final)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    legend = fig.legend(handles, labels, loc="center right", fontsize=8, title="method")
    add_caption(fig, caption)
    fit(fig, legend)
    return fig


def fig2b(stats: pd.DataFrame, scenario: str, level: str, caption: str) -> Figure:
    """WinMass against hidden size per method on the scaling scenario."""
    part = stats[(stats["scenario"] == scenario) & (stats["level"] == level)]
    fig = Figure(figsize=(7, 4.6))
    ax = fig.subplots()
    for variant in _ordered(list(part["variant"].unique()), PAPER_METHODS + ("grpo", "opo")):
        curve = part[part["variant"] == variant].sort_values("hidden")
        kw = style(variant)
        ax.errorbar(
            curve["hidden"],
            curve["mean"],
            yerr=[curve["mean"] - curve["low"], curve["high"] - curve["mean"]],
            capsize=3,
            lw=1.5,
            **kw,
        )
    ax.set(xscale="log", xlabel="hidden units (MLP width)", ylabel="WinMass (final)", title=f"{scenario} / {level}")
    ax.set_xticks(sorted(part["hidden"].unique()), labels=[str(h) for h in sorted(part["hidden"].unique())])
    ax.xaxis.set_minor_formatter(NullFormatter())  # the log axis's own labels (6x10^1) would print over 64
    ax.grid(alpha=0.3)
    legend = fig.legend(loc="center right", fontsize=8)
    add_caption(fig, caption)
    fit(fig, legend)
    return fig


def scenario_table(stats: pd.DataFrame, hidden: int) -> str:
    """Mean final WinMass per scenario (rows) and method (columns); the paper-set winner in bold."""
    stats = stats[stats["hidden"] == hidden]
    variants = _ordered(list(stats["variant"].unique()), PAPER_METHODS + ("grpo", "opo"))
    rows = []
    for noise in _ordered(list(stats["scenario"].unique()), NOISE_ORDER):
        for level in _ordered(list(stats["level"].unique()), LEVEL_ORDER):
            cell = stats[(stats["scenario"] == noise) & (stats["level"] == level)].set_index("variant")["mean"]
            if cell.empty:
                continue
            paper_cell = cell[[v for v in PAPER_METHODS if v in cell.index]]
            winner = paper_cell.idxmax() if not paper_cell.empty else None
            row = {"scenario": f"{noise} / {level}"}
            for v in variants:
                row[v] = "" if v not in cell.index else (f"**{cell[v]:.3f}**" if v == winner else f"{cell[v]:.3f}")
            row["winner (paper's methods)"] = winner
            rows.append(row)
    return markdown_table(pd.DataFrame(rows))


@dataclass(frozen=True)
class Fig2Run:
    """What ADPO Fig. 2's claims are judged on: a bandits run's final WinMass per seed (:func:`final_values`),
    its :func:`summary`, the main sweep's hidden size and the scaling study (noise, level, hidden sizes)."""

    final: pd.DataFrame
    stats: pd.DataFrame
    hidden: int
    scaling: tuple[str, str, tuple[int, ...]]

    def at_width(self, hidden: int) -> pd.DataFrame:
        """The final rows of the scaling study's scenario at one hidden size."""
        noise, level, _ = self.scaling
        final = self.final
        return final[(final["scenario"] == noise) & (final["level"] == level) & (final["hidden"] == hidden)]


@rule("most_wins")
def most_wins(run: Fig2Run, subject: str, threshold: str, out_of: str) -> Outcome:
    """In how many scenarios ``subject`` has the highest mean of the paper's methods: at least ``threshold``
    of the ``out_of`` reproduces; a sweep of another size is inconclusive."""
    main = run.stats[(run.stats["hidden"] == run.hidden) & run.stats["variant"].isin(PAPER_METHODS)]
    # a scenario none of the paper's methods ran in (``--methods grpo``) has no winner: the count is then
    # short of ``out_of`` and the verdict inconclusive
    winners = [cell.set_index("variant")["mean"].idxmax() for _, cell in main.groupby(["scenario", "level"])]
    wins = winners.count(subject)
    most = max(sorted(set(winners)), key=winners.count) if winners else "none"
    complete = len(winners) == int(out_of)
    return Outcome(
        f"{wins}/{len(winners)} (most wins: {most}, {winners.count(most)})",
        verdict_of(wins >= float(threshold)) if complete else "inconclusive",
    )


@rule("relative_to_best")
def relative_to_best(run: Fig2Run, subject: str, versus: str, scenario: str, direction: str, threshold: str) -> Outcome:
    """mean(subject) / mean(the best of ``versus`` over the main sweep) - 1 on one noise type (its levels
    averaged per seed), a CI over seeds ``direction`` ``threshold``."""
    sub = run.final[run.final["hidden"] == run.hidden]
    best = max(versus.split(), key=lambda v: seed_values(sub, v).mean() if len(seed_values(sub, v)) else -1)
    treated, base = seed_values(sub, subject, scenario=scenario), seed_values(sub, best, scenario=scenario)
    if len(treated) == 0 or len(base) == 0:
        return Outcome("not run", "inconclusive", rule="needs the scenario")
    mean, low, high = bootstrap_ratio_ci(treated, base)
    return Outcome(f"{mean:+.1%} [{low:+.1%}, {high:+.1%}] vs {best}", ci_verdict(low, high, threshold, direction))


@rule("best_at_width")
def best_at_width(run: Fig2Run, subject: str, threshold: str) -> Outcome | None:
    """``subject`` minus the best other paper method at the scaling study's middle hidden size."""
    sizes = run.scaling[2]
    width = sizes[len(sizes) // 2]
    at = run.at_width(width)
    others = [v for v in PAPER_METHODS if v != subject and len(seed_values(at, v))]
    if not len(seed_values(at, subject)) or not others:
        return None
    rival = max(others, key=lambda v: seed_values(at, v).mean())
    mean, low, high = bootstrap_diff_ci(seed_values(at, subject), seed_values(at, rival))
    return Outcome(
        f"{seed_values(at, subject).mean():.3f}; vs {rival} {mean:+.3f} [{low:+.3f}, {high:+.3f}]",
        ci_verdict(low, high, threshold, "above"),
        {"width": width},
    )


@rule("width_change")
def width_change(run: Fig2Run, subject: str, direction: str, threshold: str) -> Outcome:
    """``subject``'s WinMass at the largest minus at the smallest hidden size of the scaling study."""
    sizes = run.scaling[2]
    small, large = seed_values(run.at_width(sizes[0]), subject), seed_values(run.at_width(sizes[-1]), subject)
    if len(small) == 0 or len(large) == 0:
        return Outcome("not run", "inconclusive", rule="needs --scaling")
    mean, low, high = bootstrap_diff_ci(large, small)
    return Outcome(
        f"{small.mean():.3f} -> {large.mean():.3f}; {mean:+.3f} [{low:+.3f}, {high:+.3f}]",
        ci_verdict(low, high, threshold, direction),
        {"smallest": sizes[0], "largest": sizes[-1]},
    )


def claims(
    final: pd.DataFrame,
    stats: pd.DataFrame,
    paper: pd.DataFrame,
    hidden: int,
    scaling: tuple[str, str, tuple[int, ...]],
) -> pd.DataFrame:
    """ADPO Sec. 6.1's claims (rows of ``experiments/paper/adpo_fig2_claims.csv``): the paper's value, ours
    with a 95% CI, a verdict."""
    shown = [f"{float(value):g} ({unit})" for value, unit in zip(paper["paper_value"], paper["unit"], strict=True)]
    return evaluate(paper.assign(paper=shown), Fig2Run(final, stats, hidden, scaling))


def anchor_ablation_table(fixed: pd.DataFrame, moving: pd.DataFrame, hidden: int) -> str:
    """Final WinMass and confidence (top_prob) of each ADPO variant, fixed vs on-policy anchor.

    ``fixed`` and ``moving`` are raw run frames (all metrics).
    """
    keys = ["scenario", "level", "variant"]
    stats = {}
    for name, frame in (("fixed", fixed), ("moving", moving)):
        for metric in ("winmass", "top_prob"):
            part = summary(final_values(frame[frame["hidden"] == hidden], metric))
            stats[name, metric] = part.set_index(keys) if len(part) else part
    rows = []
    for key in stats["moving", "winmass"].index:
        if key not in stats["fixed", "winmass"].index:
            continue
        row = {"scenario": f"{key[0]} / {key[1]}", "variant": key[2]}
        for name, title in (("fixed", "fixed reference"), ("moving", "on-policy")):
            w = stats[name, "winmass"].loc[key]
            row[f"WinMass, {title}"] = f"{w['mean']:.3f} [{w['low']:.3f}, {w['high']:.3f}]"
            row[f"top_prob, {title}"] = f"{stats[name, 'top_prob'].loc[key, 'mean']:.3f}"
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))
