"""Verifiable math tasks: the built-in arithmetic generator and MATH-lighteval.

A task yields :class:`Problem` s (a prompt and its gold answer); rewards come from
:mod:`geobench.llm.grading`. The arithmetic task needs no network and no download, so the
quick profile runs anywhere; MATH is loaded through ``datasets`` only when asked for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from geobench.errors import ConfigError
from geobench.llm.grading import last_boxed

MATH_HUB_ID = "DigitalLearningGmbH/MATH-lighteval"
# The OPO/ADPO runs ask the chat model to box its answer (the authors' open-r1 recipe).
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str
    level: int


def arithmetic_problem(rng: random.Random, level: int) -> Problem:
    """One seeded integer-arithmetic problem; the prompt ends with '=' and the answer is exact.

    Levels: 1 a+b (one digit); 2 a+b or a-b (up to 19); 3 a*b+c (one digit each);
    4 (a+b)*c-d (one digit each). Each level needs one more carried or multiplied step.
    """
    d = lambda hi=9: rng.randint(0, hi)  # noqa: E731
    if level == 1:
        a, b = d(), d()
        expr, value = f"{a}+{b}", a + b
    elif level == 2:
        a, b = d(19), d(19)
        op = rng.choice("+-")
        expr, value = f"{a}{op}{b}", a + b if op == "+" else a - b
    elif level == 3:
        a, b, c = d(), d(), d()
        expr, value = f"{a}*{b}+{c}", a * b + c
    elif level == 4:
        a, b, c, e = d(), d(), d(), d()
        expr, value = f"({a}+{b})*{c}-{e}", (a + b) * c - e
    else:
        raise ConfigError(f"arithmetic level must be 1-4; got {level}")
    return Problem(prompt=f"{expr}=", answer=str(value), level=level)


class ArithmeticTask:
    """An endless seeded stream of arithmetic problems over the given levels (uniform mix)."""

    name = "arithmetic"

    def __init__(self, levels: tuple[int, ...] = (1, 2, 3, 4)):
        for level in levels:
            if level not in (1, 2, 3, 4):
                raise ConfigError(f"arithmetic levels must be among 1,2,3,4; got {level}")
        self.levels = levels

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        return [arithmetic_problem(rng, rng.choice(self.levels)) for _ in range(n)]

    def completion(self, problem: Problem) -> str:
        """The supervised completion for the warm start: the bare answer."""
        return problem.answer


class MathTask:
    """MATH-lighteval problems of the given levels, gold answers from the solutions' last ``\\boxed{}``."""

    name = "math-lighteval"

    def __init__(self, problems: list[Problem]):
        if not problems:
            raise ConfigError("the MATH dataset has no problems at the requested levels")
        self.problems = problems

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        return [rng.choice(self.problems) for _ in range(n)]

    def completion(self, problem: Problem) -> str:
        return f"\\boxed{{{problem.answer}}}"


def load_math(source: str, levels: tuple[int, ...], split: str = "train") -> MathTask:
    """MATH-lighteval from the hub id, a ``save_to_disk`` folder, or a .jsonl/.parquet file.

    Rows need ``problem``, ``solution`` and ``level`` ("Level 3") columns, as the hub copy has.
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError("--dataset math-lighteval needs the `datasets` package: pip install datasets") from None
    path = Path(source)
    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                data = data[split]
        elif path.suffix in (".jsonl", ".json", ".parquet"):
            kind = "parquet" if path.suffix == ".parquet" else "json"
            data = datasets.load_dataset(kind, data_files=str(path), split="train")
        else:
            data = datasets.load_dataset(MATH_HUB_ID if source == "math-lighteval" else source, split=split)
    except Exception as error:  # datasets raises many types for "not here and no network"
        raise ConfigError(
            f"could not load {source!r} ({type(error).__name__}); without network, save MATH-lighteval "
            f"with datasets' save_to_disk on a machine that has it and pass --dataset PATH"
        ) from None
    missing = {"problem", "solution", "level"} - set(data.column_names)
    if missing:
        raise ConfigError(f"dataset {source!r} lacks columns {sorted(missing)}")
    wanted = {f"Level {lv}" for lv in levels}
    problems = []
    for row in data:
        answer = last_boxed(row["solution"])
        if row["level"] in wanted and answer is not None:
            prompt = f"{row['problem']}\n{MATH_INSTRUCTION}"
            problems.append(Problem(prompt=prompt, answer=answer, level=int(row["level"].split()[-1])))
    return MathTask(problems)


def make_task(dataset: str, levels: tuple[int, ...]) -> ArithmeticTask | MathTask:
    """``arithmetic`` (built in) or MATH (``math-lighteval`` or a local path)."""
    if dataset == "arithmetic":
        return ArithmeticTask(levels)
    return load_math(dataset, levels)
