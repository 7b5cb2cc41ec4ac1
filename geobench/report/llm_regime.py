"""Could this LLM run tell the objectives apart? The per-pair check, the coarser regime check, and
pairwise differences with paired CIs.

The per-pair check (:mod:`~geobench.report.llm_pairs`, a run's ``pairs.csv``) answers it for each pair
of algorithms: do their updates differ on the same batch? A run without one (older runs) falls back on
the run-level regime check here, which is coarser: GRPO, GSPO, DAPO and on-policy ADPO differ only
through mechanisms that a run may never switch on: the clip (needs ratios pi/pi_old away from 1, i.e.
more than one update per rollout batch), sequence- vs token-level aggregation and length normalisation
(need completions of different lengths), and the shape of the reward (a two-valued reward leaves only
the group's pass rate). When every update is on-policy (ratio = 1) or the clip never acts, *and*
lengths barely vary, each of these objectives is REINFORCE with a per-prompt weight that depends only
on the group's pass rate, so their curves must agree. :func:`regime` measures each mechanism from
``metrics.csv``; it cannot see two objectives that make the same update while those mechanisms act
(GRPO and DAPO, whose difference AdamW cancels). :class:`Discrimination` is whichever check the run
has, asked per pair.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geobench.report.llm_pairs import COINCIDE_NOTE, pair_verdict, pairs_text
from geobench.report.markdown import markdown_table
from geobench.report.stats import NOT_TESTABLE, paired_diff_ci
from geobench.report.style import label

CLIPPED = ("grpo", "gspo", "dapo")  # the algorithms with a PPO clip
MIN_CLIP_FRAC = 1e-3  # below one token in a thousand, the clip plays no measurable part
MIN_LENGTH_STD = 1.0  # tokens: within-step spread below this is fixed-length answers
MAX_ON_POLICY = 0.99  # fraction of updates with ratio = 1 above which the run is on-policy


@dataclass(frozen=True)
class Regime:
    """What the run's mechanisms did, averaged over seeds and steps."""

    on_policy_frac: float  # fraction of optimizer updates whose ratios were all 1
    clip_frac: float  # mean token clip fraction over the clipped algorithms
    length_mean: float
    length_std: float  # mean within-step standard deviation of completion length
    reward_levels: int  # most distinct reward values in a step
    ratios_leave_one: bool
    clip_acts: bool
    lengths_vary: bool

    @property
    def discriminates(self) -> bool:
        return (self.ratios_leave_one and self.clip_acts) or self.lengths_vary

    def sentence(self) -> str:
        """The run-level check in a sentence, labelled as coarser than a per-pair check."""
        if not self.discriminates:
            return (
                "**Run-level check: this run cannot tell the objectives apart**: updates are (near) on-policy or "
                f"the clip never acts (clip fraction {_fmt(self.clip_frac, '{:.4f}')}), and completions are of "
                f"near-fixed length (within-step spread {_fmt(self.length_std, '{:.1f} tokens')}), so GRPO, GSPO, "
                "DAPO and on-policy ADPO all reduce to REINFORCE with a per-prompt weight set by the group's pass "
                f"rate. Its comparisons between algorithms read {NOT_TESTABLE!r}."
            )
        parts = []
        parts.append(
            f"ratios leave 1 and the clip acts (clip fraction {self.clip_frac:.3f}, "
            f"{self.on_policy_frac:.0%} of updates on-policy)"
            if self.ratios_leave_one and self.clip_acts
            else f"the clip barely acts (clip fraction {self.clip_frac:.4f})"
        )
        parts.append(
            f"lengths vary (mean {self.length_mean:.1f} tokens, within-step spread {self.length_std:.1f})"
            if self.lengths_vary
            else f"lengths barely vary (spread {self.length_std:.1f} tokens)"
        )
        rewards = "two-valued" if self.reward_levels <= 2 else f"{self.reward_levels}-valued"
        return (
            f"Run-level check: the mechanisms that can separate the objectives act: {'; '.join(parts)}; rewards "
            f"are {rewards}. This does not show that any given pair makes different updates: two objectives can "
            "coincide while it passes, as GRPO and DAPO do when AdamW cancels DAPO's rescaling."
        )


