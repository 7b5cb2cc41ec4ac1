"""Benchmark: one RL step of geobench's GRPO against TRL's ``GRPOTrainer``, same model and batch.

Both train the committed warm-start tiny Qwen3 on the arithmetic task: 16 prompts x 6
completions per step, at most 6 new tokens, temperature 1, clip 0.2, beta 0, token-mean
loss (TRL's ``loss_type="dapo"`` is geobench's ``agg="token-mean"``), no gradient
checkpointing, one thread, math-verify's parse cache cleared before each engine. A step is
rollout + grading + log-probs + update; the median over the steps after the first is
reported. Needs ``pip install trl``; writes ``benchmarks/results/llm_vs_trl.csv``.
"""

from __future__ import annotations

import random
import statistics
import time

import torch
from _bench import write_results  # benchmarks/ is on sys.path when run as a script

from geobench.llm import grading
from geobench.llm.model import load_policy
from geobench.llm.rollout import SamplingSettings, make_rollout
from geobench.llm.settings import LLMConfig
from geobench.llm.tasks import ArithmeticTask
from geobench.llm.train import train_cell
from geobench.llm.trl_engine import correctness, prompt_dataset
from geobench.llm.warmstart import WarmStartConfig, ensure_warmstart

PROMPTS, GROUP, MAX_NEW, STEPS, LR = 16, 6, 6, 12, 3e-4


def geobench_steps(folder: str) -> list[float]:
    policy, tokenizer = load_policy(folder)
    rollout = make_rollout("hf", folder, tokenizer, SamplingSettings(max_new_tokens=MAX_NEW))
    settings = LLMConfig(
        steps=STEPS,
        prompts_per_step=PROMPTS,
        group=GROUP,
        lr=LR,
        eval_every=10**9,
        eval_prompts=1,
        hparams={"grpo": {"agg": "token-mean"}},
    )
    ends: dict[int, float] = {}  # step -> when its first report came (its rows; an evaluation follows)
    train_cell(
        policy,
        tokenizer,
        ArithmeticTask(),
        rollout,
        "grpo",
        0,
        settings,
        on_step=lambda step, total, metrics=None: ends.setdefault(step, time.perf_counter()),
    )
    stamps = [ends[step] for step in sorted(ends) if step >= 1]
    return [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]  # the first step is a warm-up


def trl_steps(folder: str) -> list[float]:
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    policy, tokenizer = load_policy(folder)
    data = prompt_dataset(ArithmeticTask().sample(PROMPTS * STEPS, random.Random(0)))

    class Clock(TrainerCallback):
        stamps: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.stamps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.stamps[-1] = time.perf_counter() - self.stamps[-1]

    config = GRPOConfig(
        output_dir="/tmp/geobench-trl-bench",
        per_device_train_batch_size=PROMPTS * GROUP,
        num_generations=GROUP,
        max_completion_length=MAX_NEW,
        max_steps=STEPS,
        learning_rate=LR,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        temperature=1.0,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10**9,
        shuffle_dataset=False,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=correctness,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    trainer.train()
    return Clock.stamps[1:]


def main() -> None:
    torch.set_num_threads(1)
    folder = str(ensure_warmstart(WarmStartConfig()))
    rows = []
    for engine, fn in (("geobench", geobench_steps), ("trl", trl_steps)):
        grading._parsed.cache_clear()  # both engines grade through it: start each cold
        times = fn(folder)
        rows.append(
            {
                "engine": engine,
                "step_s_median": round(statistics.median(times), 4),
                "steps_timed": len(times),
                "prompts": PROMPTS,
                "group": GROUP,
                "max_new_tokens": MAX_NEW,
                "threads": 1,
            }
        )
    write_results(rows, "llm_vs_trl")


if __name__ == "__main__":
    main()
