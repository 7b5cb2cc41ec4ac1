"""The held-out problems a cell's ``heldout_accuracy`` is measured on (greedy, every ``eval_every`` steps)."""

from __future__ import annotations

import random

from geobench.llm.problem import Problem
from geobench.llm.settings import LLMConfig
from geobench.llm.tasks import make_task


def held_out_problems(config: LLMConfig, task, seed: int) -> list[Problem]:
    """``eval_prompts`` problems of ``config.eval_levels`` (empty: of the training ``task`` itself), drawn
    from a stream of their own per seed, apart from the training prompts' stream (``random.Random(seed)``)."""
    source = make_task(config.dataset, config.eval_levels) if config.eval_levels else task
    return source.sample(config.eval_prompts, random.Random(10_000 + seed))
