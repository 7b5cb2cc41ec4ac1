"""REPORT.md's section on the battery's report cards, read from the ``verdicts.csv`` beside each card.

The battery (``geobench battery``, the layer above this one) writes ``results/battery/<folder>/``
with ``CARD.md`` and ``verdicts.csv``; the folder names, the file names and the CSV's columns are
declared here, where they are read, and the battery writes to them. The report never parses a card's
Markdown, and reads only the cards of the committed layout: ``<objective>/``, the quick budget over
every experiment. A card at another budget or over some experiments lives beside it and never
overwrites it (:func:`card_folder`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

CARD = "CARD.md"
VERDICTS = "verdicts.csv"
# One row per experiment of a card: status is "run", "not run" or "failed" (the objective's loss was not
# finite there); verdict is the card's one-line answer (for "not run", why; for "failed", the error).
# title is the experiment's heading in the card.
VERDICT_COLUMNS = ["objective", "budget", "experiment", "title", "status", "verdict"]


def card_folder(objective: str, budget: str, experiments: Iterable[str], every: Sequence[str]) -> str:
    """A card's folder under ``results/battery``: ``<objective>`` at the quick budget over ``every``
    experiment; ``<objective>@<budget>`` at another budget; ``+<experiment>`` appended for each one, in
    ``every``'s order, when the card covers only some (``cispo@tiny+toy-saturation+llm``). Registry
    names never hold ``@`` or ``+``, so no two cards share a folder."""
    name = objective if budget == "quick" else f"{objective}@{budget}"
    given = set(experiments)
    chosen = [e for e in every if e in given]
    return name if chosen == list(every) else name + "".join(f"+{e}" for e in chosen)


def _reported(folder: str) -> bool:
    """A card of the committed layout (quick budget, every experiment), not the shared baselines."""
    return folder != "baselines" and "@" not in folder and "+" not in folder


def verdict_lines(verdicts: pd.DataFrame) -> str:
    """A card's verdicts as Markdown bullets: '- **title**: verdict' ('not run (why).', 'failed (error).')."""
    lines = []
    for row in verdicts.itertuples():
        text = row.verdict if row.status == "run" else f"{row.status} ({row.verdict})."
        lines.append(f"- **{row.title}**: {text}")
    return "\n".join(lines)


def read_verdicts(card_folder: Path) -> pd.DataFrame | None:
    """A card folder's ``verdicts.csv`` (every cell a string), or None where the card has none."""
    path = card_folder / VERDICTS
    if not path.exists():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False).reindex(columns=VERDICT_COLUMNS)


_LISTED = 5  # up to this many cards, REPORT.md gives each one's verdicts; more are linked in one line


def _link(card: Path, report: Path) -> Path:
    return Path(os.path.relpath(card.resolve(), report.parent.resolve()))  # movable with its folders


def card_summaries(results: Path, report: Path) -> str:
    """REPORT.md's section on the cards under ``results/battery``: each card's verdicts, linked; '' if none."""
    cards = sorted(p for p in (results / "battery").glob("*/" + CARD) if _reported(p.parent.name))
    if not cards:
        return ""
    if len(cards) > _LISTED:  # the leaderboard's: its section above has the headline, each card is linked
        links = ", ".join(f"[`{c.parent.name}`]({_link(c, report)})" for c in cards)
        return f"## Report cards (`geobench battery`)\n\n{len(cards)} cards, one per objective: {links}.\n"
    lines = ["## Report cards (`geobench battery`)", ""]
    lines.append("Objectives measured beside the papers' baselines; each card has the numbers, CIs and figures.\n")
    for card in cards:
        verdicts = read_verdicts(card.parent)
        text = (
            f"No `{VERDICTS}` beside this card (written before the battery wrote one): "
            f"rerun `geobench battery --algo {card.parent.name}` for its verdicts."
            if verdicts is None
            else verdict_lines(verdicts)
        )
        lines += [f"### [`{card.parent.name}`]({_link(card, report)})", "", text, ""]
    return "\n".join(lines) + "\n"
