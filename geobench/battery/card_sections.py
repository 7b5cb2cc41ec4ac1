"""The four sections of a report card, one per experiment, each computed from the run frames alone.

A section answers "against the reference, where?" first: per scenario (toy reading, bandit scenario,
environment, LLM metric), the objective's difference from the reference baseline of its feedback
(``experiments/references.toml``) with a paired 95% CI over seeds (seed k of both arms shares its
random numbers: contexts, prompts, initialisation) and the side it resolves to, beside the starting
level (the reference policy, the warm start) the run records. Then its numbers beside every
baseline's, its rank, and the experiment's own diagnostics.

Each section returns (markdown, verdict, summary): the verdict goes to ``verdicts.csv``, the summary
is the card's one line per experiment at its top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geobench.battery.finals import LLM_FINAL_STEPS, at_anchor, saturation_ratio
from geobench.battery.plan import Plan
from geobench.report import bandits_report, llm_regime, mujoco_report
from geobench.report.llm_artifacts import samples_table
from geobench.report.llm_regime import final_means
from geobench.report.llm_report import curve_figure, variant_values
from geobench.report.markdown import markdown_table
from geobench.report.stats import ci_text, paired_diff_ci
from geobench.report.toy_figure import saturation_figure

TOY_P = (0.5, 0.9, 0.99, 0.999)
SATURATED = 1e-2  # |dL/dz| at the largest p below 1% of its value at p = 0.5: the gradient has vanished
SIDES = ("higher", "lower", "not resolved")


@dataclass(frozen=True)
class Section:
    """What a section reads: the rows of the baselines and the objective, and how to draw a figure."""

    frame: pd.DataFrame
    objective: str
    step: Plan
    reference: str | None  # the baseline of the objective's feedback here, None if the experiment has none
    draw: Callable[[Figure, str], str]  # (figure, stem) -> its Markdown image link ('' for a card without figures)


def versus(values: Callable[[str], pd.Series], objective: str, others: list[str], fmt: str = "{:+.3f}") -> list[dict]:
    """One row per baseline: objective - baseline, paired by seed, with its CI and the side it resolves to.
    ``values(name)`` is a Series of per-seed values indexed by seed."""
    mine, rows = values(objective).dropna(), []
    for other in others:
        theirs = values(other).dropna()
        seeds = mine.index.intersection(theirs.index).sort_values()
        if len(seeds) < 2:
            rows.append({"baseline": other, "difference": "-", "resolved": "too few seeds"})
            continue
        mean, low, high = paired_diff_ci(mine[seeds].to_numpy(float), theirs[seeds].to_numpy(float))
        side = "higher" if low > 0 else "lower" if high < 0 else "not resolved"
        rows.append({"baseline": other, "difference": f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"})
        rows[-1]["resolved"] = side
    return rows


def sides(rows: list[dict]) -> str:
    """'higher than a, b; lower than c; not resolved against d' from :func:`versus` rows."""
    parts = []
    for side, words in (("higher", "higher than"), ("lower", "lower than"), ("not resolved", "not resolved against")):
        names = [r["baseline"] for r in rows if r["resolved"] == side]
        if names:
            parts.append(f"{words} {', '.join(names)}")
    return "; ".join(parts) or "no baselines"


def rank(means: dict[str, float], objective: str) -> str:
    order = sorted(means, key=lambda k: -means[k])
    return f"{order.index(objective) + 1} of {len(order)}"


def _tally(resolved: list[str]) -> str:
    """'higher in 3, lower in 5, not resolved in 4 of 12'."""
    counts = ", ".join(f"{side} in {resolved.count(side)}" for side in SIDES)
    return f"{counts} of {len(resolved)}"


def _reference_rows(section: Section, values: Callable[[str], pd.Series], fmt: str) -> dict:
    """The 'vs <reference>' cells of one scenario: the paired difference and its side."""
    ref = section.reference
    if ref is None or ref == section.objective:
        return {"vs reference": "is the reference" if ref else "no reference"}
    if not len(values(ref).dropna()):
        return {f"vs {ref}": f"{ref} not in this run"}
    row = versus(values, section.objective, [ref], fmt)[0]
    return {f"vs {ref}": row["difference"], "side": row["resolved"]}


def toy(section: Section) -> tuple[str, str, str]:
    """|dL/dz| at a few confidences in both readings, the sign of dL/dz at the anchor (a sign error must
    not read as a gradient that does not vanish), and the saturation ratio beside the reference's."""
    frame, objective = section.frame, section.objective
    size, signed = frame[frame["metric"] == "grad_abs"], frame[frame["metric"] == "grad"]
    rows, verdicts, summary = [], [], []
    for (reading, variant), part in size.groupby(["coordinates", "variant"]):
        part = part.sort_values("p")
        at = {f"p={p:g}": part["value"].iloc[int(np.abs(part["p"] - p).argmin())] for p in TOY_P}
        ratio = saturation_ratio(part)
        sign = _anchor_sign(signed[(signed["coordinates"] == reading) & (signed["variant"] == variant)])
        rows.append({"reading": reading, "objective": variant, **{k: f"{v:.3g}" for k, v in at.items()}})
        rows[-1][f"at p={part['p'].iloc[-1]:g} / at p=0.5"] = f"{ratio:.3g}"
        rows[-1]["dL/dz at p=0.5"] = sign
        if variant == objective:
            vanishes = "vanishes" if ratio < SATURATED else "does not vanish"
            verdicts.append(f"{reading}: {vanishes} ({ratio:.3g}), dL/dz at the anchor {sign}")
            summary.append(f"{reading} ratio {ratio:.3g}{_toy_versus(size, reading, objective, section.reference)}")
    caption = f"{objective} beside the baselines: |dL/dz| vs confidence (OPO Fig. 3's toy; p = 0.5 is the anchor)"
    figure = section.draw(saturation_figure(frame, section.step.config.log_floor, caption), "card_toy")
    question = f"Does {objective}'s gradient vanish as p -> 1 (|dL/dz| at the largest p below {SATURATED:g} x its "
    text = f"{figure}{question}value at p = 0.5, the anchor)? {'; '.join(verdicts)}.\n\n"
    text += "dL/dz < 0 raises the preferred outcome; > 0 at the anchor is a sign error.\n\n"
    text += markdown_table(pd.DataFrame(rows))
    return text, f"the gradient as p -> 1 {'; '.join(verdicts)}.", "; ".join(summary)


