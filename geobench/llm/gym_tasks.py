"""reasoning-gym's procedural tasks as datasets: ``--dataset reasoning-gym:<task>`` (optional extra).

reasoning-gym (Apache-2.0) generates each item offline from a seed and an index, so a task here is
a seeded stream like the built-in ones. Only tasks with a difficulty knob and a short integer
answer are offered (:data:`GYM_TASKS`); ``levels`` sets the knob (digits per term, or the size of
the numbers). The prompt is the item's expression written compactly for the character-level model
(``"57+87+70="``), not reasoning-gym's English question.

Grading is geobench's own (:func:`geobench.llm.grading.is_correct`): the completion's final answer
equal to the gold integer, an exact match, so ``"11"`` earns 0 against ``"1"``. reasoning-gym's
default ``score_answer`` is not used: it gives partial credit for substrings (``"11"`` scores 0.5
against ``"1"``), which a policy can collect by writing more digits than the answer has, a reward
hack. (The ``digits`` reward, if chosen, credits digit positions by design; accuracy stays exact.)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from geobench.errors import ConfigError
from geobench.llm.problem import Problem

PREFIX = "reasoning-gym:"
EXTRA = "pip install 'geobench[reasoning-gym]'"
# Items are reasoning-gym's ds[index] for an index drawn from the task's stream; items repeat
# only when an index does (one in a million per draw).
INDICES = 1_000_000


def _compact(expression: str) -> str:
    return expression.replace(" ", "")


@dataclass(frozen=True)
class GymKnob:
    """How one reasoning-gym task is offered: its levels, the generator's settings at a level, the prompt."""

    levels: tuple[int, ...]
    settings: Callable[[int], dict[str, Any]]
    prompt: Callable[[Mapping[str, Any]], str]  # from an item's metadata


def _digits(level: int, terms: tuple[int, int]) -> dict[str, Any]:
    # ours: 2-3 terms keep a prompt under ~20 characters at 4 digits, within the tiny model's 80 positions
    return {"min_digits": level, "max_digits": level, "min_terms": terms[0], "max_terms": terms[1]}


GYM_TASKS: dict[str, GymKnob] = {
    "chain_sum": GymKnob((1, 2, 3, 4), lambda lv: _digits(lv, (2, 3)), lambda m: _compact(m["expression"]) + "="),
    "basic_arithmetic": GymKnob(
        (1, 2, 3, 4), lambda lv: _digits(lv, (2, 3)), lambda m: _compact(m["expression"]) + "="
    ),
    "products": GymKnob((1, 2, 3, 4), lambda lv: _digits(lv, (2, 2)), lambda m: _compact(m["expression"]) + "="),
    # level L: two numbers in [1, 10^L]
    "gcd": GymKnob(
        (1, 2, 3, 4),
        lambda lv: {"min_value": 1, "max_value": 10**lv},
        lambda m: "gcd(" + ",".join(str(n) for n in m["numbers"]) + ")=",
    ),
    # level L: coefficients and solution in [1, 10^L]; the prompt names the unknown: "56-98*e=-1218;e="
    "simple_equations": GymKnob(
        (1, 2, 3),
        lambda lv: {"min_value": 1, "max_value": 10**lv},
        lambda m: f"{_compact(m['equation'])};{m['variable']}=",
    ),
}


@cache
def _generator(task: str, level: int) -> Any:
    """reasoning-gym's dataset of ``task`` at ``level``; its seed is the level, so levels differ in items."""
    try:
        import reasoning_gym
    except ImportError:
        raise ConfigError(f"--dataset {PREFIX}{task} needs the reasoning-gym extra: {EXTRA}") from None
    return reasoning_gym.create_dataset(task, seed=level, size=INDICES, **GYM_TASKS[task].settings(level))


class GymTask:
    """A seeded stream of one reasoning-gym task's items over the given levels (uniform mix)."""

    def __init__(self, task: str, levels: tuple[int, ...]):
        knob = GYM_TASKS[task]
        for level in levels:
            if level not in knob.levels:
                raise ConfigError(f"{PREFIX}{task} levels must be among {','.join(map(str, knob.levels))}; got {level}")
        self.name, self.task, self.levels, self.knob = f"{PREFIX}{task}", task, levels, knob
        for level in levels:
            _generator(task, level)  # a missing extra fails here, once

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        problems = []
        for _ in range(n):
            level = rng.choice(self.levels)
            item = _generator(self.task, level)[rng.randrange(INDICES)]
            problems.append(Problem(self.knob.prompt(item["metadata"]), str(item["answer"]), level))
        return problems

    def completion(self, problem: Problem, rng: random.Random | None = None) -> str:
        """A supervised completion (for an SFT of one's own model): the boxed answer."""
        return f"\\boxed{{{problem.answer}}}"


def make_gym_task(dataset: str, levels: tuple[int, ...]) -> GymTask:
    """``reasoning-gym:<task>`` at ``levels``, or one line naming the valid tasks or the missing extra."""
    task = dataset.removeprefix(PREFIX)
    if task not in GYM_TASKS:
        raise ConfigError(f"unknown reasoning-gym task {task!r}; valid: {', '.join(GYM_TASKS)}")
    return GymTask(task, levels)
