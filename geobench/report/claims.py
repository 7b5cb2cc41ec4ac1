"""Claims as data: each claim of the papers is a row of ``experiments/paper/*_claims.csv``, judged by a named rule.

A row names the claim (``claim``, a key), its artifact, the paper's statement (``statement``) and
value (``paper``), what of the run it is judged on and the rule's thresholds (the columns in
:data:`PARAMS`, kept as text as the CSV writes them), and the rule that judges it (``rule``, a name
in :data:`RULES`). ``rule_text`` is the rule as the claims table prints it: a ``str.format``
template over the row's parameters and what the rule measured, so a threshold is printed as the
data writes it; ``statement`` and ``ours_text`` (for rules that show scalars) are templates too.
``guards`` names reasons that can void a verdict (see :data:`Guard`): the run cannot test the claim
(it is shorter than the row's ``horizon``, has too few seeds, or the algorithms compared make the
same update), which reads "not testable", or the numbers cannot support it (inconclusive).

A rule is ``rule(context, **params) -> Outcome | None``; the context is what the artifact's report
judges (a run's frame, a conceptual figure's scalars), and ``None`` means the run lacks the claim's
subject, so the claim gets no line. This module holds the evaluator and the rules over scalars; the
rules over a run's frame live beside the code that reads that frame (``llm_report``,
``llm_ablations``, ``bandits_report``, ``toy_figure``, ``mujoco_report``) and register here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from geobench.config import EXPERIMENTS_DIR
from geobench.report.stats import NOT_TESTABLE, sign_verdict

PAPER_DIR = EXPERIMENTS_DIR / "paper"
COLUMNS = ("claim", "paper", "ours", "verdict", "rule")  # a claims table, as every artifact prints it
WITH_ARTIFACT = ("artifact", *COLUMNS)
REPORT_COLUMNS = ("paper", "artifact", "claim", "paper_value", "ours", "verdict", "rule")  # REPORT.md's table
PARAMS = (  # the row columns a rule takes, as keywords
    # what of the run the claim is judged on
    "subject",
    "versus",
    "metric",
    "statistic",
    "scenario",
    "quantity",
    "target",
    "p_from",
    "z_from",
    "z_to",
    # the thresholds, and on which side of them the claim holds
    "threshold",
    "lower",
    "upper",
    "out_of",
    "direction",
)
_DIRECTIONS = {"above": 1, "below": -1}


@dataclass(frozen=True)
class Outcome:
    """What a rule found: our number as printed and the verdict.

    ``ours`` None: the row's ``ours_text`` formatted with ``fields``. ``fields`` (what the rule
    measured) fill the row's templates; ``rule`` replaces ``rule_text`` where the run cannot judge the
    claim and says why.
    """

    ours: str | None
    verdict: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    rule: str | None = None


@dataclass(frozen=True)
class Void:
    """Why a verdict cannot count: ``note`` is appended to the rule and ``verdict`` replaces the rule's."""

    note: str
    verdict: str = "inconclusive"


Rule = Callable[..., Outcome | None]
# A reason a verdict cannot count: guard(context, row, verdict) -> a Void, or None; ``row`` is the claim's
# row (every cell as text), so a guard may read columns no rule takes (``horizon``). A row lists its
# guards in ``guards``; "not testable" outranks "inconclusive", whichever guard says it.
Guard = Callable[[Any, Mapping[str, str], str], Void | None]
RULES: dict[str, Rule] = {}
_RANK = {NOT_TESTABLE: 2, "inconclusive": 1}


def rule(name: str) -> Callable[[Rule], Rule]:
    """Register ``fn`` as the rule a claims CSV calls ``name``."""

    def register(fn: Rule) -> Rule:
        if RULES.setdefault(name, fn) is not fn:
            raise ValueError(f"two claim rules are named {name!r}")
        return fn

    return register


def read_claims(stem: str) -> pd.DataFrame:
    """``experiments/paper/<stem>.csv`` as text (a blank cell is ''), so thresholds keep their spelling."""
    return pd.read_csv(PAPER_DIR / f"{stem}.csv", dtype=str, keep_default_na=False)