def _anchor_sign(rows: pd.DataFrame) -> str:
    if not len(rows):
        return "not recorded"
    value = at_anchor(rows.sort_values("p"))
    return "< 0 (raises p)" if value < 0 else "= 0 (no gradient)" if value == 0 else "> 0: SIGN ERROR"


def _toy_versus(size: pd.DataFrame, reading: str, objective: str, reference: str | None) -> str:
    part = size[(size["coordinates"] == reading) & (size["variant"] == reference)].sort_values("p")
    if reference is None or reference == objective or not len(part):
        return ""
    return f" ({reference} {saturation_ratio(part):.3g})"


def bandits(section: Section) -> tuple[str, str, str]:
    """Final WinMass per scenario with CIs beside the reference policy's, the difference from the reference,
    the objective's rank, its resolved differences from every baseline, and the scaling rows."""
    frame, objective, config = section.frame, section.objective, section.step.config
    final = bandits_report.final_values(frame)
    stats = bandits_report.summary(final)
    hidden = config.hidden[0]
    start = bandits_report.reference_level(frame, hidden)
    main = stats[stats["hidden"] == hidden]
    rows, tally, against = [], {}, []
    for (noise, level), part in main.groupby(["scenario", "level"], sort=False):
        means = dict(zip(part["variant"], part["mean"], strict=True))
        best = max((v for v in means if v != objective), key=means.get)
        values = partial(_seeds, final, {"scenario": noise, "level": level, "hidden": hidden})
        row = {"scenario": f"{noise}/{level}", "start": "-" if start is None else f"{start:.3f}"}
        row[objective] = ci_text(values(objective).to_numpy())
        row.update(_reference_rows(section, values, "{:+.3f}"))
        against.append(row.get("side", ""))
        rows.append({**row, "rank": rank(means, objective), "best baseline": f"{best} {means[best]:.3f}"})
        for other in versus(values, objective, sorted(set(means) - {objective})):
            tally.setdefault(other["baseline"], []).append(other["resolved"])
    pairs = pd.DataFrame([{"baseline": b, **{k: r.count(k) for k in SIDES}} for b, r in tally.items()])
    caption = f"{objective} beside the baselines: final WinMass, hidden {hidden} (dashed: the reference policy)"
    text = section.draw(bandits_report.fig2a(stats, hidden, start, caption), "card_bandits")
    text += f"Final WinMass, hidden {hidden}, mean [95% CI] over {final['seed'].nunique()} seeds; start: the "
    text += "pretrained reference policy every method starts from:\n\n" + markdown_table(pd.DataFrame(rows))
    text += f"\nScenarios in which {objective}'s WinMass is resolved higher / lower than each baseline's:\n\n"
    text += markdown_table(pairs)
    scaling = stats[(stats["scenario"] == config.scaling_noise) & (stats["level"] == config.scaling_level)]
    if config.scaling and scaling["hidden"].nunique() > 1:
        table = scaling.pivot(index="variant", columns="hidden", values="mean").reset_index()
        text += f"\nModel scaling (ADPO Fig. 2b), {config.scaling_noise}/{config.scaling_level}: "
        text += f"mean final WinMass by hidden width\n\n{markdown_table(table)}"
    ranks = [int(r["rank"].split()[0]) for r in rows]
    tallies = ", ".join(f"{r['baseline']} {r['higher']}/{r['lower']}" for r in pairs.to_dict("records"))
    verdict = (
        f"final WinMass in {len(rows)} scenarios, median rank {int(np.median(ranks))} of {len(means)}; "
        f"scenarios resolved higher/lower than each baseline: {tallies}."
    )
    return text, verdict, _summary(section, against, "scenarios")


