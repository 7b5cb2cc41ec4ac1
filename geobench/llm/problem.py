"""One verifiable problem: what every task yields (:mod:`geobench.llm.tasks`, :mod:`geobench.llm.gym_tasks`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str
    level: int
