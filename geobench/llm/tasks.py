"""Verifiable math tasks: the built-in arithmetic generator and MATH-lighteval.

A task yields :class:`Problem` s (a prompt and its gold answer); rewards come from
:mod:`geobench.llm.grading`. The arithmetic task needs no network and no download, so the
quick profile runs anywhere; MATH is loaded through ``datasets`` only when asked for.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from geobench.errors import ConfigError
from geobench.llm import gym_tasks, hub
from geobench.llm.grading import last_boxed
from geobench.llm.problem import Problem

MATH_HUB_ID = "DigitalLearningGmbH/MATH-lighteval"
# The OPO/ADPO runs ask the chat model to box its answer (the authors' open-r1 recipe).
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


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

    def completion(self, problem: Problem, rng: random.Random | None = None) -> str:
        """The supervised completion for the warm start: the bare answer."""
        return problem.answer


def column_addition(rng: random.Random, level: int) -> Problem:
    """One seeded addition of two ``level``-digit numbers (level 1: 0-9); prompt ``"457+386="``."""
    if level not in COLUMN_LEVELS:
        raise ConfigError(f"column-addition levels are digits per operand, 1-{COLUMN_LEVELS[-1]}; got {level}")
    low = 0 if level == 1 else 10 ** (level - 1)
    a, b = rng.randint(low, 10**level - 1), rng.randint(low, 10**level - 1)
    return Problem(prompt=f"{a}+{b}=", answer=str(a + b), level=level)


def column_trace(problem: Problem) -> str:
    """The step-by-step solution: one column per step, right to left, carry added explicitly.

    ``457+386=`` -> ``7+6=13;5+8+1=14;4+3+1=8;\\boxed{843}``. Each step needs one digit of
    each operand (found by position), one single-digit sum and the previous carry, so a
    small transformer can learn it; the terse form must add whole numbers in one go.
    """
    left, right = problem.prompt.rstrip("=").split("+")
    steps, carry = [], 0
    for x, y in zip(reversed(left), reversed(right), strict=True):
        total = int(x) + int(y) + carry
        steps.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={total}")
        carry = total // 10
    return ";".join(steps) + f";\\boxed{{{problem.answer}}}"


COLUMN_LEVELS = (1, 2, 3, 4)


class ColumnAdditionTask:
    """Multi-digit addition whose solutions are reasoning traces of variable length.

    The difficulty knob is ``levels`` (digits per operand). Warm-start completions mix two
    styles: the terse ``\\boxed{843}`` (11 tokens at 3 digits) and the column-by-column trace
    (36 tokens at 3 digits), chosen with probability ``trace_fraction``, so RL starts from a
    policy with two behaviours of different length and accuracy to choose between.
    """

    name = "column-addition"

    def __init__(self, levels: tuple[int, ...] = COLUMN_LEVELS, trace_fraction: float = 0.5):
        for level in levels:
            if level not in COLUMN_LEVELS:
                raise ConfigError(f"column-addition levels must be among 1,2,3,4; got {level}")
        if not 0.0 <= trace_fraction <= 1.0:
            raise ConfigError(f"trace_fraction must be in [0, 1]; got {trace_fraction}")
        self.levels, self.trace_fraction = levels, trace_fraction

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        return [column_addition(rng, rng.choice(self.levels)) for _ in range(n)]

    def completion(self, problem: Problem, rng: random.Random | None = None) -> str:
        """A supervised completion: the trace with probability ``trace_fraction``, else terse."""
        trace = (rng or random.Random(0)).random() < self.trace_fraction
        return column_trace(problem) if trace else f"\\boxed{{{problem.answer}}}"


class MathTask:
    """MATH-lighteval problems of the given levels, gold answers from the solutions' last ``\\boxed{}``."""

    name = "math-lighteval"

    def __init__(self, problems: list[Problem]):
        if not problems:
            raise ConfigError("the MATH dataset has no problems at the requested levels")
        self.problems = problems

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        return [rng.choice(self.problems) for _ in range(n)]

    def completion(self, problem: Problem, rng: random.Random | None = None) -> str:
        return f"\\boxed{{{problem.answer}}}"


LOCAL_FORMATS = (".jsonl", ".json", ".parquet")


