"""Run directories: tidy CSVs as the single source of truth, written atomically, resumable.

A sweep is a set of *cells* (one objective x scenario x ..., all seeds). Each finished
cell is written to ``DIR/cells/<config hash>/<cell>.csv`` by an atomic rename, so a sweep
killed half way and rerun with the same config skips the cells already on disk; a
changed config hashes elsewhere and starts clean. ``finish`` merges the cells into
``DIR/<name>.csv`` (rows sorted, so the same seed gives the same bytes) and writes
``DIR/run.json`` with everything needed to rerun: resolved config, exact command, git
commit, package versions and wall time.

A cell's *inputs* (:mod:`geobench.identity`: the objective's code, a teacher's or a model's files,
a dataset's content, result-changing package versions) are written beside it; a cell whose inputs
differ from the current ones is recomputed, with one line saying why, so a retrained teacher or an
edited plugin never returns the old rows. ``run.json`` records their union and the run's identity.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from geobench.errors import ConfigError
from geobench.identity import changed_inputs, run_identity

BASE_COLUMNS = ("experiment", "variant", "seed", "step", "metric", "value")
_PACKAGES = (
    "geobench",
    "torch",
    "numpy",
    "pandas",
    "matplotlib",
    "gymnasium",
    "mujoco",
    "stable-baselines3",
    "transformers",
)
_FLOAT_FORMAT = "%.10g"
# What "dirty" means in run.json: uncommitted changes to tracked files other than the outputs
# of runs and figures (rerunning into a committed results/ folder must not mark itself dirty).
_CODE_PATHS = (":(top)", ":(top,exclude)results", ":(top,exclude)figures")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``: a writer killed
    mid-way leaves the old file (or none), never a truncated one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def replaced_folder(path: Path) -> Iterator[Path]:
    """A scratch sibling of ``path`` to write a folder of files into, swapped in whole by rename once the
    block completes: a writer killed mid-way leaves the old folder (or none), never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield scratch
        os.chmod(scratch, 0o755)  # mkdtemp makes 0700
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, retired / path.name)
            os.replace(scratch, path)
            shutil.rmtree(retired)
        else:
            os.replace(scratch, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Atomically write a tidy frame with a fixed float format (byte-stable across runs)."""
    atomic_write_text(path, frame.to_csv(index=False, float_format=_FLOAT_FORMAT, lineterminator="\n"))


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON-able data (tuples become lists), less its
    :data:`~geobench.config.HASH_NEUTRAL` fields that hold their defaults."""
    data = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    for f in dataclasses.fields(config):
        if f.metadata.get("hash_neutral") and getattr(config, f.name) == f.default:
            del data[f.name]
    return data


def config_hash(config: Any) -> str:
    """12 hex digits identifying a resolved config (the folder its cells live in)."""
    blob = json.dumps(config_dict(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _slug(key: Mapping[str, Any]) -> str:
    text = "__".join(f"{k}={v}" for k, v in key.items())
    return re.sub(r"[^A-Za-z0-9=._-]+", "-", text)


class RunDir:
    """One experiment's output folder (``--out``)."""

    def __init__(
        self,
        path: Path | str,
        experiment: str,
        config: Any,
        *,
        table: str = "",
        columns: tuple[str, ...] = BASE_COLUMNS,
        inputs: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None,
        rerun: bool = False,
    ):
        """``table`` names a second table of the same run: its cells live in their own folder and
        :meth:`merge` writes it beside the first; ``columns`` are its columns, the value last.
        ``inputs(key)`` gives a cell's inputs besides the config (name -> digest,
        :mod:`geobench.identity`); ``rerun`` recomputes every cell instead of reusing it."""
        self.path = Path(path)
        refuse_foreign_run(self.path, experiment)
        self.experiment = experiment
        self.config = config
        self.columns = columns
        self.cells = self.path / "cells" / config_hash(config) / table
        self.inputs = inputs or (lambda key: {})
        self.rerun = rerun
        self.started = time.time()
        self.resumed = 0

    def cell_path(self, key: Mapping[str, Any]) -> Path:
        return self.cells / f"{_slug(key)}.csv"

    def done(self, key: Mapping[str, Any]) -> bool:
        """True if this cell was finished under the same config and its file is intact (counted
        as resumed). A cell file that is truncated, emptied or edited no longer matches the
        checksum written beside it: it is named on stderr, removed and recomputed. So is a cell
        whose recorded inputs differ from ``inputs(key)`` (one line naming the inputs that changed;
        a cell written before inputs were recorded counts as changed). Under ``rerun``, never done."""
        path = self.cell_path(key)
        if self.rerun or not path.exists():
            return False
        if not _intact(path):
            print(f"geobench: cell {path} is damaged (its checksum does not match); recomputing it", file=sys.stderr)
            path.unlink()
            return False
        stored = _read_inputs(path)
        changed = ["its inputs were not recorded"] if stored is None else changed_inputs(stored, self.inputs(key))
        if changed:
            print(f"geobench: recomputing {self.experiment} cell {_slug(key)}: {', '.join(changed)}", file=sys.stderr)
            path.unlink()
            return False
        self.resumed += 1
        return True

    def write_cell(self, key: Mapping[str, Any], rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> None:
        """Write one finished cell, its inputs and then its checksum (a cell counts as done only with the
        checksum)."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        frame = frame.assign(experiment=self.experiment)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"cell {dict(key)} lacks columns {missing}")
        path = self.cell_path(key)
        write_csv(frame, path)
        inputs = dict(sorted(self.inputs(key).items()))
        atomic_write_text(_inputs_path(path), json.dumps(inputs, indent=2) + "\n")
        atomic_write_text(_checksum_path(path), _sha256(path) + "\n")

    def finished_cells(self) -> list[Path]:
        """The cell files on disk whose checksums match, sorted."""
        return sorted(f for f in self.cells.glob("*.csv") if _intact(f))

    def merge(self, name: str) -> dict[str, Any]:
        """Merge all cells into ``DIR/<name>.csv`` (rows sorted, so the same seed gives the same bytes);
        returns what ``run.json`` records of it: the file's name, rows, checksum and cell count."""
        files = self.finished_cells()
        if not files:
            raise ConfigError(f"no finished cells under {self.cells}; nothing to write")
        frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        keys = [c for c in frame.columns if c not in self.columns]
        frame = frame[list(self.columns[:2]) + keys + list(self.columns[2:])]
        frame = frame.sort_values([c for c in frame.columns if c != self.columns[-1]], kind="stable")
        out = self.path / f"{name}.csv"
        write_csv(frame, out)
        return {"csv": out.name, "rows": len(frame), "sha256": _sha256(out), "cells": len(files)}

    def recorded_inputs(self) -> dict[str, str]:
        """The union of the finished cells' recorded inputs (what ``run.json`` records as ``inputs``)."""
        union: dict[str, str] = {}
        for cell in self.finished_cells():
            union.update(_read_inputs(cell) or {})
        return dict(sorted(union.items()))

    def finish(self, name: str, profile: str, extra: Mapping[str, Any] | None = None) -> Path:
        """Merge all cells into ``DIR/<name>.csv`` and write ``DIR/run.json``; returns the CSV path."""
        merged = self.merge(name)
        inputs = self.recorded_inputs()
        meta = {
            "experiment": self.experiment,
            "profile": profile,
            **merged,
            "cells_resumed": self.resumed,
            "config": config_dict(self.config),
            "config_hash": config_hash(self.config),
            "inputs": inputs,
            "identity": run_identity(config_hash(self.config), inputs),
            "command": shlex.join(sys.argv),
            "git_commit": _git("rev-parse", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", *_CODE_PATHS)),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(),
            "wall_time_s": round(time.time() - self.started, 3),
            **(extra or {}),
        }
        atomic_write_text(self.path / "run.json", json.dumps(meta, indent=2) + "\n")
        return self.path / merged["csv"]


def refuse_foreign_run(path: Path | str, experiment: str) -> None:
    """One line, before any work, if ``path`` holds another experiment's run: its ``run.json`` names
    another experiment (a committed results folder always has one), so writing there would mix two
    experiments' cells and leave a ``run.json`` the report misreads."""
    try:
        meta = read_meta(path)
    except ConfigError:  # an unreadable run.json is the run's own to rewrite (finish writes a new one)
        return
    if meta is not None and meta.get("experiment", experiment) != experiment:
        raise ConfigError(
            f"--out {path} holds a {meta['experiment']} run (its run.json), not {experiment}; choose another folder"
        )


def profile_folder(name: str, profile: str) -> str:
    """Where a profile's run of an experiment lives: ``<name>`` (quick) or ``<name>-paper``, side by side."""
    return name if profile == "quick" else f"{name}-paper"


def preferred_run(results: Path, name: str) -> Path:
    """``results/<name>-paper`` when the paper profile has run there, else ``results/<name>``:
    the report shows, and judges claims on, the paper-profile run wherever one exists."""
    paper = Path(results) / profile_folder(name, "paper")
    return paper if (paper / "run.json").exists() else Path(results) / name


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (those not installed are left out)."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checksum_path(cell: Path) -> Path:
    return cell.with_name(cell.name + ".sha256")


def _inputs_path(cell: Path) -> Path:
    return cell.with_name(cell.name.removesuffix(".csv") + ".inputs.json")


def _read_inputs(cell: Path) -> dict[str, str] | None:
    """The inputs recorded beside ``cell``, or None if there are none (or they cannot be read)."""
    try:
        return json.loads(_inputs_path(cell).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _intact(cell: Path) -> bool:
    """The cell file matches the checksum written after it (False if either is missing)."""
    checksum = _checksum_path(cell)
    return checksum.exists() and checksum.read_text().strip() == _sha256(cell)


def read_meta(path: Path | str) -> dict[str, Any] | None:
    """The ``run.json`` of a run folder, or None if it has not been run; one line if it is unreadable."""
    meta_path = Path(path) / "run.json"
    if not meta_path.exists():
        return None
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the run in {path} ({type(error).__name__}): rerun it") from None


def read_run(path: Path | str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The CSV and metadata of a finished run folder, or None if it has not been run.

    The CSV must match what its ``run.json`` recorded (checksum, else row count): a damaged
    or edited results file is one line naming it, never a silently different report.
    """
    meta = read_meta(path)
    if meta is None:
        return None
    try:
        csv = Path(path) / meta["csv"]
        damaged = "sha256" in meta and _sha256(csv) != meta["sha256"]
        frame = pd.read_csv(csv)
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the run in {path} ({type(error).__name__}): rerun it") from None
    if damaged or len(frame) != meta.get("rows", len(frame)):
        raise ConfigError(
            f"{csv} does not match its run.json (damaged or edited since the run): rerun `{meta.get('command')}`"
        )
    return frame, meta
