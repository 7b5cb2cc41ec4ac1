"""Benchmark: where one RL step of the quick regime goes, before and after the packed paths.

The shape is :func:`_bench.quick_regime`: the quick profile (16 prompts x 6 completions, up to
56 new tokens, the committed column-addition warm start) at 8 updates per rollout batch (4 epochs
x 2 mini-batches), GRPO, one thread. "before" runs transformers' ``generate`` and the padded
forward pass (the reference paths: ``packed.supports`` answers no), "after" the default
:mod:`geobench.llm.packed` paths. The two alternate in one process, ``REPS`` runs of ``STEPS``
steps each (run r of both at seed r, so they see the same prompts); a run's first step is a
warm-up and its last also evaluates, so neither is timed.

Phases of a step: ``rollout`` (sampling), ``grading`` (rewards), ``old`` (pi_old's no-grad
log-prob pass), ``update`` (the 8 optimizer updates: forward, backward, clip, AdamW),
``other`` (the rest: metrics, logging). ``seconds`` is the phase's median over the timed
steps, ``share`` its part of the sum of the phases' medians, ``tokens_per_s`` the batch's
real completion tokens over the phase's seconds (for ``update``, each token counts once per
epoch). Writes ``benchmarks/results/llm_step_breakdown.csv``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import defaultdict

import torch
from _bench import quick_regime, reference_paths, write_results  # benchmarks/ is on sys.path when run as a script

from geobench.llm import grading
from geobench.llm import train as trainer
from geobench.llm.model import load_policy
from geobench.llm.rollout import HFRollout, Rollouts
from geobench.llm.tasks import make_task

REPS, STEPS = 4, 7
PHASES = ("rollout", "grading", "old", "update", "other")


class Clock:
    """Seconds per phase of each step of ``train_cell``, through wrappers around the loop's parts."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] = defaultdict(float)
        self.in_update = False
        self.start = time.perf_counter()

    def timed(self, phase: str, fn):
        def wrapper(*args, **kwargs):
            if phase == "old" and self.in_update:  # the update's own forward passes are update time
                return fn(*args, **kwargs)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self.current[phase] += time.perf_counter() - start
            if isinstance(out, Rollouts):
                self.current["tokens"] = float(out.lengths.sum())
            return out

        return wrapper

    def update(self, fn):
        def wrapper(*args, **kwargs):
            self.in_update = True
            try:
                return self.timed("update", fn)(*args, **kwargs)
            finally:
                self.in_update = False

        return wrapper

    def step_done(self) -> None:
        now = time.perf_counter()
        self.current["step"] = now - self.start
        self.steps.append(dict(self.current))
        self.current, self.start = defaultdict(float), now


def run(folder: str, config, seed: int, reference: bool) -> list[dict[str, float]]:
    """Per-step phase seconds of one ``train_cell`` run (its first and last steps dropped)."""
    policy, tokenizer = load_policy(folder)
    task = make_task(config.dataset, config.levels)
    clock = Clock()
    rollout = HFRollout(tokenizer, config.sampling())
    rollout.generate = clock.timed("rollout", rollout.generate)
    patched = {
        "_rewards": clock.timed("grading", trainer._rewards),
        "_update": clock.update(trainer._update),
    }
    saved = {name: getattr(trainer, name) for name in patched}
    logprobs = Rollouts.logprobs
    Rollouts.logprobs = clock.timed("old", logprobs)
    grading._parsed.cache_clear()
    try:
        for name, fn in patched.items():
            setattr(trainer, name, fn)
        with reference_paths(reference):
            trainer.train_cell(policy, tokenizer, task, rollout, "grpo", seed, config, on_step=clock.step_done)
    finally:
        Rollouts.logprobs = logprobs
        for name, fn in saved.items():
            setattr(trainer, name, fn)
    return clock.steps[1:-1]


def summarise(path: str, steps: list[dict[str, float]], epochs: int) -> list[dict]:
    for s in steps:
        s["other"] = s["step"] - sum(s[p] for p in PHASES if p != "other")
    medians = {p: statistics.median(s[p] for s in steps) for p in (*PHASES, "step")}
    tokens = statistics.median(s["tokens"] for s in steps)
    total = sum(medians[p] for p in PHASES)
    rows = []
    for phase in (*PHASES, "step"):
        seconds = medians[phase]
        per_token = tokens * (epochs if phase == "update" else 1)
        rows.append(
            {
                "path": path,
                "phase": phase,
                "seconds": round(seconds, 4),
                "share": round(seconds / total, 3) if phase != "step" else 1.0,
                "tokens_per_s": round(per_token / seconds) if phase in ("rollout", "old", "update", "step") else "",
                "steps_timed": len(steps),
            }
        )
    return rows


def main() -> None:
    torch.set_num_threads(1)
    folder, config = quick_regime()
    config = dataclasses.replace(config, steps=STEPS)
    timed: dict[str, list] = {"before": [], "after": []}
    for rep in range(REPS):
        order = ("before", "after") if rep % 2 == 0 else ("after", "before")  # ABBA: drift cancels
        for path in order:
            timed[path] += run(folder, config, rep, reference=path == "before")
    rows = summarise("before", timed["before"], config.epochs) + summarise("after", timed["after"], config.epochs)
    before = {r["phase"]: r["seconds"] for r in rows if r["path"] == "before"}
    for r in rows:
        r["speedup"] = round(before[r["phase"]] / r["seconds"], 2) if r["seconds"] > 0 else ""
    write_results(rows, "llm_step_breakdown")


if __name__ == "__main__":
    main()