def load_math(source: str, levels: tuple[int, ...], split: str = "train") -> MathTask:
    """MATH-lighteval from the hub id, a ``save_to_disk`` folder, or a .jsonl/.parquet file.

    Rows need ``problem``, ``solution`` and ``level`` ("Level 3", or 3 as MATH-500 has) columns, as
    the hub copy has. ``split`` picks the hub's or a saved DatasetDict's split; a file or a single
    saved dataset with a ``split`` column keeps the rows of that split, one without holds training
    rows only (asking it for another split is one line).
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError("--dataset math-lighteval needs the `datasets` package: pip install datasets") from None
    path = Path(source)
    local = path.exists() or path.suffix in LOCAL_FORMATS
    if local and not path.exists():
        raise ConfigError(f"dataset file {path} not found; check --dataset")
    if path.is_file() and path.suffix not in LOCAL_FORMATS:
        raise ConfigError(f"dataset file {path} is not .jsonl, .json or .parquet; convert it or check --dataset")
    if path.is_file() and path.stat().st_size == 0:
        raise ConfigError(f"dataset file {path} is empty; it needs rows with problem, solution and level")
    if path.is_file() and path.suffix != ".parquet":
        _require_utf8(path)
    hub_id = MATH_HUB_ID if source == "math-lighteval" else source
    if not local:
        hub.require_hub(hub_id, "--dataset")
    datasets.disable_progress_bars()  # "Generating train split" bars on stderr, one per load
    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                data, local = data[split], False  # the split is picked; no split column to read
        elif local:
            kind = "parquet" if path.suffix == ".parquet" else "json"
            data = datasets.load_dataset(kind, data_files=str(path), split="train")
        else:
            data = datasets.load_dataset(hub_id, split=split)
    except Exception as error:  # datasets raises many types for "not here and no network"
        if local:  # nothing to do with the network: the file or folder itself is not a dataset
            raise ConfigError(
                f"cannot read dataset {path} ({type(error).__name__}); it needs rows with problem, solution and "
                "level, as a .jsonl, .json or .parquet file or a datasets save_to_disk folder"
            ) from None
        raise ConfigError(
            hub.offline_miss(hub_id, "--dataset")
            or f"could not load {source!r} ({type(error).__name__}); without network, save MATH-lighteval "
            f"with datasets' save_to_disk on a machine that has it and pass --dataset PATH"
        ) from None
    if len(data) == 0:
        raise ConfigError(f"dataset {source!r} is empty; it needs rows with problem, solution and level")
    missing = {"problem", "solution", "level"} - set(data.column_names)
    if missing:
        raise ConfigError(f"dataset {source!r} lacks columns {sorted(missing)}")
    if local:
        data = _split_rows(data, split, source)
    at_levels = [row for row in data if math_level(row["level"]) in levels]
    if not at_levels:
        raise ConfigError(_no_levels(source, levels, list(data["level"])))
    problems = []
    for row in at_levels:
        answer = last_boxed(row["solution"]) if isinstance(row["solution"], str) else None
        if answer is not None:
            prompt = f"{row['problem']}\n{MATH_INSTRUCTION}"
            problems.append(Problem(prompt=prompt, answer=answer, level=math_level(row["level"])))
    if not problems:
        raise ConfigError(
            f"dataset {source!r}: none of the {len(at_levels)} solutions at levels {_levels(levels)} has a "
            "\\boxed{...} answer; the gold answer is a solution's last \\boxed{...}, as MATH's solutions end"
        )
    return MathTask(problems)


def math_level(value) -> int | None:
    """A MATH row's level: "Level 3" (MATH, MATH-lighteval) or 3 (MATH-500); None for "Level ?"."""
    text = str(value).removeprefix("Level").strip()
    return int(text) if text.isdigit() else None


def _split_rows(data, split: str, source: str):
    """A local dataset's rows of ``split``: by its ``split`` column, or all of them as training rows."""
    if "split" in data.column_names:
        return data.select([i for i, name in enumerate(data["split"]) if name == split])
    if split != "train":
        raise ConfigError(
            f"dataset {source!r} has no split column, so no {split!r} rows to evaluate on; add a split column "
            "(train / test) or set eval_split = 'math-500'"
        )
    return data


def _levels(levels: tuple[int, ...]) -> str:
    return ",".join(map(str, levels))


def _no_levels(source: str, levels: tuple[int, ...], found: list) -> str:
    """Why no row is at ``levels``: levels written neither as MATH ("Level 3") nor as MATH-500 (3) writes
    them, or other levels."""
    odd = next((v for v in found if not _level_like(v)), None)
    if odd is not None:
        return (
            f'dataset {source!r}: level {odd!r} ({type(odd).__name__}) is neither text like "Level 3" nor an '
            'integer; write each row\'s level as MATH-lighteval ("Level N") or MATH-500 (N) does'
        )
    have = ", ".join(sorted({str(v) for v in found})[:8])
    return f"dataset {source!r} has no problems at levels {_levels(levels)}; its levels are {have}; check --levels"


def _level_like(value) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"Level \S+", value) is not None)


def _require_utf8(path: Path) -> None:
    """A .jsonl/.json dataset is UTF-8 text, or one line naming the byte (pyarrow fails on it mid-read)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"dataset file {path} is not UTF-8 text: byte 0x{raw[error.start]:02x} at line {line} "
            f"(offset {error.start}); save it as UTF-8"
        ) from None


BUILT_IN = ("arithmetic", "column-addition")


def make_task(
    dataset: str, levels: tuple[int, ...]
) -> ArithmeticTask | ColumnAdditionTask | MathTask | gym_tasks.GymTask:
    """A built-in task (``arithmetic``, ``column-addition``), a reasoning-gym task
    (``reasoning-gym:<task>``) or MATH (``math-lighteval`` or a path)."""
    if dataset.startswith(gym_tasks.PREFIX):
        return gym_tasks.make_gym_task(dataset, levels)
    if dataset == "arithmetic":
        return ArithmeticTask(levels)
    if dataset == "column-addition":
        return ColumnAdditionTask(levels)
    return load_math(dataset, levels)
