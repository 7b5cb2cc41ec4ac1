"""Progress that moves: step reports reach the driver under every executor, the live display shows a
bar per running cell, and a log gets timestamped lines at a bounded rate, never cut at 80 columns."""

from __future__ import annotations

import dataclasses
import io
import re

import pandas as pd
import pytest
from rich.console import Console

from geobench import bandits
from geobench.config import experiment_file, load_config
from geobench.executor import Cell, ExecutorConfig, _Reporter, run_cells
from geobench.progress import LineDisplay, LiveDisplay, StepReport, no_report
from tests.conftest import tiny_llm_config

STEPS = 5


def reporting_cell(name: str, report: StepReport = no_report) -> pd.DataFrame:
    """A cell of STEPS steps that reports 'loss' at every step and nothing else; its rows say the same."""
    rows = []
    for step in range(1, STEPS + 1):
        value = float(len(name) * step)
        rows.append({"seed": 0, "step": step, "metric": "loss", "value": value})
        report(step, STEPS, {"loss": value})
    return pd.DataFrame(rows)


def silent_cell(name: str) -> pd.DataFrame:
    """A cell that reports nothing: its rows reach a listener when it ends."""
    return pd.DataFrame([{"seed": s, "step": 0, "metric": "winmass", "value": 0.25 * (s + 1)} for s in (0, 1)])


class Recorder:
    """A :class:`~geobench.executor.CellListener` that keeps what it is told."""

    def __init__(self):
        self.events: list[tuple] = []

    def start(self, name, key):
        self.events.append(("start", name, dict(key)))

    def log(self, name, step, metrics):
        self.events.append(("log", name, step, dict(metrics)))

    def finish(self, name):
        self.events.append(("finish", name))

    def logged(self) -> dict[tuple[str, int, str], float]:
        return {(e[1], e[2], m): v for e in self.events if e[0] == "log" for m, v in e[3].items()}

    def per_cell(self) -> dict[str, list[str]]:
        kinds: dict[str, list[str]] = {}
        for event in self.events:
            kinds.setdefault(event[1], []).append(event[0])
        return kinds


def _cells() -> list[Cell]:
    return [
        Cell({"variant": "alpha"}, reporting_cell, ("alpha",), reports_steps=True),
        Cell({"variant": "beta-longer"}, reporting_cell, ("beta-longer",), reports_steps=True),
        Cell({"variant": "reference"}, silent_cell, ("reference",)),
    ]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ExecutorConfig("ray", workers=2)
    ray.shutdown()


@pytest.mark.parametrize("kind", ["serial", "processes", "ray"])
def test_every_step_report_reaches_the_driver_whatever_runs_the_cells(kind, request, capsys):
    base = request.getfixturevalue("local_ray") if kind == "ray" else ExecutorConfig(kind, workers=2)
    recorder = Recorder()
    written = {}
    executor = dataclasses.replace(base, listener=recorder)
    run_cells(_cells(), lambda key, rows: written.update({key["variant"]: rows}), executor, description="toy cells")
    expected = {("variant=alpha", s, "loss"): 5.0 * s for s in range(1, STEPS + 1)}
    expected |= {("variant=beta-longer", s, "loss"): 11.0 * s for s in range(1, STEPS + 1)}
    expected |= {("variant=reference", 0, "winmass"): 0.375}  # no step reports: its rows' seed mean, at the end
    assert recorder.logged() == expected
    for name, kinds in recorder.per_cell().items():
        assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("start") == 1, (name, kinds)
    assert set(written) == {"alpha", "beta-longer", "reference"}
    err = capsys.readouterr().err  # not a terminal here: plain lines
    for label in ("variant=alpha", "variant=beta-longer", "variant=reference"):
        assert re.search(rf"^\[\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\] toy cells: {label} started", err, re.M), err
        assert re.search(rf"toy cells: {label} done in \d+s \(\d/3 cells\)$", err, re.M), err


def test_nothing_is_sent_when_nothing_watches(capsys):
    calls = []

    def write(key, rows):
        calls.append(key)

    run_cells(_cells(), write, ExecutorConfig("processes", workers=2), description="quiet", show_progress=False)
    assert len(calls) == 3 and capsys.readouterr().err == ""


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_a_line_per_cell_at_most_every_ten_seconds_and_one_at_its_end():
    clock, stream = FakeClock(), io.StringIO()
    label = "variant=adpo-listwise-raw scenario=gaussian-outliers level=heavy hidden=256 seed=0 a long key"
    display = LineDisplay("bandit cells", 12, clock=clock, stream=stream)
    display.started(label)
    for step in range(1, 101):  # one step a second for 100 s
        clock.now = float(step)
        display.step(label, step, 100, {"winmass": step / 100, "top_prob": 0.5} if step % 25 == 0 else {})
    display.done(label)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 + 10 + 1  # started, one every 10 s, done
    assert all(len(line) > 80 and label in line for line in lines)  # whole lines, whatever their width
    assert lines[3].endswith(f"{label} step 30/100, winmass=0.25 top_prob=0.5, eta 1m10s")
    assert lines[-1].endswith(f"{label} done in 1m40s (1/12 cells)")


