"""verl reward function: geobench's math-verify grader, so verl runs score answers as geobench does.

Point verl at it with ``reward.custom_reward_function.path=<this file>`` and
``reward.custom_reward_function.name=compute_score`` (``geobench verl overrides`` adds both).
"""

from __future__ import annotations

from typing import Any

from geobench.llm.grading import is_correct


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None, **_: Any) -> float:
    """1.0 when the response's final answer equals ``ground_truth`` (math-verify), else 0.0."""
    return float(is_correct(solution_str, str(ground_truth)))
