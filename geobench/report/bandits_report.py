"""ADPO Fig. 2 from ``winmass.csv``: panels (a) and (b), their tables, and the claims with verdicts.

Every number here is computed from the CSV a run wrote; the paper's numbers come from
``experiments/paper/adpo_fig2_claims.csv``. Each verdict follows a rule written below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_diff_ci, bootstrap_mean_ci, bootstrap_ratio_ci, last_logged, sign_verdict
from geobench.report.style import style

NOISE_ORDER = ("gaussian-outliers", "shift", "adversarial", "cauchy")
LEVEL_ORDER = ("light", "medium", "heavy")
# The methods ADPO Fig. 2 compares; grpo and opo are ours, shown but not counted in its claims.
PAPER_METHODS = ("adpo-listwise-raw", "adpo-listwise-rank", "adpo-pairwise", "dpo-soft", "dpo-hard", "ppo", "trpo")
DPO = ("dpo-soft", "dpo-hard")


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
    """The 12 scenarios: final WinMass per method with 95% bootstrap CIs."""
    stats = stats[stats["hidden"] == hidden]
    noises = _ordered(list(stats["scenario"].unique()), NOISE_ORDER)
    levels = _ordered(list(stats["level"].unique()), LEVEL_ORDER)
    variants = _ordered(list(stats["variant"].unique()), PAPER_METHODS + ("grpo", "opo"))
    fig = Figure(figsize=(3.6 * len(levels) + 1.6, 2.6 * len(noises) + 0.8))
    fig.subplots_adjust(left=0.07, right=0.8, bottom=0.05, top=0.92, hspace=0.45, wspace=0.15)
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
                ax.axhline(reference, color="0.4", ls="--", lw=0.8)
            ax.set_title(f"{noise} / {level}", fontsize=9)
            ax.set_xticks([])
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
        row[0].set_ylabel("WinMass (final)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, title="method (dashed: reference)")
    fig.suptitle(caption, fontsize=9)
    return fig


def fig2b(stats: pd.DataFrame, scenario: str, level: str, caption: str) -> Figure:
    """WinMass against hidden size per method on the scaling scenario."""
    part = stats[(stats["scenario"] == scenario) & (stats["level"] == level)]
    fig = Figure(figsize=(7, 4.6))
    fig.subplots_adjust(left=0.1, right=0.72, bottom=0.12, top=0.88)
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
    ax.grid(alpha=0.3)
    fig.legend(loc="center right", fontsize=8)
    fig.suptitle(caption, fontsize=9)
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


def claims(
    final: pd.DataFrame,
    stats: pd.DataFrame,
    paper: pd.DataFrame,
    hidden: int,
    scaling: tuple[str, str, tuple[int, ...]],
) -> pd.DataFrame:
    """One row per claim of ADPO Sec. 6.1: the paper's value, ours with a 95% CI, a verdict."""
    paper = paper.set_index("claim")
    rows = []

    def add(claim: str, ours: str, verdict: str, rule: str) -> None:
        p = paper.loc[claim]
        rows.append(
            {
                "claim": p["statement"],
                "paper": f"{p['paper_value']:g} ({p['unit']})",
                "ours": ours,
                "verdict": verdict,
                "rule": rule,
            }
        )

    main = stats[stats["hidden"] == hidden]
    winners = [
        cell[cell["variant"].isin(PAPER_METHODS)].set_index("variant")["mean"].idxmax()
        for _, cell in main.groupby(["scenario", "level"])
    ]
    wins = winners.count("trpo")
    most = max(set(winners), key=winners.count) if winners else "none"
    add(
        "trpo_wins",
        f"{wins}/{len(winners)} (most wins: {most}, {winners.count(most)})",
        "reproduced"
        if wins >= 8 and len(winners) == 12
        else ("not reproduced" if len(winners) == 12 else "inconclusive"),
        "reproduced if TRPO has the highest mean in >= 8 of the 12 scenarios",
    )
    sub = final[final["hidden"] == hidden]
    best_dpo = max(DPO, key=lambda v: seed_values(sub, v).mean() if len(seed_values(sub, v)) else -1)
    for claim, variant, noise, sign in [
        ("listwise_raw_shift", "adpo-listwise-raw", "shift", 1),
        ("listwise_raw_adversarial", "adpo-listwise-raw", "adversarial", 1),
        ("ppo_shift", "ppo", "shift", -1),
    ]:
        treated, base = seed_values(sub, variant, scenario=noise), seed_values(sub, best_dpo, scenario=noise)
        if len(treated) == 0 or len(base) == 0:
            add(claim, "not run", "inconclusive", "needs the scenario")
            continue
        mean, low, high = bootstrap_ratio_ci(treated, base)
        add(
            claim,
            f"{mean:+.1%} [{low:+.1%}, {high:+.1%}] vs {best_dpo}",
            sign_verdict(low, high, sign),
            f"relative to the better DPO, mean over the 3 {noise} levels; "
            f"CI {'above' if sign > 0 else 'below'} 0 reproduces",
        )
    noise, level, sizes = scaling
    scal = final[(final["scenario"] == noise) & (final["level"] == level)]
    at = {h: scal[scal["hidden"] == h] for h in sizes}
    mid = sizes[len(sizes) // 2]
    others = [v for v in PAPER_METHODS if v != "trpo" and len(seed_values(at[mid], v))]
    if len(seed_values(at[mid], "trpo")) and others:
        rival = max(others, key=lambda v: seed_values(at[mid], v).mean())
        mean, low, high = bootstrap_diff_ci(seed_values(at[mid], "trpo"), seed_values(at[mid], rival))
        trpo_mean = seed_values(at[mid], "trpo").mean()
        add(
            "trpo_128",
            f"{trpo_mean:.3f}; vs {rival} {mean:+.3f} [{low:+.3f}, {high:+.3f}]",
            sign_verdict(low, high, 1),
            f"TRPO minus the best other paper method at hidden {mid}; CI above 0 reproduces",
        )
    for claim, variant, sign in [("listwise_scaling", "adpo-listwise-raw", 1), ("ppo_scaling", "ppo", -1)]:
        small, large = seed_values(at[sizes[0]], variant), seed_values(at[sizes[-1]], variant)
        if len(small) == 0 or len(large) == 0:
            add(claim, "not run", "inconclusive", "needs --scaling")
            continue
        mean, low, high = bootstrap_diff_ci(large, small)
        add(
            claim,
            f"{small.mean():.3f} -> {large.mean():.3f}; {mean:+.3f} [{low:+.3f}, {high:+.3f}]",
            sign_verdict(low, high, sign),
            f"WinMass at {sizes[-1]} minus at {sizes[0]}; CI {'above' if sign > 0 else 'below'} 0 reproduces",
        )
    return pd.DataFrame(rows)


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