def _summary(section: Section, against: list[str], what: str) -> str:
    ref = section.reference
    if ref is None:
        return "no reference baseline"
    if ref == section.objective:
        return "is the reference baseline"
    shown = [a for a in against if a in SIDES]
    return f"against {ref}: {_tally(shown)} {what}" if shown else f"{ref} not in this run"


def _seeds(final: pd.DataFrame, where: dict, variant: str) -> pd.Series:
    part = final[final["variant"] == variant]
    for column, value in where.items():
        part = part[part[column] == value]
    return part.groupby("seed")["value"].mean()


def mujoco(section: Section) -> tuple[str, str, str]:
    """Student return, NDCG and KL per environment with CIs, the initial student's NDCG and KL; the
    objective's differences in return from the reference and every baseline."""
    frame, objective = section.frame, section.objective
    fin = mujoco_report.final(frame)
    text, verdicts, against = "", [], []
    for env in sorted(fin["env"].unique()):
        variants = sorted(fin[fin["env"] == env]["variant"].unique())
        rows = [
            {
                "method": v,
                **{m: ci_text(mujoco_report.values(fin, env, v, m), "{:.4g}") for m in ("return", "ndcg", "kl")},
            }
            for v in variants
        ]
        rows.append({"method": "start (initial student)", **_mujoco_start(frame, env)})
        means = {v: float(np.mean(mujoco_report.values(fin, env, v, "return"))) for v in variants}
        returns = partial(_env_seeds, fin, env)
        reference = _reference_rows(section, returns, "{:+.1f}")
        against.append(reference.get("side", ""))
        others = versus(returns, objective, [v for v in variants if v != objective], "{:+.1f}")
        text += f"### {env}\n\n{markdown_table(pd.DataFrame(rows))}\n"
        text += f"Against the reference: {', '.join(f'{k} {v}' for k, v in reference.items())}. "
        text += f"{objective}'s return ranks {rank(means, objective)}; its difference from each baseline:\n\n"
        text += markdown_table(pd.DataFrame(others))
        verdicts.append(f"{env} return rank {rank(means, objective)} ({sides(others)})")
    text += "\nThe objective runs at its default hyperparameters, anchored on the frozen initial student; the "
    text += "run evaluates returns at its last step only, so the initial student's return is not recorded.\n"
    return text, "; ".join(verdicts) + ".", _summary(section, against, "environments")