def text(value: object) -> str:
    """A cell as text: '' for a blank; a number read as one by pandas in its shortest form."""
    if isinstance(value, str):
        return value
    return "" if pd.isna(value) else f"{value:g}"


def verdict_of(holds: bool) -> str:
    """The verdict of an exact check (no CI): it holds or it does not."""
    return "reproduced" if holds else "not reproduced"


def ci_verdict(low: float, high: float, threshold: str, direction: str) -> str:
    """A CI wholly ``direction`` ('above' or 'below') ``threshold`` reproduces the claim, wholly on the
    other side refutes it, and one that straddles it is inconclusive."""
    t = float(threshold)
    return sign_verdict(low - t, high - t, _DIRECTIONS[direction])


def evaluate(
    rows: pd.DataFrame, context: object, guards: Mapping[str, Guard] | None = None, columns: Iterable[str] = ()
) -> pd.DataFrame:
    """Every row judged by its rule on ``context``, then by its guards, in the rows' order.

    Columns: :data:`COLUMNS`, with ``artifact`` in front where the rows name one, then ``columns`` (row
    columns handed on as they are).
    """
    columns = tuple(columns)
    judged = []
    for row in rows.to_dict("records"):
        row = {key: text(value) for key, value in row.items()}
        params = {key: row[key] for key in PARAMS if row.get(key, "")}
        outcome = RULES[row["rule"]](context, **params)
        if outcome is None:
            continue
        values = {**params, **outcome.fields}
        line = {
            "artifact": row.get("artifact", ""),
            "claim": row["statement"].format(**values),
            "paper": row["paper"],
            "ours": row["ours_text"].format(**values) if outcome.ours is None else outcome.ours,
            "verdict": outcome.verdict,
            "rule": row["rule_text"].format(**values) if outcome.rule is None else outcome.rule,
            **{key: row[key] for key in columns},
        }
        for name in row.get("guards", "").split():
            void = (guards or {})[name](context, row, line["verdict"])
            if void is not None:
                line["rule"] = f"{line['rule']}; {void.note}"
                if _RANK.get(void.verdict, 0) >= _RANK.get(line["verdict"], 0):
                    line["verdict"] = void.verdict
        judged.append(line)
    head = WITH_ARTIFACT if "artifact" in rows.columns else COLUMNS
    return pd.DataFrame(judged, columns=[*head, *columns])


def evaluate_each(
    rows: pd.DataFrame, contexts: Iterable[object], guards: Mapping[str, Guard] | None = None
) -> pd.DataFrame:
    """:func:`evaluate` on each context in turn (e.g. per environment), the tables one after the other."""
    tables = [evaluate(rows, context, guards) for context in contexts]
    return pd.concat(tables, ignore_index=True) if tables else evaluate(rows.iloc[:0], None)


# Rules over a mapping of named scalars (a conceptual figure's summary): exact checks, no CIs.


@rule("at_least")
def at_least(scalars: Mapping[str, float], quantity: str, threshold: str) -> Outcome:
    return Outcome(None, verdict_of(scalars[quantity] >= float(threshold)), scalars)


@rule("at_most")
def at_most(scalars: Mapping[str, float], quantity: str, threshold: str) -> Outcome:
    return Outcome(None, verdict_of(scalars[quantity] <= float(threshold)), scalars)


@rule("abs_at_most")
def abs_at_most(scalars: Mapping[str, float], quantity: str, threshold: str) -> Outcome:
    return Outcome(None, verdict_of(abs(scalars[quantity]) <= float(threshold)), scalars)


@rule("close_to")
def close_to(scalars: Mapping[str, float], quantity: str, target: str, threshold: str) -> Outcome:
    """|quantity - target| <= threshold, both named scalars (the target is what theory predicts)."""
    return Outcome(None, verdict_of(abs(scalars[quantity] - scalars[target]) <= float(threshold)), scalars)
