"""Progress: the one bar factory for long loops, and the live display of a sweep as its cells train.

A cell reports its steps through a :class:`StepReport`, ``report(step, total, metrics)``: after step
``step`` of ``total``, with that step's metrics (none on a step that logs nothing). The executor hands
every cell one and carries the reports to the driver, whatever process the cell runs in; the driver
shows them in a :func:`sweep_display`:

- on a terminal, one live rich display: the sweep's bar of cells and, under it, one bar per running
  cell (step k/N, its latest metrics, elapsed time, ETA);
- anywhere else (a log file, CI), plain timestamped lines, at most one per cell per
  ``LINE_INTERVAL_S`` and one when it ends, never wrapped or cut (rich's console is 80 columns
  wide when it is not on a terminal).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LINE_INTERVAL_S = 10.0  # off a terminal: at most one line per cell this often, besides its start and end
_SHOWN = 2  # a cell's step bar shows the latest values of the first metrics it reported
_WIDE = 10_000  # off a terminal rich's console is 80 columns wide and cuts a progress line there


class StepReport(Protocol):
    """What a cell calls as it trains: after step ``step`` of ``total``, with the step's metrics."""

    def __call__(self, step: int, total: int, metrics: Mapping[str, float] | None = None) -> None: ...


def no_report(step: int, total: int, metrics: Mapping[str, float] | None = None) -> None:
    """The :class:`StepReport` of a cell that nothing watches."""


def seed_means(rows: Any) -> dict[str, float]:
    """One step's tidy rows (a DataFrame with ``metric`` and ``value``, one row per seed) as
    {metric: mean over the seeds}: what a cell that trains its seeds stacked reports for the step."""
    return {str(k): float(v) for k, v in rows.groupby("metric")["value"].mean().items()}


def stderr_console() -> Console:
    """Rich's console on stderr (stdout stays clean for data); off a terminal, as wide as any line."""
    console = Console(stderr=True)
    return console if console.is_terminal and not console.is_dumb_terminal else Console(stderr=True, width=_WIDE)


def progress_bar(enabled: bool = True) -> Progress:
    """A rich progress bar on stderr; a no-op when disabled."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console(),
        disable=not enabled,
        transient=False,
    )


class SweepDisplay(Protocol):
    """What the executor tells the display of a sweep, all in the driver."""

    def started(self, label: str) -> None: ...
    def step(self, label: str, step: int, total: int, metrics: Mapping[str, float]) -> None: ...
    def done(self, label: str, failed: bool = False) -> None: ...
    def message(self, text: str) -> None: ...
    def __enter__(self) -> SweepDisplay: ...
    def __exit__(self, *exc: object) -> None: ...


def sweep_display(description: str, cells: int, enabled: bool = True) -> SweepDisplay:
    """The live display on a terminal, timestamped lines elsewhere, nothing when disabled."""
    if not enabled:
        return _Silent()
    console = Console(stderr=True)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveDisplay(description, cells, console)
    return LineDisplay(description, cells)


def latest_text(latest: Mapping[str, float]) -> str:
    """'reward_mean=0.412 heldout_accuracy=0.3': the first :data:`_SHOWN` metrics a cell reported."""
    return " ".join(f"{name}={value:.3g}" for name, value in list(latest.items())[:_SHOWN])


class _Silent:
    def started(self, label: str) -> None:
        pass

    def step(self, label: str, step: int, total: int, metrics: Mapping[str, float]) -> None:
        pass

    def done(self, label: str, failed: bool = False) -> None:
        pass

    def message(self, text: str) -> None:
        print(text, file=sys.stderr)

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class LiveDisplay:
    """One rich display: the cells' bar, and under it a bar per running cell, removed when it ends."""

    def __init__(self, description: str, cells: int, console: Console):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[latest]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.cells, self.finished = cells, 0
        self.sweep = self.progress.add_task(f"[bold]{description}", total=cells, count=f"0/{cells} cells", latest="")
        self.tasks: dict[str, int] = {}
        self.latest: dict[str, dict[str, float]] = {}

    def started(self, label: str) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(f"  {label}", total=None, count="starting", latest="")
            self.latest[label] = {}

    def step(self, label: str, step: int, total: int, metrics: Mapping[str, float]) -> None:
        self.started(label)
        latest = self.latest[label]
        latest.update(metrics)
        count = f"step {step}/{total}" if total else f"step {step}"
        self.progress.update(
            self.tasks[label], completed=step, total=total or None, count=count, latest=latest_text(latest)
        )

    def done(self, label: str, failed: bool = False) -> None:
        if label in self.tasks:
            self.progress.remove_task(self.tasks.pop(label))
            self.latest.pop(label, None)
        self.finished += 1
        count = f"{self.finished}/{self.cells} cells"
        self.progress.update(self.sweep, completed=self.finished, count=count)

    def message(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class LineDisplay:
    """Timestamped lines for a log: a cell's start, its progress at most every ``interval`` seconds, its
    end with the sweep's count. ``clock`` and ``stream`` are there for tests."""

    def __init__(
        self,
        description: str,
        cells: int,
        interval: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ):
        self.description, self.cells, self.finished = description, cells, 0
        self.interval, self.clock, self.stream = interval, clock, stream
        self.start: dict[str, float] = {}
        self.last_line: dict[str, float] = {}
        self.latest: dict[str, dict[str, float]] = {}

    def _print(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"[{stamp}] {self.description}: {text}", file=self.stream or sys.stderr, flush=True)

    def started(self, label: str) -> None:
        if label not in self.start:
            self.start[label] = self.last_line[label] = self.clock()
            self.latest[label] = {}
            self._print(f"{label} started ({self.finished}/{self.cells} cells done)")

    def step(self, label: str, step: int, total: int, metrics: Mapping[str, float]) -> None:
        self.started(label)
        self.latest[label].update(metrics)
        now = self.clock()
        if now - self.last_line[label] < self.interval:
            return
        self.last_line[label] = now
        elapsed = now - self.start[label]
        eta = f", eta {_duration(elapsed / step * (total - step))}" if step and total else ""
        shown = latest_text(self.latest[label])
        self._print(f"{label} step {step}/{total or '?'}{', ' + shown if shown else ''}{eta}")

    def done(self, label: str, failed: bool = False) -> None:
        self.finished += 1
        took = f" in {_duration(self.clock() - self.start[label])}" if label in self.start else ""
        self.start.pop(label, None)
        self._print(f"{label} {'failed' if failed else 'done'}{took} ({self.finished}/{self.cells} cells)")

    def message(self, text: str) -> None:
        self._print(text)

    def __enter__(self) -> LineDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _duration(seconds: float) -> str:
    """'1h02m', '5m12s', '42s'."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