def _mean(frame: pd.DataFrame, metric: str, variants: tuple[str, ...] | None = None) -> float:
    rows = frame[(frame["metric"] == metric) & (frame["step"] >= 1)]
    if variants is not None:
        rows = rows[rows["variant"].isin(variants)]
    values = rows["value"].to_numpy(dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def regime(frame: pd.DataFrame) -> Regime:
    """The regime of a run from its ``metrics.csv`` rows (all variants, seeds and steps)."""
    on_policy = _mean(frame, "ratio_one_frac")
    clip = _mean(frame, "clip_frac", CLIPPED)
    length_std = _mean(frame, "completion_length_std")
    levels = frame.loc[frame["metric"] == "reward_levels", "value"]
    return Regime(
        on_policy_frac=on_policy,
        clip_frac=clip,
        length_mean=_mean(frame, "completion_length"),
        length_std=length_std,
        reward_levels=int(levels.max()) if len(levels) else 2,
        ratios_leave_one=bool(on_policy < MAX_ON_POLICY),  # NaN (not logged): treated as on-policy
        clip_acts=bool(clip >= MIN_CLIP_FRAC),
        lengths_vary=bool(length_std >= MIN_LENGTH_STD),
    )


def has_collapsed(frame: pd.DataFrame, variant: str, first: int = 10, final: int = 20) -> bool:
    """The algorithm's seed-mean training reward over its final ``final`` steps fell below half its
    first ``first`` steps': a collapse, after which its gradients and entropy describe a broken policy."""
    rows = frame[(frame["metric"] == "reward_mean") & (frame["variant"] == variant) & (frame["step"] >= 1)]
    if rows.empty:
        return False
    last = int(rows["step"].max())
    start = rows[rows["step"] <= first]["value"].mean()
    end = rows[rows["step"] > last - final]["value"].mean()
    return bool(end < 0.5 * start)


def regime_table(frame: pd.DataFrame) -> str:
    """Per algorithm, means over seeds and steps: on-policy updates, the clip's token fraction and its share
    of the gradient mass (``clip_mass``; '-' where not logged), length and its spread, reward levels."""
    rows = []
    for variant in sorted(set(frame["variant"]), key=str):
        part = frame[frame["variant"] == variant]
        levels = part.loc[part["metric"] == "reward_levels", "value"]
        rows.append(
            {
                "algorithm": label(variant),
                "updates with ratio = 1": _fmt(_mean(part, "ratio_one_frac"), "{:.0%}"),
                "clip fraction": _fmt(_mean(part, "clip_frac"), "{:.4f}"),
                "clip gradient share": _fmt(_mean(part, "clip_mass"), "{:.4f}"),
                "completion length": _fmt(_mean(part, "completion_length"), "{:.1f}"),
                "within-step length std": _fmt(_mean(part, "completion_length_std"), "{:.1f}"),
                "truncated": _fmt(_mean(part, "truncated_frac"), "{:.1%}"),
                "reward values per step (max)": str(int(levels.max())) if len(levels) else "-",
            }
        )
    return markdown_table(pd.DataFrame(rows))


def _fmt(value: float, fmt: str) -> str:
    return "-" if np.isnan(value) else fmt.format(value)


def final_means(frame: pd.DataFrame, metric: str, steps: int) -> pd.DataFrame:
    """(variant, seed) -> mean of the last ``steps`` logged values of ``metric``."""
    rows = frame[(frame["metric"] == metric) & (frame["step"] >= 1)].sort_values("step")
    return rows.groupby(["variant", "seed"])["value"].apply(lambda v: v.dropna().tail(steps).mean()).reset_index()


@dataclass(frozen=True)
class Discrimination:
    """Which pairs of a run's algorithms can be compared: by the per-pair check where the run has
    ``pairs.csv``, else (coarser) by the run-level regime check, for every pair at once."""

    frame: pd.DataFrame
    pairs: pd.DataFrame | None = None

    def verdict(self, a: str, b: str) -> str | None:
        """'coincide' or 'differ' by the per-pair check; None without one (or where it skipped the pair)."""
        return None if self.pairs is None else pair_verdict(self.pairs, a, b)

    def void(self, a: str, b: str) -> str | None:
        """Why a comparison of ``a`` with ``b`` cannot be tested in this run, or None if it can; a pair the
        per-pair check did not compare falls back on the run-level check, as a run without one does."""
        verdict = self.verdict(a, b)
        if verdict is not None:
            return COINCIDE_NOTE if verdict == "coincide" else None
        if regime(self.frame).discriminates:
            return None
        missing = "no per-pair check in this run" if self.pairs is None else "the per-pair check skipped this pair"
        return f"{NOT_TESTABLE} ({missing}; the coarser run-level check: objectives coincide)"

    def text(self, updates_per_batch: int | None = None) -> str:
        """The per-pair table, or where the run has none a sentence saying so and the run-level check."""
        if self.pairs is not None:
            return pairs_text(self.pairs, updates_per_batch)
        return (
            "**No per-pair check in this run** (its folder has no `pairs.csv`; the run predates the check), so "
            "whether two given algorithms made different updates is not known. The run-level check below is "
            "coarser: it asks whether the mechanisms that can separate objectives acted at all.\n\n"
            + regime(self.frame).sentence()
        )


def pairwise_table(frame: pd.DataFrame, final_steps: int = 20, pairs: pd.DataFrame | None = None) -> str:
    """Every pair of algorithms: differences with paired 95% bootstrap CIs over seeds (seed k of one with
    seed k of the other: they share prompts), and what the CI excludes 0 on.

    Final reward and entropy are final-``final_steps`` means; held-out accuracy is the last evaluation. A
    pair that cannot be compared (its updates coincide; without ``pairs``, the run-level regime check says
    the objectives coincide) reads not testable and why; fewer than 2 seeds in common likewise.
    """
    check = Discrimination(frame, pairs)
    stats = {
        "final reward": final_means(frame, "reward_mean", final_steps),
        "final held-out accuracy": final_means(frame, "heldout_accuracy", 1),
        "final entropy": final_means(frame, "entropy", final_steps),
    }
    rows = []
    for a, b in itertools.combinations(sorted(set(frame["variant"]), key=str), 2):
        row = {"pair": f"{label(a)} - {label(b)}", "updates (per-pair check)": check.verdict(a, b) or "-"}
        resolved, seeds_in_common = [], []
        for name, table in stats.items():
            x = table.loc[table["variant"] == a].set_index("seed")["value"].dropna()
            y = table.loc[table["variant"] == b].set_index("seed")["value"].dropna()
            seeds = x.index.intersection(y.index).sort_values()
            seeds_in_common.append(len(seeds))
            if len(seeds) < 2:
                row[name] = "-"
                continue
            mean, low, high = paired_diff_ci(x[seeds].to_numpy(float), y[seeds].to_numpy(float))
            row[name] = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
            if low > 0 or high < 0:
                resolved.append(name.replace("final ", ""))
        void = check.void(a, b)
        if void is None and max(seeds_in_common) < 2:
            void = f"{NOT_TESTABLE} ({max(seeds_in_common)} seed(s) in common: a CI needs at least 2)"
        row["told apart by"] = void or ", ".join(resolved) or "nothing"
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))
