"""``--report-to``: every metric of every cell, streamed as it is logged to the trackers researchers use.

The names and their meaning are transformers' ``report_to``: a comma list of ``tensorboard``,
``wandb`` and ``trackio``, ``all`` for every one installed, ``none`` (the default) for none; and
``jsonl``, ours, after verl's file logger: one JSON line per logged step, no dependency.
Each cell is one run of each tracker, named by its key (``variant=opo seed=0``) and holding the
resolved config, plus the cell's key under ``cell``, as its hyperparameters. The trackers are
views of the rows the CSVs hold and nothing ever reads them back: the CSVs stay the single
source of truth. A cell that trains its seeds stacked (bandits, distillation) reports each
metric's mean over its seeds; the CSV has every seed.

Everything is written under ``<run folder>/trackers/``, and nothing goes over the network unless
the user says so: W&B runs offline unless ``WANDB_MODE`` says otherwise (``wandb sync`` uploads
later), trackio logs to its local database (``TRACKIO_DIR``, by default
``<run folder>/trackers/trackio``; ``trackio show`` opens it). ``WANDB_PROJECT`` and
``TRACKIO_PROJECT`` name the project (default ``geobench``); the experiment is the run's group.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from geobench.errors import ConfigError

TRACKERS = ("tensorboard", "wandb", "trackio", "jsonl")
_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}  # jsonl needs none
PROJECT = "geobench"


def parse_report_to(text: str | None) -> tuple[str, ...]:
    """``--report-to`` as tracker names: 'none' (or nothing) -> (), 'all' -> every installed one."""
    items = [item.strip() for item in (text or "none").split(",") if item.strip()]
    if items in ([], ["none"]):
        return ()
    if items == ["all"]:
        return tuple(name for name in TRACKERS if installed(name))
    unknown = [item for item in items if item not in TRACKERS]
    if unknown:
        valid = ", ".join(TRACKERS)
        raise ConfigError(f"--report-to: unknown tracker {unknown[0]!r}; valid: {valid} (comma-separated), all, none")
    return tuple(dict.fromkeys(items))


def installed(name: str) -> bool:
    module = _MODULES.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def require_installed(names: tuple[str, ...]) -> None:
    """One line naming the first tracker that is not installed, and its extra (before any work)."""
    for name in names:
        if not installed(name):
            raise ConfigError(f"--report-to {name} needs {_MODULES[name]}: pip install -e '.[{name}]'")


class _Run(Protocol):
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...
    def close(self) -> None: ...


class Trackers:
    """The ``--report-to`` trackers of one sweep: one run per cell in each (an executor ``CellListener``)."""

    def __init__(self, names: tuple[str, ...], folder: Path, experiment: str, config: Mapping[str, Any]):
        require_installed(names)
        self.names, self.folder, self.experiment, self.config = names, Path(folder), experiment, dict(config)
        self.runs: dict[str, list[_Run]] = {}

    def start(self, name: str, key: Mapping[str, Any]) -> None:
        """Open cell ``name``'s run in every tracker (a cell run again reopens it)."""
        self.finish(name)
        hparams = {"experiment": self.experiment, "cell": dict(key), **self.config}
        with _quiet_stdout():
            self.runs[name] = [_OPENERS[tracker](self, name, hparams) for tracker in self.names]

    def log(self, name: str, step: int, metrics: Mapping[str, float]) -> None:
        with _quiet_stdout():
            for run in self.runs[name]:
                run.log(step, metrics)

    def finish(self, name: str) -> None:
        with _quiet_stdout():
            for run in self.runs.pop(name, []):
                run.close()

    def close(self) -> None:
        """Close every run still open (a sweep that stopped half way)."""
        for name in list(self.runs):
            self.finish(name)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """The trackers' own chatter goes to stderr: stdout stays clean for data."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9=._-]+", "_", label)


def _finite(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """NaN (a response efficiency without signal) is null in JSON, which has no NaN."""
    return {k: (None if math.isnan(v) else float(v)) for k, v in metrics.items()}


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float | int | str | bool]:
    """Nested hyperparameters as {'a.b': scalar}, lists as text (TensorBoard's HParams take scalars)."""
    out: dict[str, float | int | str | bool] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out


class _JsonlRun:
    """``trackers/jsonl/<cell>.jsonl``: a first line with the run's name and config, then one line per
    logged step, flushed as written (``tail -f`` follows a cell). A cell run again starts the file afresh."""

    def __init__(self, path: Path, name: str, hparams: Mapping[str, Any]):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.name, self.handle = name, path.open("w", encoding="utf-8")
        self._write({"run": name, "config": hparams})

    def _write(self, record: Mapping[str, Any]) -> None:
        self.handle.write(json.dumps(record, default=str) + "\n")
        self.handle.flush()

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._write({"run": self.name, "step": step, "time": round(time.time(), 3), "metrics": _finite(metrics)})

    def close(self) -> None:
        self.handle.close()


class _TensorBoardRun:
    """``trackers/tensorboard/<cell>/``: a scalar per metric, the config as text and as HParams. A cell
    run again hides the earlier attempt's events (``purge_step=0``)."""

    def __init__(self, path: Path, name: str, hparams: Mapping[str, Any]):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.writer = SummaryWriter(log_dir=str(path), purge_step=0, flush_secs=10)
        self.writer.add_text("config", "```\n" + json.dumps(hparams, indent=2, default=str) + "\n```")
        for summary in hparams_summary(_flat(hparams), {}):
            self.writer.file_writer.add_summary(summary)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for metric, value in metrics.items():
            self.writer.add_scalar(metric, value, step)

    def close(self) -> None:
        self.writer.close()


class _WandbRun:
    """An offline W&B run under ``trackers/wandb/`` unless ``WANDB_MODE`` says otherwise; one per cell,
    several at once (``reinit="create_new"``), its console left alone."""

    def __init__(self, folder: Path, name: str, hparams: Mapping[str, Any], group: str):
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            group=group,
            name=name,
            config=dict(hparams),
            dir=str(folder),
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True, save_code=False),
        )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class _TrackioRun:
    """A trackio run in its local database. A ``trackio.Run`` per cell rather than ``trackio.init``,
    which finishes the run before it, while cells run side by side."""

    def __init__(self, folder: Path, name: str, hparams: Mapping[str, Any], group: str):
        os.environ.setdefault("TRACKIO_DIR", str(folder))  # read once, when trackio is first imported
        import trackio

        self.run = trackio.Run(
            url=None,
            project=os.environ.get("TRACKIO_PROJECT", PROJECT),
            client=None,
            name=name,
            group=group,
            config=json.loads(json.dumps(hparams, default=str)),
        )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(_finite(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


_OPENERS = {
    "jsonl": lambda t, name, hp: _JsonlRun(t.folder / "jsonl" / f"{_file_name(name)}.jsonl", name, hp),
    "tensorboard": lambda t, name, hp: _TensorBoardRun(t.folder / "tensorboard" / _file_name(name), name, hp),
    "wandb": lambda t, name, hp: _WandbRun(t.folder, name, hp, t.experiment),
    "trackio": lambda t, name, hp: _TrackioRun(t.folder / "trackio", name, hp, t.experiment),
}
