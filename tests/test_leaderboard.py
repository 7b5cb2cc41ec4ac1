"""geobench leaderboard: every section on the tiny budget, cells reused on a second call, identity flags
that fire for a constructed identical pair and not for a different one, and LEADERBOARD.md with its heat
map drawn from the CSVs alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geobench.battery import load_battery
from geobench.battery.finals import FINALS_COLUMNS, START, identities
from geobench.battery.leaderboard import run
from geobench.executor import ExecutorConfig
from geobench.report.leaderboard import FILES, LEADERBOARD, scores, write_leaderboard
from tests.conftest import cli_error

POOL = ExecutorConfig(kind="serial", threads=1)
TWIN = Path(__file__).parent / "plugins" / "grpo_twin.py"
REFERENCES = {"bandits": {"sampled": "grpo", "pairwise": "dpo"}}


def test_the_tiny_leaderboard_writes_every_section_flags_a_twin_and_reuses_its_cells(register_plugin, tmp_path):
    register_plugin(TWIN)
    config = load_battery(("grpo-twin", "dr-grpo"), "tiny", {})
    path = run(config, tmp_path, show_progress=False, executor=POOL)
    assert path == tmp_path / "leaderboard@tiny" / LEADERBOARD
    text = path.read_text()
    for heading in (
        "# Leaderboard", "## Headline", "## Toy saturation", "## Noisy bandits", "## MuJoCo distillation",
        "## LLM math RL", "## Objectives that coincide", "## Objectives that failed", "## Geometry",
    ):  # fmt: skip
        assert heading in text, heading
    assert "![heat map](leaderboard_heatmap.png)" in text and (path.parent / "leaderboard_heatmap.png").exists()
    same = pd.read_csv(path.parent / "identities.csv")
    twin = same[same["objective"] == "grpo-twin"]
    assert set(twin.loc[twin["same_as"] == "grpo", "experiment"]) == {"toy-saturation", "bandits", "llm"}
    assert "| grpo-twin | - | sampled |" in text and "same as grpo" in text  # not ranked: its numbers are GRPO's
    assert not ((same["objective"] == "dr-grpo") & (same["same_as"] == "grpo") & (same["experiment"] == "llm")).any()
    finals = pd.read_csv(path.parent / "finals.csv")
    assert tuple(finals.columns) == FINALS_COLUMNS and START in set(finals["objective"])
    cells = pd.read_csv(path.parent / "cells.csv")
    assert cells["computed"].sum() > 0 and set(cells["objective"]) == {"grpo-twin", "dr-grpo"}
    first = path.read_text()

    again = run(config, tmp_path, show_progress=False, executor=POOL)  # every cell is reused
    cells = pd.read_csv(again.parent / "cells.csv")
    assert cells["computed"].sum() == 0 and cells["reused"].sum() == cells["cells"].sum() > 0
    strip = lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("Cells:"))  # noqa: E731
    assert strip(again.read_text()) == strip(first)

    # The report needs only the CSVs: drawn again from a copy of them, the same Markdown and figure.
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in FILES:
        shutil.copy(again.parent / name, copy / name)
    write_leaderboard(copy)
    assert (copy / LEADERBOARD).read_text() == again.read_text()
    assert (copy / "leaderboard_heatmap.pdf").read_bytes() == (again.parent / "leaderboard_heatmap.pdf").read_bytes()


def _rows(variant: str, values: np.ndarray) -> pd.DataFrame:
    """A bandit run's rows of one method: one scenario, 3 seeds, len(values) / 3 logged steps."""
    steps = len(values) // 3
    return pd.DataFrame(
        {
            "variant": variant, "scenario": "cauchy", "level": "light", "hidden": 128,
            "seed": np.repeat([0, 1, 2], steps), "step": np.tile(np.arange(steps), 3),
            "metric": "winmass", "value": values,
        }
    )  # fmt: skip


