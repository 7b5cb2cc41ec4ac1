"""--report-to: what each tracker wrote, read back with the tracker's own reader, equals the CSV rows.

A tiny LLM sweep streams to every installed tracker at once; TensorBoard is read with its event
accumulator, W&B's offline run file record by record, trackio through its local database, the JSONL
line by line. A tracker that is not installed here is skipped with the reason.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest

from geobench.executor import ExecutorConfig
from geobench.results import config_dict
from geobench.trackers import TRACKERS, Trackers, installed, parse_report_to
from tests.conftest import tiny_llm_config

STEPS = 3


@pytest.fixture(scope="module")
def streamed(tiny_model, tmp_path_factory):
    """A 2-cell, 3-step LLM sweep streamed to every installed tracker: (run folder, names, CSV rows by cell)."""
    from geobench.llm import run

    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("streamed")
    patch.delenv("WANDB_MODE", raising=False)  # the default path: offline
    patch.setenv("TRACKIO_DIR", str(folder / "trackio-db"))
    patch.setenv("TRACKIO_PROJECT", "geobench-test")
    names = tuple(name for name in TRACKERS if installed(name))
    config = tiny_llm_config(tiny_model, algos=("grpo", "opo"), steps=STEPS, eval_every=2)
    trackers = Trackers(names, folder / "llm" / "trackers", "llm", config_dict(config))
    try:
        csv = run(config, folder / "llm", show_progress=False, executor=ExecutorConfig(listener=trackers))
    finally:
        trackers.close()
        patch.undo()
    rows = pd.concat([pd.read_csv(csv), pd.read_csv(folder / "llm" / "timing" / "timing.csv")])
    expected = {}
    for r in rows.itertuples():
        expected.setdefault(f"variant={r.variant} seed={r.seed}", {})[(int(r.step), r.metric)] = float(r.value)
    return folder / "llm" / "trackers", names, expected


def _same(got: dict, expected: dict, rel: float = 1e-9) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=rel, nan_ok=True), key


def test_report_to_takes_transformers_names():
    assert parse_report_to(None) == parse_report_to("none") == ()
    assert parse_report_to("jsonl,tensorboard,jsonl") == ("jsonl", "tensorboard")
    assert "jsonl" in parse_report_to("all") and set(parse_report_to("all")) <= set(TRACKERS)


def test_jsonl_holds_every_row_and_the_config(streamed):
    folder, _, expected = streamed
    for name, rows in expected.items():
        path = folder / "jsonl" / f"{name.replace(' ', '_')}.jsonl"
        header, *steps = (json.loads(line) for line in path.read_text().splitlines())
        assert header["run"] == name and header["config"]["steps"] == STEPS
        assert header["config"]["cell"] == {"variant": name.split()[0].split("=")[1], "seed": 0}
        got = {(s["step"], m): (float("nan") if v is None else v) for s in steps for m, v in s["metrics"].items()}
        _same(got, rows)


def test_tensorboard_holds_every_row_and_the_config(streamed):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, _, expected = streamed
    for name, rows in expected.items():
        events = EventAccumulator(str(folder / "tensorboard" / name.replace(" ", "_")), size_guidance={"scalars": 0})
        events.Reload()
        got = {(e.step, tag): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
        _same(got, rows, rel=1e-6)  # TensorBoard stores float32
        (text,) = events.Tensors("config/text_summary")
        assert '"algos": [' in text.tensor_proto.string_val[0].decode()


def _wandb_records(path: Path):
    """The records of a W&B offline run file: a 7-byte header, then LevelDB-style log blocks of 32 KiB,
    each chunk a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) and its bytes."""
    from wandb.proto import wandb_internal_pb2

    data, position, pending = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if length == 0 and kind == 0:  # padding to the block's end
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_writes_an_offline_run_per_cell_with_every_row(streamed):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    folder, _, expected = streamed
    runs = {}
    for path in (folder / "wandb").glob("offline-run-*/run-*.wandb"):  # offline: nothing was sent
        name, config, got = None, {}, {}
        for record in _wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                name = record.run.display_name
                config = {item.key: json.loads(item.value_json) for item in record.run.config.update}
            elif kind == "history":
                items = {
                    item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
                }
                step = items.pop("_step")
                got |= {
                    (step, k): (float("nan") if v == "NaN" else v) for k, v in items.items() if not k.startswith("_")
                }
        runs[name] = (config, got)
    assert set(runs) == set(expected)
    for name, (config, got) in runs.items():
        assert config["cell"]["seed"] == 0 and config["steps"] == STEPS and config["experiment"] == "llm"
        _same(got, expected[name])


def test_trackio_holds_every_row_in_its_local_database(streamed):
    pytest.importorskip("trackio", reason="the trackio extra is not installed")
    from trackio.sqlite_storage import SQLiteStorage

    _, _, expected = streamed
    assert set(SQLiteStorage.get_runs("geobench-test")) >= set(expected)
    for name, rows in expected.items():
        logs = SQLiteStorage.get_logs("geobench-test", name)
        got = {
            (log["step"], k): (float("nan") if v is None else v)
            for log in logs
            for k, v in log.items()
            if k not in ("step", "timestamp")
        }
        _same(got, rows)
        assert SQLiteStorage.get_run_config("geobench-test", name)["cell"]["variant"] in ("grpo", "opo")


def test_an_unknown_or_missing_tracker_is_one_line_before_any_work(refused, monkeypatch, tmp_path):
    out = tmp_path / "never"
    assert "unknown tracker 'mlflow'" in refused("bandits", "--report-to", "mlflow", "--out", str(out))
    monkeypatch.setattr("geobench.trackers.installed", lambda name: name != "wandb")  # as if not installed
    line = refused("bandits", "--report-to", "jsonl,wandb", "--out", str(out))
    assert line.endswith("--report-to wandb needs wandb: pip install -e '.[wandb]'")
    assert not out.exists()


def test_the_cli_streams_every_cell_of_a_bandit_sweep_to_jsonl(monkeypatch, capsys, tmp_path):
    from geobench.cli.main import main

    args = ["bandits", "--noise", "cauchy", "--level", "light", "--methods", "grpo", "--hidden", "16", "--seeds", "2"]
    args += ["--steps", "4", "--no-draw", "--quiet", "--out", str(tmp_path / "b"), "--report-to", "jsonl"]
    monkeypatch.setattr(sys, "argv", ["geobench", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays clean for data
    frame = pd.read_csv(tmp_path / "b" / "winmass.csv")
    files = sorted((tmp_path / "b" / "trackers" / "jsonl").glob("*.jsonl"))
    assert len(files) == frame.groupby(["scenario", "level", "hidden", "variant"]).ngroups == 2  # grpo, reference
    for path in files:
        header, *steps = (json.loads(line) for line in path.read_text().splitlines())
        variant = header["config"]["cell"]["variant"]
        assert header["config"]["seeds"] == 2
        means = frame[frame["variant"] == variant].groupby(["step", "metric"])["value"].mean()
        got = {(s["step"], m): v for s in steps for m, v in s["metrics"].items()}
        _same(got, means.to_dict())