def test_the_live_display_has_a_step_bar_per_running_cell_under_the_cells_bar():
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with LiveDisplay("llm cells", 10, console) as display:
        display.started("variant=opo seed=0")
        display.step("variant=opo seed=0", 0, 100, {"heldout_accuracy": 0.25})
        display.step("variant=opo seed=0", 37, 100, {"reward_mean": 0.4123, "loss": 1.0})
        display.started("variant=grpo seed=0")
        tasks = {t.description.strip(): t for t in display.progress.tasks}
        assert list(tasks) == ["[bold]llm cells", "variant=opo seed=0", "variant=grpo seed=0"]
        opo = tasks["variant=opo seed=0"]
        assert (opo.completed, opo.total) == (37, 100)
        assert opo.fields == {"count": "step 37/100", "latest": "heldout_accuracy=0.25 reward_mean=0.412"}
        assert tasks["variant=grpo seed=0"].total is None  # started, no step yet: an indeterminate bar
        display.done("variant=opo seed=0")
        tasks = {t.description.strip(): t for t in display.progress.tasks}
        assert list(tasks) == ["[bold]llm cells", "variant=grpo seed=0"]
        assert tasks["[bold]llm cells"].fields["count"] == "1/10 cells"
    assert "step 37/100" in console.file.getvalue()


def test_a_worker_sends_every_step_with_metrics_and_the_others_at_most_every_quarter_second():
    clock, sent = FakeClock(), []
    report = _Reporter(sent.append, 3, clock=clock)
    report.start()
    for step in range(1, 1001):  # a step every millisecond
        clock.now = step / 1000
        report(step, 1000, {"winmass": 0.5} if step % 100 == 0 else None)
    assert sent[0] == (3, 0, 0, {})
    with_metrics = [e for e in sent if e[3]]
    assert [e[1] for e in with_metrics] == list(range(100, 1001, 100))
    assert len(sent) <= 1 + 10 + 1000 // 250 + 1 and sent[-1][1] == 1000  # the last step always goes


def test_an_llm_cell_reports_every_logged_row_as_it_is_logged(tiny_model, tmp_path):
    from geobench.llm import run

    recorder = Recorder()
    config = tiny_llm_config(tiny_model, algos=("grpo", "opo"), steps=3, eval_every=2)
    csv = run(config, tmp_path / "llm", show_progress=False, executor=ExecutorConfig(listener=recorder))
    rows = pd.concat([pd.read_csv(csv), pd.read_csv(tmp_path / "llm" / "timing" / "timing.csv")])
    from_csv = {
        (f"variant={r.variant} seed={r.seed}", int(r.step), r.metric): float(r.value) for r in rows.itertuples()
    }
    logged = recorder.logged()
    assert logged.keys() == from_csv.keys()
    assert all(logged[k] == pytest.approx(v, rel=1e-9, nan_ok=True) for k, v in from_csv.items())
    assert {k[1] for k in logged if k[2] == "heldout_accuracy"} == {0, 2, 3}


def test_a_bandit_cell_reports_its_seed_means_at_every_evaluation(tmp_path):
    config = dataclasses.replace(
        load_config(bandits.BanditConfig, experiment_file("adpo_fig2"), "quick"),
        noises=("cauchy",),
        levels=("light",),
        methods=("grpo",),
        hidden=(16,),
        seeds=2,
        steps=6,
        eval_every=3,
        eval_contexts=64,
    )
    recorder = Recorder()
    csv = bandits.run(config, tmp_path / "b", show_progress=False, executor=ExecutorConfig(listener=recorder))
    frame = pd.read_csv(csv)
    means = frame.groupby(["variant", "step", "metric"])["value"].mean()
    logged = {(name.split("variant=")[1], step, m): v for (name, step, m), v in recorder.logged().items()}
    assert logged.keys() == set(means.index)
    assert all(logged[k] == pytest.approx(v, rel=1e-9) for k, v in means.items())
