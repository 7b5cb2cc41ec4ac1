"""Fan a sweep's cells out: one after another, over local processes, or as Ray tasks.

Every sweep in geobench is a set of independent *cells*. A :class:`Cell` names a module-level
function (pickled by reference, so it runs unchanged in a spawned process or a Ray worker), its
arguments, and the key under which its rows are stored. The function returns the cell's result
(its tidy rows, or whatever its sweep's ``write`` takes) and depends on nothing but its
arguments, so a cell gives the same bytes in any process.

A cell that ``reports_steps`` is called with ``report=``, a :class:`~geobench.progress.StepReport`
it calls once per step with that step's metrics. Its reports reach the driver whatever runs the
cell: directly (serial), through a multiprocessing manager's queue (local processes) or a Ray
queue actor (Ray), polled while the driver waits for cells. There they drive the sweep's live
display (:func:`~geobench.progress.sweep_display`) and go to the ``listener`` of the
:class:`ExecutorConfig` (the trackers of ``--report-to``), which sees every metric of every step
with the cell's key; a cell without step reports shows as running until it ends, and its rows go
to the listener then. Nothing is ever read back from a listener: the CSVs stay the only record.

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
import functools
import math
import multiprocessing
import os
import queue as queues
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from geobench.errors import CellsFailed, ConfigError, Terminated
from geobench.progress import SweepDisplay, seed_means, sweep_display

EXECUTORS = ("serial", "processes", "ray")
_POLL_S = 0.2  # how often the driver reads the workers' step reports while it waits for cells
_REPORT_EVERY_S = 0.25  # a worker sends a step without metrics at most this often (one with metrics always)


class CellListener(Protocol):
    """What sees every cell's metrics as they come, in the driver (the ``--report-to`` trackers); a cell
    is named by its :attr:`Cell.label` and starts with its key."""

    def start(self, name: str, key: Mapping[str, Any]) -> None: ...
    def log(self, name: str, step: int, metrics: Mapping[str, float]) -> None: ...
    def finish(self, name: str) -> None: ...


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
    listener: CellListener | None = field(default=None, compare=False, repr=False)  # sees every step's metrics
    allow_oversize: bool = False  # run cells whose memory estimate exceeds what this machine has (--allow-oversize)

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.kind!r}; valid: {', '.join(EXECUTORS)}")
        if self.workers < 0 or self.threads < 1:
            raise ConfigError(f"need --workers >= 0 and --threads >= 1; got {self.workers}, {self.threads}")
        if self.kind == "ray":
            ray_modules()  # refused here, before a sweep collects its inputs, not when its cells start

    @property
    def parallelism(self) -> int:
        return self.workers or os.cpu_count() or 1

    def workers_for(self, cells: int) -> int:
        """Workers for a sweep of ``cells``: never more than the cells (``--workers 999`` on 3 cells starts 3),
        quietly, as the result does not depend on it."""
        return max(1, min(self.parallelism, cells))


@dataclass(frozen=True)
class Cell:
    """One unit of a sweep: ``fn(*args)`` returns its result, stored under ``key``; with ``reports_steps``
    it is ``fn(*args, report=...)`` and calls the report once per step."""

    key: Mapping[str, Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    resources: Resources = field(default_factory=Resources)
    reports_steps: bool = False

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.key.items())


def set_threads(threads: int) -> None:
    """Torch's intra-op thread count for this process (before any torch work where possible)."""
    import torch

    torch.set_num_threads(threads)


class _Reporter:
    """A cell's :class:`~geobench.progress.StepReport` wherever the cell runs: each report becomes an
    event ``(cell index, step, total, metrics)`` for ``send`` (the driver's queue, or the driver itself).
    The first event, sent as the cell starts, is ``(index, 0, 0, {})``. A report without metrics is
    dropped if the last one went out less than ``_REPORT_EVERY_S`` ago (a bandit step takes ~1 ms)."""

    def __init__(self, send: Callable[[tuple], None], index: int, clock: Callable[[], float] = time.monotonic):
        self.send, self.index, self.clock, self.last = send, index, clock, -math.inf

    def start(self) -> None:
        self.send((self.index, 0, 0, {}))

    def __call__(self, step: int, total: int, metrics: Mapping[str, float] | None = None) -> None:
        now = self.clock()
        if not metrics and step < total and now - self.last < _REPORT_EVERY_S:
            return
        self.last = now
        self.send((self.index, step, total, {k: float(v) for k, v in (metrics or {}).items()}))


