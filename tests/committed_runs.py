"""Rerun one cell of a committed run exactly as its sweep runs it, and compare the bytes.

A committed run folder ``results/<...>/run.json`` records its experiment, its resolved config and
how many torch threads its cells ran with. :func:`rerun_one_cell` rebuilds that config through the
catalog's config class (its hash must be the recorded one), copies every committed cell but one
into a fresh run folder, as the sweep would find them after a kill, and calls the catalog's
``Experiment.run`` on it with the serial executor: the sweep resumes the copied cells, computes
the one left out and merges. The merged CSV is then the committed one byte for byte exactly when
the fresh cell's rows are the committed rows of that cell (the copies go through the same
``write_csv`` and merge, which a test below holds too). Tables beside the main CSV that are not
timing (``run.json["tables"]``, the LLM's ``pairs.csv``) are compared the same way; ``timing/``
holds wall-clock and is never compared.

Cells derive their random numbers from their own key and seed; the seeds of a bandit or MuJoCo
cell train stacked in one computation, so a cell is rerun whole, all its seeds.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from geobench import toy
from geobench.bandits import sweep as bandit_sweep
from geobench.bandits.train import METHODS as BANDIT_METHODS
from geobench.config import build
from geobench.distill import sweep as distill_sweep
from geobench.distill.sweep import METHODS as DISTILL_METHODS
from geobench.errors import ConfigError
from geobench.executor import ExecutorConfig
from geobench.experiments import EXPERIMENTS, UPDATE_TIME
from geobench.llm import sweep as llm_sweep
from geobench.llm.metrics import TIMING_METRICS
from geobench.llm.warmstart import warmstart_dir
from geobench.objectives import find_objective
from geobench.objectives.plugins import load_plugin
from geobench.results import RunDir, config_hash

ROOT = Path(__file__).resolve().parents[1]
# An LLM cell is rerun for its first steps only (see _rerun_prefix): step 0's held-out evaluation and
# the rollouts, updates and evaluation of steps 1-10 (eval_every is 10 in the quick profiles).
LLM_PREFIX_STEPS = 10
_FORMAT = "%.10g"  # results.write_csv's float format
WALL_CLOCK = (UPDATE_TIME.name,)  # runs whose values are times: nothing to reproduce byte for byte
# Each sweep's cell key, in the order its run() builds it (the order names the cell's file).
KEYS = {
    "toy-saturation": ("variant", "coordinates"),
    "bandits": ("scenario", "level", "hidden", "variant"),
    "mujoco": ("env", "variant"),
    "llm": ("variant", "seed"),
}
# Second tables a run may record under run.json["tables"]: their cell folder and columns.
TABLES = {"pairs": ("experiment", "variant", "seed", "step", "other", "update", "cosine")}
# Cheapest cells by what they compute, where no committed timing says (see :func:`choose_cell`).
_BANDIT_ORDER = ("grpo", "opo", "dpo-hard", "dpo-soft", "adpo-pairwise", "adpo-listwise-raw")
_MUJOCO_ORDER = ("kd-gaussian", "kd", "adpo-self-anchor", "adpo-self-anchor-ema")
_MUJOCO_ENVS = ("HalfCheetah-v5", "Hopper-v5")  # Hopper collects its states ~2x slower


# The leaderboard's cards (results/battery/<objective>/<experiment>) run one code path per experiment,
# one objective each: these stand for all of them, one per feedback plus the plugin example and the
# newest objectives; GEOBENCH_VERIFY_EVERY_CARD=1 reruns a cell of every card's runs (~15 min more).
SAMPLED_CARDS = ("cispo", "dr-grpo", "ipo", "sft", "aspo")


def committed_runs(results: Path = ROOT / "results", every_card: bool | None = None) -> list[Path]:
    """Every committed run folder: a ``run.json`` beside a CSV, except wall-clock ones (``timing/``
    tables, the interleaved update-time benchmark), and of the battery's cards those of
    :data:`SAMPLED_CARDS` unless ``every_card`` (default: ``$GEOBENCH_VERIFY_EVERY_CARD``)."""
    if every_card is None:
        every_card = os.environ.get("GEOBENCH_VERIFY_EVERY_CARD") == "1"
    runs = [p.parent for p in results.rglob("run.json") if p.parent.name != "timing"]
    if not every_card:
        runs = [r for r in runs if _card(r, results) in (None, *SAMPLED_CARDS)]
    return sorted(r for r in runs if json.loads((r / "run.json").read_text())["experiment"] not in WALL_CLOCK)


def _card(run: Path, results: Path) -> str | None:
    """The objective of a card's run (``battery/<objective>/<experiment>``), None for any other run."""
    parts = run.relative_to(results).parts
    return parts[1] if len(parts) == 3 and parts[0] == "battery" and parts[1] != "baselines" else None


@dataclass(frozen=True)
class Rerun:
    """What one rerun compared: the run, the cell, the files and the first difference, if any."""

    run: str
    cell: dict[str, Any]
    seconds: float
    differences: dict[str, str | None]  # CSV name -> first differing line, None when byte-identical


