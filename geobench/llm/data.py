"""Which problems a cell trains on, in which order, for how many steps, and which it is evaluated on.

Two ways through the training prompts (``LLMConfig.data_epochs``):

- 0: ``steps`` batches drawn with replacement from the task (a built-in generator's endless stream,
  or a fixed dataset's problems), as every run before issue 25 did.
- N > 0: N passes over a fixed training set, each a fresh shuffle without replacement, seeded by the
  cell's seed so every algorithm at a seed sees the same order. The run lasts
  ``ceil(N * len(train) / prompts_per_step)`` steps (the last batch may be short), or ``steps`` if
  that is fewer: ``steps`` caps a scaled-down run.

Held-out accuracy (``LLMConfig.eval_split``; at ``eval_levels`` if given, else the training levels):
"" is every earlier run's draw from the task with a seed apart (fresh problems for a built-in
generator; for a fixed dataset its training pool, so the paper profiles never use it); "test" is a
fixed dataset's test split at the same levels and "math-500" MATH-500, each with any problem whose
prompt is also a training prompt dropped.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from geobench.errors import ConfigError
from geobench.llm.tasks import MathTask, Problem, load_math, make_task

MATH_500_ID = "HuggingFaceH4/MATH-500"  # Lightman et al.'s 500 MATH test problems; one "test" split
EVAL_SPLITS = ("", "test", "math-500")


def pass_order(n: int, epochs: int, seed: int) -> list[int]:
    """(epochs * n,) indices: ``epochs`` shuffles of range(n) without replacement, one after another."""
    rng = random.Random(f"data-epochs-{seed}")
    order: list[int] = []
    for _ in range(epochs):
        shuffled = list(range(n))
        rng.shuffle(shuffled)
        order += shuffled
    return order


@dataclass
class Passes:
    """A fixed training set handed out in pass order; ``sample`` takes the task's signature, ignores its rng."""

    problems: list[Problem]
    order: list[int]
    at: int = 0

    def sample(self, n: int, rng: random.Random | None = None) -> list[Problem]:
        batch = [self.problems[i] for i in self.order[self.at : self.at + n]]
        self.at += len(batch)
        return batch


def training_problems(task, data_epochs: int, seed: int):
    """What a cell's training batches come from: the task itself (``data_epochs`` 0) or its passes."""
    if not data_epochs:
        return task
    problems = fixed_problems(task)
    return Passes(problems, pass_order(len(problems), data_epochs, seed))


def fixed_problems(task) -> list[Problem]:
    """A fixed dataset's training problems; one line for an endless generator, which has no epochs."""
    if not isinstance(task, MathTask):
        raise ConfigError(
            f"data_epochs needs a fixed training set (MATH or a dataset file); {task.name} is an endless "
            "generator, so set data_epochs = 0 and a number of steps"
        )
    return task.problems


def run_steps(steps: int, task, data_epochs: int, prompts_per_step: int) -> int:
    """The steps a cell runs: ``steps``, or with ``data_epochs`` the passes' batches, capped at ``steps``."""
    if not data_epochs:
        return steps
    return min(steps, math.ceil(data_epochs * len(fixed_problems(task)) / prompts_per_step))


def eval_task(task, dataset: str, levels: tuple[int, ...], eval_split: str, eval_levels: tuple[int, ...] = ()):
    """The task held-out problems come from: the task itself (""), a fixed dataset's test split or MATH-500;
    with ``eval_levels``, at those levels instead of the training ones (OPO v5's Experiment 2)."""
    if eval_levels:
        levels = eval_levels
        if not eval_split:  # the same source at other levels: a generator's, or the dataset's own split
            return make_task(dataset, levels)
    if not eval_split:
        return task
    if not isinstance(task, MathTask):
        if eval_split:
            raise ConfigError(
                f"eval_split = {eval_split!r} is for a fixed dataset; {task.name} draws fresh held-out "
                "problems from its generator, so leave eval_split empty"
            )
        return task
    if eval_split == "math-500":
        return load_math(MATH_500_ID, levels, split="test")
    return load_math(dataset, levels, split="test")


def held_out_problems(task, held, n: int, seed: int) -> list[Problem]:
    """``n`` held-out problems from the eval task ``held`` (:func:`eval_task`), none a training prompt of ``task``.

    A generator draws them as the loop always has (``Random(10_000 + seed)``, with replacement); a
    fixed test set gives ``min(n, its size)`` distinct problems, a seeded sample.
    """
    rng = random.Random(10_000 + seed)
    if held is task or not isinstance(held, MathTask):  # eval_split "": the draw every earlier run made
        return held.sample(n, rng)  # (a generator at eval_levels draws the same way, at its levels)
    train = {p.prompt for p in task.problems}
    pool = [p for p in held.problems if p.prompt not in train]
    if not pool:
        raise ConfigError("every held-out problem is also a training prompt; give a test split disjoint from training")
    return rng.sample(pool, min(n, len(pool)))