def _call(threads: int, fn: Callable[..., Any], args: tuple[Any, ...], report: _Reporter | None, steps: bool) -> Any:
    """What a worker runs: the thread count first, then the cell (with its report if it reports steps)."""
    set_threads(threads)
    if report is None:
        return fn(*args)
    report.start()
    return fn(*args, report=report) if steps else fn(*args)


class _Monitor:
    """The driver's end of the reports: the display and the listener, per cell index."""

    def __init__(self, cells: Sequence[Cell], display: SweepDisplay, listener: CellListener | None, shown: bool):
        self.cells, self.display, self.listener = cells, display, listener
        self.wanted = shown or listener is not None  # else no worker sends anything
        self.running: set[int] = set()

    def handle(self, event: tuple) -> None:
        index, step, total, metrics = event
        cell = self.cells[index]
        if index not in self.running:
            self.running.add(index)
            self.display.started(cell.label)
            if self.listener is not None:
                self.listener.start(cell.label, cell.key)
        if total:
            self.display.step(cell.label, step, total, metrics)
        if metrics and self.listener is not None:
            self.listener.log(cell.label, step, metrics)

    def drain(self, source: Any) -> None:
        """Every event waiting in a queue (a manager's or Ray's, whose Empty is queue.Empty), in the order sent."""
        while True:
            try:
                event = source.get_nowait()
            except queues.Empty:
                return
            self.handle(event)

    def finished(self, index: int, result: Any, failed: bool) -> None:
        cell = self.cells[index]
        if self.listener is not None:
            if index not in self.running:
                self.listener.start(cell.label, cell.key)
            if not cell.reports_steps and not failed and isinstance(result, pd.DataFrame):
                for step, metrics in _step_means(result):
                    self.listener.log(cell.label, step, metrics)
            self.listener.finish(cell.label)
        self.running.discard(index)
        self.display.done(cell.label, failed)

    def reporter(self, index: int, send: Callable[[tuple], None] | None) -> _Reporter | None:
        """The report a cell's worker gets: None when nothing watches the sweep (no events at all)."""
        return _Reporter(send, index) if self.wanted and send is not None else None


def _step_means(frame: pd.DataFrame) -> list[tuple[int, dict[str, float]]]:
    """A finished cell's tidy rows as (step, {metric: mean over its seeds}), for a listener."""
    if not {"step", "metric", "value"} <= set(frame.columns):
        return []
    return [(int(step), seed_means(rows)) for step, rows in frame.groupby("step", sort=True)]


def run_cells(
    cells: Sequence[Cell],
    write: Callable[[Mapping[str, Any], Any], None],
    executor: ExecutorConfig,
    *,
    description: str,
    show_progress: bool = True,
) -> None:
    """Run ``cells``, calling ``write(key, result)`` in this process as each one finishes.

    A failing cell is reported on stderr in one line with its key and error; the others still
    run and are written, and :class:`CellsFailed` is raised at the end naming every failure.
    A :class:`ConfigError` from a cell (bad input, which every cell would hit) stops the sweep.
    """
    set_threads(executor.threads)
    failures: list[str] = []
    with _sigterm_unwinds(), sweep_display(description, len(cells), show_progress) as display:
        monitor = _Monitor(cells, display, executor.listener, show_progress)

        def finished(index: int, result: Callable[[], Any]) -> None:
            cell, value, failed = cells[index], None, False
            try:
                value = result()
                write(cell.key, value)
            except KeyboardInterrupt:
                raise
            except ConfigError as error:  # bad input or diverging settings: stop at once, one line
                raise type(error)(f"cell {cell.label}: {error}") from None
            except Exception as error:  # noqa: BLE001 - reported per cell, raised together below
                message = f"cell {cell.label} failed: {type(error).__name__}: {_first_line(error)}"
                display.message(message)
                failures.append(message)
                failed = True
            monitor.finished(index, value, failed)

        if cells:
            {"serial": _serial, "processes": _processes, "ray": _ray}[executor.kind](cells, executor, finished, monitor)
    if failures:
        kept = "the others were written" if len(failures) < len(cells) else "none was written"
        raise CellsFailed(f"{len(failures)} of {len(cells)} cells failed ({kept}): " + "; ".join(failures))


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