def rerun_one_cell(run: Path, scratch: Path) -> Rerun:
    """Rerun the cheapest cell of the committed run folder ``run`` in ``scratch`` (see the module)."""
    meta = json.loads((run / "run.json").read_text())
    name = meta["experiment"]
    if name not in EXPERIMENTS or name not in KEYS:
        raise ConfigError(f"{run}: experiment {name!r} has no rerun here; add its cell key to tests/committed_runs.py")
    experiment = EXPERIMENTS[name]
    _load_plugins(meta, experiment.methods_field)
    config = build(experiment.config_class, meta["config"], f"{run}/run.json")
    if config_hash(config) != meta["config_hash"]:
        raise ConfigError(
            f"{run}: its config rebuilds to hash {config_hash(config)}, run.json says {meta['config_hash']}"
        )
    committed = pd.read_csv(run / meta["csv"])
    key = choose_cell(run, meta, committed)
    inputs = cell_inputs(name, config)
    _copy_cells_but(key, committed, RunDir(scratch, name, config, inputs=inputs))
    tables = dict(meta.get("tables", {}))
    for table in tables:
        copy = RunDir(scratch, name, config, table=table, columns=TABLES[table], inputs=inputs)
        _copy_cells_but(key, pd.read_csv(run / f"{table}.csv"), copy)
    threads = int(meta.get("torch_threads", 1))
    if name == "llm" and config.steps > LLM_PREFIX_STEPS:
        return _rerun_prefix(run, scratch, experiment, config, meta, committed, key, threads)
    executor = ExecutorConfig(kind="serial", threads=threads, listener=_OneCell(key))
    start = time.perf_counter()
    experiment.run(config, scratch, profile=meta["profile"], show_progress=False, executor=executor)
    seconds = time.perf_counter() - start
    fresh = json.loads((scratch / "run.json").read_text())
    if (fresh["cells"], fresh["cells_resumed"]) != (meta["cells"], meta["cells"] - 1):
        raise AssertionError(
            f"{run}: expected {meta['cells']} cells with all but {key} resumed; got {fresh['cells']} cells, "
            f"{fresh['cells_resumed']} resumed"
        )
    differences = {meta["csv"]: first_difference(scratch / meta["csv"], run / meta["csv"])}
    for table in tables:
        differences[f"{table}.csv"] = first_difference(scratch / f"{table}.csv", run / f"{table}.csv")
    return Rerun(_name(run), key, seconds, differences)


def _rerun_prefix(
    run: Path,
    scratch: Path,
    experiment: Any,
    config: Any,
    meta: Mapping[str, Any],
    committed: pd.DataFrame,
    key: Mapping[str, Any],
    threads: int,
) -> Rerun:
    """An LLM cell's first :data:`LLM_PREFIX_STEPS` steps, rerun inside its sweep and compared with the
    committed ``metrics.csv`` rows of those steps, value by value as ``write_csv`` prints them.

    An LLM cell is ~100 steps of ~1 s each; its first steps are computed exactly as in the full cell
    (the same config, so the same learning-rate schedule), and the listener that reads every logged
    value stops the cell once they are in. What only the later steps compute is left to the fresh
    clone's ``make reproduce`` that lands each committed run (the pairs table among it)."""
    prefix = _Prefix(key, LLM_PREFIX_STEPS)
    executor = ExecutorConfig(kind="serial", threads=threads, listener=prefix)
    start = time.perf_counter()
    try:
        experiment.run(config, scratch, profile=meta["profile"], show_progress=False, executor=executor)
    except _Enough:
        pass
    else:
        raise AssertionError(f"{run}: the cell {dict(key)} finished before step {LLM_PREFIX_STEPS}")
    seconds = time.perf_counter() - start
    mine = committed
    for column, value in key.items():
        mine = mine[mine[column] == value]
    mine = mine[(mine["step"] <= LLM_PREFIX_STEPS) & ~mine["metric"].isin(TIMING_METRICS)]
    theirs = sorted(f"{int(r.step)},{r.metric},{_FORMAT % r.value}" for r in mine.itertuples())
    ours = sorted(
        f"{step},{metric},{_FORMAT % value}"
        for (step, metric), value in prefix.values.items()
        if metric not in TIMING_METRICS
    )
    difference = None
    if ours != theirs:
        pairs = zip(ours, theirs, strict=False)
        first = next(((a, b) for a, b in pairs if a != b), None)
        difference = f"rerun {first[0]!r}, committed {first[1]!r}" if first else f"{len(ours)} rows vs {len(theirs)}"
    return Rerun(_name(run), dict(key), seconds, {f"{meta['csv']} steps <= {LLM_PREFIX_STEPS}": difference})


class _Enough(BaseException):
    """Raised by :class:`_Prefix` through the serial sweep (a BaseException, so no cell catches it)."""


def _name(run: Path) -> str:
    return str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run)


