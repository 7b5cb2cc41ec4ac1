"""A few of each LLM cell's completions, so that a reader sees what the policy writes as it trains.

At step 1, every ``eval_every`` steps and the last step, the first completion of each of the step's
first ``PER_STEP`` prompts (the same prompts for every algorithm at a given seed) is kept with its
task reward, its length in tokens and whether it was cut at ``max_new_tokens``. A cell therefore
keeps at most ``PER_STEP * (steps // eval_every + 2)`` records (22 for the quick profile's 100 steps),
each completion at most ``max_new_tokens`` tokens long. The driver writes a cell's records beside
its metrics (``cells/<config hash>/<cell>.samples.jsonl``, before the metrics, so a cell counted as
done has them) and merges every finished cell's into ``DIR/samples.jsonl`` when the sweep ends, as
it merges the CSVs: a resumed sweep keeps the records of the cells it skips.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from geobench.llm.rollout import Rollouts
from geobench.results import atomic_write_text

PER_STEP = 2
FILE = "samples.jsonl"
FIELDS = ("variant", "seed", "step", "prompt", "completion", "reward", "length", "truncated")
_CELL_SUFFIX = ".samples.jsonl"


def due(step: int, steps: int, eval_every: int) -> bool:
    """Whether step ``step`` (1-based) of ``steps`` keeps samples: the first, every evaluation, the last."""
    return step == 1 or step % eval_every == 0 or step == steps


def completions(step: int, seed: int, prompts: Sequence[str], rolled: Rollouts, rewards: Tensor) -> list[dict]:
    """The first completion of each of the first :data:`PER_STEP` of a step's B prompts, with its (B*G,)
    task reward (rows prompt-major: row = b * G + g)."""
    group = len(rolled.texts) // len(prompts)
    lengths = rolled.lengths
    return [
        {
            "seed": seed,
            "step": step,
            "prompt": prompts[b],
            "completion": rolled.texts[b * group],
            "reward": float(rewards[b * group]),
            "length": int(lengths[b * group]),
            "truncated": bool(rolled.truncated[b * group]),
        }
        for b in range(min(PER_STEP, len(prompts)))
    ]


def cell_path(cell_csv: Path) -> Path:
    """Where a cell's records live: beside its CSV, ``<cell>.samples.jsonl``."""
    return cell_csv.with_name(cell_csv.name.removesuffix(".csv") + _CELL_SUFFIX)


def write_cell(cell_csv: Path, key: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> None:
    """A cell's records, each with the cell's key, as JSON lines (atomically); nothing if it kept none."""
    lines = [_line({**record, **key}) for record in records]
    if lines:
        atomic_write_text(cell_path(cell_csv), "".join(lines))


def merge(cells: Path, out: Path) -> Path | None:
    """Every finished cell's records under ``cells`` (a cell's CSV beside them), in cell order, into ``out``;
    None (and no file) when no cell kept any."""
    parts = sorted(p for p in cells.glob(f"*{_CELL_SUFFIX}") if p.with_name(_csv_name(p)).exists())
    if not parts:
        return None
    atomic_write_text(out, "".join(p.read_text(encoding="utf-8") for p in parts))
    return out


def _csv_name(samples: Path) -> str:
    return samples.name.removesuffix(_CELL_SUFFIX) + ".csv"


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps({field: record.get(field) for field in FIELDS}, ensure_ascii=False) + "\n"
