"""The per-pair update check: do two algorithms of an LLM run make different updates at all?

The LLM loop writes ``pairs.csv`` beside ``metrics.csv``, columns exactly :data:`COLUMNS`: at each
checked ``step``, from the parameters and optimiser state of the cell's algorithm A (``variant``), the
``cosine`` between A's and X's (``other``) parameter gradients (accumulated over the mini-batch, before
clipping and the optimiser), each on its own simulated trajectory over the same rollout batch and the
same old/anchor log-probs, at each 1-based ``update`` position of the batch.

A pair *coincides* when every cosine is at least :data:`COINCIDE` (every update position, checked
step and seed, both directions: A's cells and X's); then no comparison between the two can tell
their objectives apart, whatever the rewards do. Otherwise the pair *differs*. A NaN cosine (a zero
gradient: nothing to compare) counts neither way.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from geobench.errors import ConfigError
from geobench.report.markdown import markdown_table
from geobench.report.style import label
from geobench.results import read_run

COLUMNS = ("experiment", "variant", "seed", "step", "other", "update", "cosine")
PAIRS_CSV = "pairs.csv"
COINCIDE = 0.99  # cosine at or above which two updates are the same direction
COINCIDE_NOTE = f"not testable (updates coincide: cosine >= {COINCIDE:g} at every checked update)"


def read_pairs(run_folder: Path) -> pd.DataFrame | None:
    """A run's per-pair check: ``pairs.csv`` beside ``metrics.csv`` (or a ``pairs/`` run folder of its own,
    as the timing rows have), None for a run without one (older runs); one line if it lacks a column."""
    folder = Path(run_folder)
    own = read_run(folder / "pairs")
    if own is not None:
        frame, path = own[0], folder / "pairs" / own[1]["csv"]
    elif (folder / PAIRS_CSV).exists():
        frame, path = pd.read_csv(folder / PAIRS_CSV), folder / PAIRS_CSV
    else:
        return None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path} lacks the per-pair check's columns {missing}: rerun the LLM run")
    return frame


def _pair_rows(pairs: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Both directions of the pair {a, b}: a's cells compared with b, and b's with a."""
    forward = (pairs["variant"] == a) & (pairs["other"] == b)
    backward = (pairs["variant"] == b) & (pairs["other"] == a)
    return pairs[forward | backward]


def pair_names(pairs: pd.DataFrame) -> list[tuple[str, str]]:
    """Every unordered pair the check compared, each as (first, second) in name order."""
    names = sorted(set(pairs["variant"]) | set(pairs["other"]), key=str)
    return [(a, b) for a, b in itertools.combinations(names, 2) if len(_pair_rows(pairs, a, b))]


def pair_verdict(pairs: pd.DataFrame, a: str, b: str) -> str | None:
    """'coincide' or 'differ' for the pair {a, b} by the module's rule; None where it was never checked
    (or every cosine is NaN)."""
    cosine = _pair_rows(pairs, a, b)["cosine"].to_numpy(dtype=float)
    cosine = cosine[~np.isnan(cosine)]
    if not len(cosine):
        return None
    return "coincide" if bool((cosine >= COINCIDE).all()) else "differ"


def pair_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: the median cosine at each update position (over seeds, checked steps and both
    directions), the lowest cosine, the update positions where some cosine is below :data:`COINCIDE`,
    how many cosines were checked, and the verdict."""
    updates = sorted(int(u) for u in pairs["update"].unique())
    rows = []
    for a, b in pair_names(pairs):
        part = _pair_rows(pairs, a, b)
        finite = part[~part["cosine"].isna()]
        medians = finite.groupby("update")["cosine"].median()
        below = sorted(int(u) for u in finite.loc[finite["cosine"] < COINCIDE, "update"].unique())
        directions = part[["variant", "other"]].drop_duplicates()
        rows.append(
            {
                "pair": f"{label(a)} - {label(b)}",
                **{f"update {u}": _cosine(medians.get(u, np.nan)) for u in updates},
                "lowest": _cosine(finite["cosine"].min() if len(finite) else np.nan),
                "below 0.99 at updates": ", ".join(map(str, below)) or "none",
                "cosines checked": f"{len(finite)} ({part['step'].nunique()} steps, {part['seed'].nunique()} seeds, "
                f"{len(directions)} direction{'s' if len(directions) != 1 else ''})",
                "verdict": pair_verdict(pairs, a, b) or "not checked",
            }
        )
    return pd.DataFrame(rows)


def _cosine(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def pairs_text(pairs: pd.DataFrame, updates_per_batch: int | None = None) -> str:
    """The per-pair table in Markdown, with the rule it applies and a sentence naming the coinciding pairs."""
    summary = pair_summary(pairs)
    same = summary.loc[summary["verdict"] == "coincide", "pair"].tolist()
    per_batch = f" of the {updates_per_batch} per rollout batch" if updates_per_batch else ""
    lines = [
        "Per pair of algorithms, the cosine between their parameter-gradient directions on the same rollout "
        "batch and the same old/anchor log-probs, from one algorithm's parameters and optimiser state, at each "
        f"update position{per_batch}: the median over seeds, checked steps and both directions. A pair "
        f"*coincides* when every cosine is >= {COINCIDE:g}; its comparisons read {COINCIDE_NOTE!r} in every "
        "table and claim below.",
        "",
        f"**Coinciding pairs: {', '.join(same)}.**" if same else "**No pair coincides: every pair differs.**",
        "",
        markdown_table(summary),
    ]
    return "\n".join(lines)