def cell_inputs(name: str, config: Any) -> Callable[[Mapping[str, Any]], dict[str, str]]:
    """The sweep's own ``key -> inputs`` for a copied cell, so that the sweep takes it as finished at
    this code (an LLM run starts from its ``--model`` or the committed warm start, which is where the
    committed runs started)."""
    if name == "toy-saturation":
        return toy.cell_inputs
    if name == "bandits":
        return bandit_sweep.cell_inputs
    if name == "mujoco":
        return partial(distill_sweep.cell_inputs, config)
    model = config.model or str(warmstart_dir(config.dataset))
    return partial(llm_sweep.cell_inputs, config, model)


def choose_cell(run: Path, meta: Mapping[str, Any], committed: pd.DataFrame) -> dict[str, Any]:
    """The cheapest cell of a run: by the committed step times where the run has them (LLM), else by
    what the cell computes (the toy's are all alike; a bandit's first scenario with its cheapest
    method; MuJoCo's closed-form KL on the faster env)."""
    name, columns = meta["experiment"], KEYS[meta["experiment"]]
    cells = committed[list(columns)].drop_duplicates()
    timing = run / "timing" / "timing.csv"
    if name == "llm" and timing.exists():
        times = pd.read_csv(timing)
        steps = times[times["metric"].str.endswith("_time_s")]  # update and pair-check seconds
        cost = steps.groupby(list(columns))["value"].sum().sort_values(kind="stable")
        return _plain(dict(zip(columns, cost.index[0], strict=True)))
    if name == "bandits":
        cells = cells[cells["variant"] != "reference"]  # measure an objective, not the reference alone
        cells = _prefer(cells, "variant", _BANDIT_ORDER)
    if name == "mujoco":
        cells = _prefer(_prefer(cells, "env", _MUJOCO_ENVS), "variant", _MUJOCO_ORDER)
    return _plain(cells.iloc[0].to_dict())


def first_difference(fresh: Path, committed: Path) -> str | None:
    """None when the two CSVs are the same bytes, else the first differing line of each, numbered."""
    if fresh.read_bytes() == committed.read_bytes():
        return None
    ours, theirs = fresh.read_text().splitlines(), committed.read_text().splitlines()
    for number, (a, b) in enumerate(zip(ours, theirs, strict=False), start=1):
        if a != b:
            return f"line {number}: rerun {a!r}, committed {b!r}"
    return f"rerun has {len(ours)} lines, committed {len(theirs)}"


class _OneCell:
    """A listener that stops the sweep (a ConfigError ends it at once) if any other cell starts: a
    copied cell the sweep did not recognise would otherwise rerun the whole committed sweep."""

    def __init__(self, key: Mapping[str, Any]):
        self.key = dict(key)

    def start(self, name: str, key: Mapping[str, Any]) -> None:
        if dict(key) != self.key:
            raise ConfigError(f"the rerun started cell {dict(key)} as well as {self.key}: a copied cell was not found")

    def log(self, name: str, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def finish(self, name: str) -> None:
        pass


def _copy_cells_but(key: Mapping[str, Any], committed: pd.DataFrame, run_dir: RunDir) -> None:
    """Every committed cell except ``key`` written back as its sweep writes a finished cell."""
    columns = list(key)
    for values, rows in committed.groupby(columns, sort=False):
        cell = _plain(dict(zip(columns, values, strict=True)))
        if cell != dict(key):
            run_dir.write_cell(cell, rows)


def _load_plugins(meta: Mapping[str, Any], methods_field: str) -> None:
    """The ``--plugin`` files the run's command named, when its methods are not registered already."""
    if all(find_objective(m) is not None for m in _method_names(meta, methods_field)):
        return
    words = shlex.split(meta.get("command", ""))
    for flag, value in zip(words, words[1:], strict=False):
        if flag == "--plugin":
            load_plugin(str(ROOT / value) if (ROOT / value).exists() else value)


def _method_names(meta: Mapping[str, Any], methods_field: str) -> list[str]:
    """The run's methods that must be registered objectives (a bandit or MuJoCo method of the
    experiment's own table need not be)."""
    own = {"bandits": BANDIT_METHODS, "mujoco": DISTILL_METHODS}.get(meta["experiment"], ())
    return [m for m in meta["config"].get(methods_field, []) if m not in own]


def _prefer(cells: pd.DataFrame, column: str, order: tuple[str, ...]) -> pd.DataFrame:
    rank = {v: i for i, v in enumerate(order)}
    return (
        cells.assign(_rank=cells[column].map(lambda v: rank.get(v, len(order))))
        .sort_values("_rank", kind="stable")
        .drop(columns="_rank")
    )


def _plain(key: Mapping[str, Any]) -> dict[str, Any]:
    """numpy scalars as Python ones, so a key compares equal to the sweep's own."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in key.items()}


class _Prefix(_OneCell):
    """Keeps every value the cell logs up to ``steps``, and stops the cell at its first later step."""

    def __init__(self, key: Mapping[str, Any], steps: int):
        super().__init__(key)
        self.steps, self.values = steps, {}

    def log(self, name: str, step: int, metrics: Mapping[str, float]) -> None:
        if step > self.steps:
            raise _Enough
        self.values.update({(step, metric): float(value) for metric, value in metrics.items()})
