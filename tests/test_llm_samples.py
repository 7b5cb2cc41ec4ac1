"""samples.jsonl: a few completions per LLM cell, bounded, the same prompts for every algorithm, resumable."""

from __future__ import annotations

import json

from geobench.llm import run
from geobench.llm.samples import FIELDS, PER_STEP, due
from tests.conftest import tiny_llm_config


def _records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_cell_keeps_two_completions_at_its_first_evaluated_and_last_steps(tiny_model, tmp_path):
    config = tiny_llm_config(tiny_model, algos=("grpo", "opo"), seeds=2, steps=5, eval_every=2)
    run(config, tmp_path / "llm", show_progress=False)
    records = _records(tmp_path / "llm" / "samples.jsonl")
    steps = [s for s in range(1, 6) if due(s, 5, 2)]
    assert steps == [1, 2, 4, 5]
    assert len(records) == 2 * 2 * len(steps) * PER_STEP  # algorithms x seeds x kept steps x per step
    assert all(list(r) == list(FIELDS) for r in records)
    cells = sorted({(r["variant"], r["seed"]) for r in records})
    assert cells == [("grpo", 0), ("grpo", 1), ("opo", 0), ("opo", 1)]
    for r in records:
        assert 1 <= r["length"] <= config.max_new_tokens and r["reward"] in (0.0, 1.0)
        assert not r["truncated"] or r["length"] == config.max_new_tokens
    prompts = {
        cell: [r["prompt"] for r in records if (r["variant"], r["seed"]) == cell and r["step"] in steps]
        for cell in cells
    }
    assert prompts[("grpo", 0)] == prompts[("opo", 0)] != prompts[("grpo", 1)]  # the seed picks the prompts


def test_a_resumed_sweep_merges_the_same_samples(tiny_model, tmp_path):
    config = tiny_llm_config(tiny_model, algos=("grpo", "opo"), steps=2)
    run(config, tmp_path / "whole", show_progress=False)
    whole = (tmp_path / "whole" / "samples.jsonl").read_bytes()
    run(config, tmp_path / "resumed", show_progress=False)
    (cell,) = (tmp_path / "resumed").glob("cells/*/variant=opo__seed=0.csv")
    cell.unlink()  # the cell counts as not done: its samples are computed again, the other cell's kept
    for stale in cell.parent.glob("variant=opo__seed=0.*"):
        stale.unlink()
    run(config, tmp_path / "resumed", show_progress=False)
    assert (tmp_path / "resumed" / "samples.jsonl").read_bytes() == whole


def test_the_report_shows_each_algorithm_s_completions_at_start_middle_and_end(tiny_model, tmp_path):
    from geobench.report import draw_llm
    from geobench.report.llm_artifacts import samples_table

    config = tiny_llm_config(tiny_model, algos=("grpo", "opo"), steps=5, eval_every=2)
    run(config, tmp_path / "llm", show_progress=False)
    draw_llm(tmp_path / "llm", tmp_path / "figures")
    text = (tmp_path / "figures" / "llm_samples.md").read_text()
    records = _records(tmp_path / "llm" / "samples.jsonl")
    table = [line for line in text.splitlines() if line.startswith("| ") and "algorithm" not in line]
    assert [line.split(" | ")[:2] for line in table] == [
        [f"| {name}", f"{when}: step {step}, seed 0"]
        for name in ("OPO", "GRPO")  # the report's order of algorithms
        for when, step in (("start", 1), ("middle", 4), ("end", 5))
    ]
    first = next(r for r in records if (r["variant"], r["step"]) == ("opo", 4))
    shown = first["completion"].replace("`", "'").replace("\n", " ⏎ ").replace("|", "\\|")  # as a table cell shows it
    assert f"`{shown}`" in table[1]  # OPO, middle
    assert "16 completions kept" in text and "(8 to 8 per cell" in text
    mine = samples_table(tmp_path / "llm", ("opo",))  # the battery card's: the objective's own
    assert "| OPO |" in mine and "| GRPO |" not in mine


def test_a_run_without_samples_says_so(tmp_path):
    from geobench.report.llm_artifacts import samples_table

    assert samples_table(tmp_path, ("opo",)).startswith("No samples in this run")