def _mujoco_start(frame: pd.DataFrame, env: str) -> dict[str, str]:
    first = frame[(frame["env"] == env) & (frame["step"] == frame["step"].min())]
    first = first[first["variant"] == first["variant"].min()]  # every student starts from the same weights
    values = {m: first.loc[first["metric"] == m, "value"].to_numpy() for m in ("return", "ndcg", "kl")}
    return {m: ci_text(v, "{:.4g}") if len(v) else "not recorded" for m, v in values.items()}


def _env_seeds(fin: pd.DataFrame, env: str, variant: str) -> pd.Series:
    part = fin[(fin["env"] == env) & (fin["variant"] == variant) & (fin["metric"] == "return")]
    return part.set_index("seed")["value"]


def llm(section: Section) -> tuple[str, str, str]:
    """The regime check, final reward / held-out accuracy / entropy with CIs beside the warm start's, the
    differences from the reference and every baseline, and a few of the objective's completions."""
    frame, objective, step = section.frame, section.objective, section.step
    regime = llm_regime.regime(frame)  # the regime is the run's: every algorithm shares its prompts and budget
    stats = {
        "final reward": final_means(frame, "reward_mean", LLM_FINAL_STEPS),
        "held-out accuracy": final_means(frame, "heldout_accuracy", 1),
        "final entropy": final_means(frame, "entropy", LLM_FINAL_STEPS),
    }
    variants = sorted(frame["variant"].unique(), key=lambda v: (v != objective, v))
    rows = [{"algorithm": v, **{k: ci_text(variant_values(t, v)) for k, t in stats.items()}} for v in variants]
    rows.append({"algorithm": "start (warm start)", **_llm_start(frame)})
    means = {v: float(np.nanmean(variant_values(stats["final reward"], v))) for v in variants}
    pairs, against = [], []
    for name, table in stats.items():
        values = partial(_variant_seeds, table)
        reference = _reference_rows(section, values, "{:+.3f}")
        against.append(reference.get("side", "") if name != "final entropy" else "")
        for row in versus(values, objective, [v for v in variants if v != objective]):
            pairs.append({"metric": name, **row})
    caption = f"{objective} beside the baselines: LLM quick regime (seed mean, 95% band; step 0: the warm start)"
    text = section.draw(curve_figure(frame, ["reward_mean", "heldout_accuracy"], tuple(variants), caption), "card_llm")
    text += f"**Regime check:** {regime.sentence()}\n\n{llm_regime.regime_table(frame)}\n"
    text += f"{markdown_table(pd.DataFrame(rows))}\n{objective}'s final reward ranks {rank(means, objective)}.\n\n"
    text += markdown_table(pd.DataFrame(pairs))
    text += f"\n### What {objective} writes at the start, middle and end of training\n\n"
    text += samples_table(step.out, (objective,))
    reward = [p for p in pairs if p["metric"] == "final reward"]
    verdict = f"final reward rank {rank(means, objective)} ({sides(reward)})."
    summary = _summary(section, [a for a in against if a], "metrics (final reward, held-out accuracy)")
    if not regime.discriminates:
        text += f"\nThe run does not discriminate, so none of {objective}'s differences above is evidence.\n"
        verdict += " NOT DISCRIMINATING: the objectives coincide in this run."
        summary += " (the run does not discriminate)"
    return text, verdict, summary


def _llm_start(frame: pd.DataFrame) -> dict[str, str]:
    """The warm start's level: the first batch's reward (before any update) and the step-0 evaluation."""
    out = {}
    for name, metric in (("final reward", "reward_mean"), ("held-out accuracy", "heldout_accuracy")):
        rows = frame[frame["metric"] == metric]
        first = rows[rows["step"] == rows["step"].min()]
        first = first[first["variant"] == first["variant"].min()] if len(first) else first
        out[name] = ci_text(first["value"].to_numpy())
    return {**out, "final entropy": "-"}


def _variant_seeds(table: pd.DataFrame, variant: str) -> pd.Series:
    return table[table["variant"] == variant].set_index("seed")["value"]


SECTIONS = {"toy-saturation": toy, "bandits": bandits, "mujoco": mujoco, "llm": llm}
