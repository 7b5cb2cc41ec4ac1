"""Fan a sweep's cells out: one after another, over local processes, or as Ray tasks.

Every sweep in geobench is a set of independent *cells*. A :class:`Cell` names a module-level
function (pickled by reference, so it runs unchanged in a spawned process or a Ray worker), its
arguments, and the key under which its rows are stored. The function returns the cell's tidy
rows and depends on nothing but its arguments, so a cell gives the same bytes in any process.

Workers never touch the run folder: each finished cell's rows come back to the driver, which
writes them with ``RunDir.write_cell``. A cell finished under Ray is therefore the same file as
one finished serially, so a sweep resumes across executors, and nodes of a cluster need no
shared filesystem. The merged CSV is sorted by ``RunDir.finish``, so the completion order, the
executor and the worker count never change the output.

Threads: torch's intra-op pool spins against any other process on the machine (a bandit cell
took 22 s at one thread and 228 s at two while another process used a core), so every cell,
and the driver, runs with an explicit thread count, set before its first torch operation.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from geobench.errors import CellsFailed, ConfigError, Terminated
from geobench.progress import progress_bar

EXECUTORS = ("serial", "processes", "ray")


@dataclass(frozen=True)
class Resources:
    """What one cell needs; Ray schedules by it (an 8-GPU node runs 8 cells of ``gpus=1``)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class ExecutorConfig:
    """How a sweep's cells run. Not part of any experiment config: it never changes results,
    so cells finished under one executor count as done under another."""

    kind: str = "serial"
    workers: int = 0  # processes: parallel workers (0 = one per core); ray: CPUs of a local instance
    threads: int = 1  # torch intra-op threads in every cell and in the driver
    ray_address: str | None = None  # None: $RAY_ADDRESS, else a local Ray instance

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.kind!r}; valid: {', '.join(EXECUTORS)}")
        if self.workers < 0 or self.threads < 1:
            raise ConfigError(f"need --workers >= 0 and --threads >= 1; got {self.workers}, {self.threads}")

    @property
    def parallelism(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class Cell:
    """One unit of a sweep: ``fn(*args)`` returns its rows, stored under ``key``."""

    key: Mapping[str, Any]
    fn: Callable[..., pd.DataFrame]
    args: tuple[Any, ...] = ()
    resources: Resources = field(default_factory=Resources)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.key.items())


def set_threads(threads: int) -> None:
    """Torch's intra-op thread count for this process (before any torch work where possible)."""
    import torch

    torch.set_num_threads(threads)


def _call(threads: int, fn: Callable[..., pd.DataFrame], args: tuple[Any, ...]) -> pd.DataFrame:
    """What a worker runs: the thread count first, then the cell."""
    set_threads(threads)
    return fn(*args)


def run_cells(
    cells: Sequence[Cell],
    write: Callable[[Mapping[str, Any], pd.DataFrame], None],
    executor: ExecutorConfig,
    *,
    description: str,
    show_progress: bool = True,
) -> None:
    """Run ``cells``, calling ``write(key, rows)`` in this process as each one finishes.

    A failing cell is reported on stderr in one line with its key and error; the others still
    run and are written, and :class:`CellsFailed` is raised at the end naming every failure.
    A :class:`ConfigError` from a cell (bad input, which every cell would hit) stops the sweep.
    """
    set_threads(executor.threads)
    failures: list[str] = []
    with _sigterm_unwinds(), progress_bar(show_progress) as bar:
        task = bar.add_task(description, total=len(cells))

        def finished(cell: Cell, result: Callable[[], pd.DataFrame]) -> None:
            try:
                write(cell.key, result())
            except KeyboardInterrupt:
                raise
            except ConfigError as error:  # bad input or diverging settings: stop at once, one line
                raise type(error)(f"cell {cell.label}: {error}") from None
            except Exception as error:  # noqa: BLE001 - reported per cell, raised together below
                message = f"cell {cell.label} failed: {type(error).__name__}: {_first_line(error)}"
                bar.console.print(f"[red]{message}[/]")
                failures.append(message)
            bar.update(task, advance=1, description=f"{description}: {cell.label}")

        if cells:
            {"serial": _serial, "processes": _processes, "ray": _ray}[executor.kind](cells, executor, finished)
    if failures:
        raise CellsFailed(
            f"{len(failures)} of {len(cells)} cells failed (the others were written): " + "; ".join(failures)
        )


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While cells run, SIGTERM raises :class:`Terminated` in the driver, so the sweep unwinds as on
    Ctrl-C: workers stopped, finished cells kept. Its default action would kill the driver alone and
    leave spawned workers orphaned (PPID 1), each blocked on a queue nobody reads."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def _serial(cells: Sequence[Cell], executor: ExecutorConfig, finished: Callable) -> None:
    for cell in cells:
        finished(cell, lambda cell=cell: _call(executor.threads, cell.fn, cell.args))


def _processes(cells: Sequence[Cell], executor: ExecutorConfig, finished: Callable) -> None:
    # spawn, not fork: a forked child inherits the parent's OpenMP pool state and can hang.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(executor.parallelism, len(cells)), mp_context=context) as pool:
        pending: dict[Future, Cell] = {pool.submit(_call, executor.threads, c.fn, c.args): c for c in cells}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: cells.index(pending[f])):
                    finished(pending.pop(future), future.result)
        except BaseException:
            _stop_workers(pool)
            raise


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers that run a cell: ``shutdown`` alone
    lets a running cell finish, minutes for an LLM cell, after the driver has given up on it."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        if process.is_alive():
            process.terminate()
    for process in workers:
        process.join(timeout=5)


def _ray(cells: Sequence[Cell], executor: ExecutorConfig, finished: Callable) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        address = executor.ray_address or os.environ.get("RAY_ADDRESS")
        local = {} if address else {"num_cpus": executor.parallelism}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **local)
    try:
        remote = ray.remote(_call)
        pending = {
            remote.options(num_cpus=c.resources.cpus, num_gpus=c.resources.gpus).remote(
                executor.threads, c.fn, c.args
            ): c
            for c in cells
        }
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                finished(pending.pop(ref), lambda ref=ref: _unwrap_ray(ray, ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()


def _unwrap_ray(ray: Any, ref: Any) -> pd.DataFrame:
    """The cell's rows, or the cell's own exception rather than Ray's wrapper."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.as_instanceof_cause()
        raise (cause.cause if getattr(cause, "cause", None) else cause) from None


def pending_cells(cells: Sequence[Cell], done: Callable[[Mapping[str, Any]], bool]) -> list[Cell]:
    """The cells not already on disk, in the sweep's order."""
    return [c for c in cells if not done(c.key)]