def test_an_identity_flag_fires_for_identical_rows_and_for_coinciding_updates_and_not_otherwise():
    rng = np.random.default_rng(0)
    base = rng.random(12)
    frame = pd.concat(
        [_rows("a", base), _rows("b", base * (1 + 1e-9)), _rows("c", base + 1e-3)],
        ignore_index=True,
    )
    found = identities("bandits", frame)
    assert set(zip(found["objective"], found["same_as"], strict=True)) == {("a", "b"), ("b", "a")}
    assert found["evidence"].str.startswith("identical rows: 12 values").all()
    # On the LLM a pair can also coincide by the per-pair update check, whatever its rows.
    pairs = pd.DataFrame(
        {"experiment": "llm", "variant": "a", "seed": 0, "step": 1, "other": "c", "update": [1, 2], "cosine": 0.999}
    )
    llm = frame.drop(columns=["scenario", "level", "hidden"]).assign(metric="reward_mean")
    found = identities("llm", llm, pairs)
    assert ("a", "c") in set(zip(found["objective"], found["same_as"], strict=True))
    assert not identities("llm", llm, pairs.assign(cosine=[0.999, 0.5]))["objective"].eq("c").any()


def _finals(**objectives: list[float]) -> pd.DataFrame:
    rows = [
        ("bandits", "cauchy/light", "winmass", name, seed, value)
        for name, values in objectives.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows, columns=list(FINALS_COLUMNS))


def test_scores_pair_seeds_with_the_reference_and_mark_twins_and_failures():
    finals = _finals(grpo=[0.2, 0.5, 0.3, 0.6], up=[0.3, 0.6, 0.4, 0.7], flat=[0.3, 0.4, 0.2, 0.8], **{START: [0.1]})
    objectives = pd.DataFrame({"objective": ["grpo", "up", "flat", "twin", "bad"], "feedback": "sampled"})
    twin = pd.DataFrame({"experiment": "bandits", "objective": ["twin", "grpo"], "same_as": ["grpo", "twin"]})
    finals = pd.concat([finals, _finals(twin=[0.2, 0.5, 0.3, 0.6])], ignore_index=True)
    failures = pd.DataFrame({"objective": ["bad"], "experiment": ["bandits"], "error": ["loss is nan"]})
    scored = scores(finals, objectives, twin, REFERENCES, failures)
    one = scored[scored["column"] == "cauchy/light"].set_index("objective")
    # +0.1 at every seed: the paired CI is a point, resolved, although the seeds spread over 0.2 .. 0.7
    assert one.loc["up", "side"] == "higher" and one.loc["up", "diff_low"] == pytest.approx(0.1)
    assert one.loc["flat", "side"] == "not resolved" and one.loc["grpo", "side"] == "reference"
    assert one.loc["twin", "side"] == "same as grpo" and np.isnan(one.loc["twin", "rank"])
    assert one.loc["bad", "side"] == "failed" and START not in one.index
    assert one.loc["up", "rank"] == 1 and one.loc["grpo", "rank"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--algo", "nope"], "unknown algorithm 'nope'"),
        (["--budget", "huge"], "unknown budget 'huge'"),
        (["--experiments", "toy"], "unknown experiment 'toy'"),
    ],
)
def test_bad_leaderboard_input_is_one_line(args, message, tmp_path):
    assert message in cli_error("leaderboard", *args, "--results", str(tmp_path))
    assert not (tmp_path / "leaderboard").exists() and not (tmp_path / "battery").exists()


def test_the_committed_leaderboard_is_drawn_from_its_csvs(tmp_path):
    """If this fails, LEADERBOARD.md was written by other code than its CSVs' (or by hand)."""
    folder = Path(__file__).parents[1] / "results" / "leaderboard"
    if not (folder / "leaderboard.json").exists():
        pytest.skip("no committed leaderboard (make leaderboard)")
    for name in FILES:
        shutil.copy(folder / name, tmp_path / name)
    write_leaderboard(tmp_path)
    assert (tmp_path / LEADERBOARD).read_text() == (folder / LEADERBOARD).read_text()
    meta = json.loads((folder / "leaderboard.json").read_text())
    assert meta["budget"] == "quick" and len(meta["objectives"]) >= 40
