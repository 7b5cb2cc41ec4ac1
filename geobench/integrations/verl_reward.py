"""verl reward function: geobench's math-verify grader, so verl runs score answers as geobench does.

Point verl at it with ``reward.custom_reward_function.path=<this file>`` and
``reward.custom_reward_function.name=compute_score`` (``geobench verl overrides`` adds both).
"""

from __future__ import annotations

from typing import Any

from geobench.llm.grading import reward


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Any = None,
    kind: str = "correct",
    max_chars: int = 0,
    **_: Any,
) -> float:
    """The loop's reward ``kind`` (LLMConfig.reward, passed as ``reward_kwargs.kind`` by the generated
    config) of the response against ``ground_truth``: 1.0 / 0.0 correctness (math-verify) by default."""
    return float(reward(solution_str, str(ground_truth), kind, max_chars))
