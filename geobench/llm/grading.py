"""Answer extraction and grading (math-verify), and the optional reward shaping.

Correctness is decided by HuggingFace's ``math-verify`` (symbolic equivalence, so
``\\frac12``, ``0.5`` and ``\\boxed{1/2}`` agree), never by string comparison.
"""

from __future__ import annotations

import re
from functools import lru_cache

from math_verify import parse, verify

REWARDS = ("correct", "shaped", "digits", "good-accuracy")
# The authors' "good_accuracy" reward (their verl reward module, "Improved Good Accuracy"): the
# constants of its signature, which their configs leave at these defaults.
GOOD_ACCURACY = {"ngram": 4, "threshold": 0.3, "threshold_penalty": -0.5, "max_penalty": -0.5, "scale": 0.5}
LENGTH_SCALE, LENGTH_MAX = 2000.0, 0.1  # length credit min(len(chars) / 2000, 0.1)
DIGIT_CREDIT = 0.5  # ours: the most a wrong answer earns under "digits", so a correct one always stands apart
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1 : i]
    return None


def extract_answer(completion: str) -> str | None:
    """The final answer of a completion: the last ``\\boxed{}`` if any, else the last number."""
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(completion)
    return numbers[-1] if numbers else None


@lru_cache(maxsize=1 << 16)
def _parsed(answer: str) -> tuple:
    """math-verify's parse of one answer, cached: answers repeat a lot, and parsing dominates a CPU step."""
    return tuple(parse(f"${answer}$"))


def is_correct(completion: str, gold: str) -> bool:
    """True when the completion's final answer is mathematically equal to ``gold`` (math-verify)."""
    answer = extract_answer(completion)
    if answer is None:
        return False
    gold_parsed = _parsed(gold)
    return bool(gold_parsed) and bool(verify(list(gold_parsed), list(_parsed(answer))))


def ngram_repetition(tokens: list[str], n: int = 4) -> float:
    """Fraction of repeated n-grams: 1 - distinct / total (0 for fewer than n tokens)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def digit_credit(answer: str | None, gold: str) -> float:
    """Share of ``gold``'s digit positions a wrong integer answer gets right, aligned from the units
    digit (as column addition writes them), over the longer of the two: ``digit_credit("843", "853")``
    is 2/3, a missing or non-integer answer 0."""
    if answer is None or not answer.strip().lstrip("-").isdigit() or not gold.strip().lstrip("-").isdigit():
        return 0.0
    a, g = answer.strip()[::-1], gold.strip()[::-1]
    return sum(x == y for x, y in zip(a, g, strict=False)) / max(len(a), len(g))


def good_accuracy(completion: str, correct: bool) -> float:
    """The OPO/ADPO authors' "good_accuracy" reward, exactly as their verl reward function computes it.

    1 for a correct answer. A wrong one gets the length credit ``min(len(completion) / 2000, 0.1)``
    (characters) plus a repetition term over the 4-grams of its lower-cased whitespace-split words:
    with s = 1 - distinct / total 4-grams, -0.5 flat when s > 0.3, else ``0.5 * (-0.5 * s)`` added to
    the length credit. Fewer than 4 words: no repetition term. Only the grader differs from theirs
    (math-verify on the last ``\\boxed{}`` here; theirs is verl's ``prime_math`` on the first, unnested).
    """
    if correct:
        return 1.0
    constants = GOOD_ACCURACY
    length = min(len(completion) / LENGTH_SCALE, LENGTH_MAX)
    words = completion.lower().split()
    if len(words) < constants["ngram"]:
        return length
    repeated = ngram_repetition(words, constants["ngram"])
    if repeated > constants["threshold"]:
        return constants["threshold_penalty"]
    return length + constants["scale"] * constants["max_penalty"] * repeated


def reward(completion: str, gold: str, kind: str = "correct", max_chars: int = 0) -> float:
    """1/0 correctness, the authors' "good_accuracy" (:func:`good_accuracy`), our shaped form, or digit credit.

    ``digits`` (ours, issue 24): 1 for a correct answer, else ``DIGIT_CREDIT`` times the share of
    digit positions right (:func:`digit_credit`). A multi-valued reward, so that listwise weights
    (ADPO, OPO) are not per-group rescalings of GRPO's advantages as they are under 1/0 rewards.

    ``shaped`` (ours, written before the authors' code was read, and not theirs): 1 for a correct
    answer; -0.5 when the 4-gram repetition (over characters of the whitespace-split words) exceeds
    0.3; otherwise a length credit 0.1 * (1 - len / max_chars) that falls with length, where the
    authors' rises (``good-accuracy``).
    """
    if kind == "good-accuracy":
        return good_accuracy(completion, is_correct(completion, gold))
    if is_correct(completion, gold):
        return 1.0
    if kind == "correct":
        return 0.0
    if kind == "digits":
        return DIGIT_CREDIT * digit_credit(extract_answer(completion), gold)
    if ngram_repetition(completion.split() or list(completion)) > 0.3:
        return -0.5
    return 0.1 * max(0.0, 1.0 - len(completion) / max_chars) if max_chars else 0.0
