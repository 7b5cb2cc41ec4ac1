"""ADPO Table 2 from ``distill.csv``: the table beside the paper's, a figure, and the claims.

Paper numbers come from ``experiments/paper/adpo_table2.csv``; the claims and their thresholds are
rows of ``experiments/paper/adpo_table2_claims.csv``, judged by the rules here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geobench.report.claims import Outcome, ci_verdict, evaluate_each, read_claims, rule
from geobench.report.markdown import markdown_table
from geobench.report.stats import bootstrap_diff_ci, bootstrap_mean_ci, bootstrap_ratio_ci, last_logged
from geobench.report.style import style

ORDER = ("kd", "adpo-self-anchor", "adpo-self-anchor-ema", "kd-gaussian")


def final(frame: pd.DataFrame) -> pd.DataFrame:
    """The last logged value of every (env, variant, seed, metric)."""
    return last_logged(frame, ["env", "variant", "metric"])


def values(fin: pd.DataFrame, env: str, variant: str, metric: str) -> np.ndarray:
    part = fin[(fin["env"] == env) & (fin["variant"] == variant) & (fin["metric"] == metric)]
    return part.sort_values("seed")["value"].to_numpy()


def _variants(fin: pd.DataFrame) -> list[str]:
    present = set(fin["variant"].unique())
    return [v for v in ORDER if v in present] + sorted(present - set(ORDER))


def _split(total: float, forward: float | None) -> str:
    """'return (forward part)': a policy that only survives shows a forward part near 0."""
    return f"{total:.1f}" + (f" (fwd {forward:.1f})" if forward is not None and not np.isnan(forward) else "")


def _forward(fin: pd.DataFrame, env: str, variant: str) -> str:
    forward = values(fin, env, variant, "forward_return")
    return f" (fwd {forward.mean():.1f})" if len(forward) else ""


def table(
    fin: pd.DataFrame,
    paper: pd.DataFrame,
    teacher_returns: dict[str, float],
    teacher_forward: dict[str, float | None] | None = None,
) -> str:
    """Table 2's layout: per env and method, return mean +- std (its forward part), NDCG, KL; the paper's beside."""
    teacher_forward = teacher_forward or {}
    rows = []
    paper = paper.set_index(["env", "variant"])
    for env in sorted(fin["env"].unique()):
        for variant in _variants(fin):
            ret = values(fin, env, variant, "return")
            if len(ret) == 0:
                continue
            p = paper.loc[(env, variant)] if (env, variant) in paper.index else None
            rows.append(
                {
                    "env (teacher: ours / paper)": f"{env} ("
                    + _split(teacher_returns.get(env, float("nan")), teacher_forward.get(env))
                    + " / "
                    + (f"{p['teacher_return']:.1f})" if p is not None else "-)"),
                    "method": variant,
                    "return (forward part), ours": f"{ret.mean():.1f} +- {ret.std():.1f}"
                    + (
                        f" (fwd {forward.mean():.1f})"
                        if len(forward := values(fin, env, variant, "forward_return"))
                        else ""
                    ),
                    "return, paper": f"{p['return_mean']:.1f} +- {p['return_std']:.1f}" if p is not None else "-",
                    "NDCG, ours": f"{values(fin, env, variant, 'ndcg').mean():.3f}",
                    "NDCG, paper": f"{p['ndcg']:.3f}" if p is not None else "-",
                    "KL, ours": f"{values(fin, env, variant, 'kl').mean():.2f}",
                    "KL, paper": f"{p['kl']:.2f}" if p is not None else "-",
                }
            )
    return markdown_table(pd.DataFrame(rows))


@dataclass(frozen=True)
class Environment:
    """What ADPO Table 2's claims are judged on: the final values (:func:`final`) and one environment."""

    fin: pd.DataFrame
    env: str


@rule("gain_over")
def gain_over(run: Environment, subject: str, versus: str, metric: str, threshold: str) -> Outcome | None:
    """mean(subject) - mean(versus) of ``metric``, a CI over seeds above ``threshold``."""
    treated, base = values(run.fin, run.env, subject, metric), values(run.fin, run.env, versus, metric)
    if len(treated) == 0 or len(base) == 0:
        return None
    mean, low, high = bootstrap_diff_ci(treated, base)
    return Outcome(
        f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]", ci_verdict(low, high, threshold, "above"), {"env": run.env}
    )


@rule("fold_reduction")
def fold_reduction(run: Environment, subject: str, versus: str, metric: str, threshold: str) -> Outcome | None:
    """mean(versus) / mean(subject) of ``metric`` (how many times lower), a CI over seeds above ``threshold``."""
    treated, base = values(run.fin, run.env, subject, metric), values(run.fin, run.env, versus, metric)
    if len(treated) == 0 or len(base) == 0:
        return None
    ratio, low, high = bootstrap_ratio_ci(base, treated)
    return Outcome(
        f"{ratio + 1:.2f}x [{low + 1:.2f}, {high + 1:.2f}]",
        ci_verdict(low + 1, high + 1, threshold, "above"),
        {"env": run.env},
    )


def claims(fin: pd.DataFrame) -> pd.DataFrame:
    """ADPO Sec. 6.2's claims (``experiments/paper/adpo_table2_claims.csv``) per env, each with a rule-based
    verdict."""
    return evaluate_each(
        read_claims("adpo_table2_claims"), (Environment(fin, env) for env in sorted(fin["env"].unique()))
    )


def figure(fin: pd.DataFrame, caption: str) -> Figure:
    """Final return and KL per method and env, 95% bootstrap CIs over seeds."""
    envs = sorted(fin["env"].unique())
    fig = Figure(figsize=(5 * len(envs) + 1.5, 7))
    fig.subplots_adjust(left=0.08, right=0.8, bottom=0.06, top=0.9, hspace=0.3, wspace=0.25)
    axes = fig.subplots(2, len(envs), squeeze=False)
    for col, env in enumerate(envs):
        for row, (metric, label) in enumerate(
            (("return", "return (undiscounted)"), ("kl", "KL(teacher || student), nats"))
        ):
            ax = axes[row][col]
            for i, variant in enumerate(_variants(fin)):
                v = values(fin, env, variant, metric)
                if len(v) == 0:
                    continue
                mean, low, high = bootstrap_mean_ci(v)
                kw = style(variant)
                ax.bar(i, mean, color=kw["color"], label=kw["label"], alpha=0.85)
                ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]], color="black", capsize=3, lw=1)
            ax.set(title=f"{env}: {metric}", ylabel=label, xticks=[])
            if metric == "kl":
                ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(caption, fontsize=9)
    return fig