def _serial(cells: Sequence[Cell], executor: ExecutorConfig, finished: Callable, monitor: _Monitor) -> None:
    for index, cell in enumerate(cells):
        report = monitor.reporter(index, monitor.handle)
        finished(index, functools.partial(_call, executor.threads, cell.fn, cell.args, report, cell.reports_steps))


def _processes(cells: Sequence[Cell], executor: ExecutorConfig, finished: Callable, monitor: _Monitor) -> None:
    # spawn, not fork: a forked child inherits the parent's OpenMP pool state and can hang.
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        # A manager's queue, not a multiprocessing.Queue: its put returns once the item is with the
        # manager, so a cell's last reports are there before its result is.
        events = stack.enter_context(context.Manager()).Queue() if monitor.wanted else None
        workers = executor.workers_for(len(cells))
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=context))
        pending: dict[Future, int] = {
            pool.submit(
                _call,
                executor.threads,
                c.fn,
                c.args,
                monitor.reporter(i, events.put if events else None),
                c.reports_steps,
            ): i
            for i, c in enumerate(cells)
        }
        try:
            while pending:
                done, _ = wait(pending, timeout=_POLL_S if events else None, return_when=FIRST_COMPLETED)
                if events is not None:
                    monitor.drain(events)
                for future in sorted(done, key=pending.__getitem__):
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


def ray_modules() -> tuple[Any, type]:
    """``ray`` and its queue actor class, or the one line saying how to install Ray."""
    try:
        import ray
        from ray.util.queue import Queue
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]'") from None
    return ray, Queue


def _ray(cells: Sequence[Cell], executor: ExecutorConfig, finished: Callable, monitor: _Monitor) -> None:
    ray, Queue = ray_modules()
    started_here = not ray.is_initialized()
    if started_here:
        address = executor.ray_address or os.environ.get("RAY_ADDRESS")
        local = {} if address else {"num_cpus": executor.workers_for(len(cells))}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **local)
    try:
        events = Queue(actor_options={"num_cpus": 0}) if monitor.wanted else None  # an actor: takes no cell's CPU
        send = None if events is None else events.put
        remote = ray.remote(_call)
        pending = {
            remote.options(num_cpus=c.resources.cpus, num_gpus=c.resources.gpus).remote(
                executor.threads, c.fn, c.args, monitor.reporter(i, send), c.reports_steps
            ): i
            for i, c in enumerate(cells)
        }
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_S if events else None)
                if events is not None:
                    monitor.drain(events)
                for ref in done:
                    finished(pending.pop(ref), lambda ref=ref: _unwrap_ray(ray, ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if events is not None:
                events.shutdown()
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


def check_memory(executor: ExecutorConfig, per_cell: int, cells: int, why: str) -> None:
    """Refuse, before any cell starts, cells that would not fit this machine's available memory at once
    (one for serial, up to the workers for processes); ``per_cell`` is a cell's estimate in bytes and
    ``why`` what it is made of. Skipped under Ray (cells are placed on whatever node has room) and with
    ``allow_oversize``."""
    if executor.kind == "ray" or executor.allow_oversize or not cells or per_cell <= 0:
        return
    at_once = 1 if executor.kind == "serial" else min(executor.parallelism, cells)
    available = available_memory()
    if available is None or per_cell * at_once <= available:
        return
    together = f"{at_once} cells at once need about {_size(per_cell * at_once)}; each" if at_once > 1 else "a cell"
    raise ConfigError(
        f"{together} needs about {_size(per_cell)} ({why}) and this machine has {_size(available)} available; "
        "use a smaller model or dtype, fewer --workers, or pass --allow-oversize to run anyway"
    )


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def pending_cells(cells: Sequence[Cell], done: Callable[[Mapping[str, Any]], bool]) -> list[Cell]:
    """The cells not already on disk, in the sweep's order."""
    return [c for c in cells if not done(c.key)]
