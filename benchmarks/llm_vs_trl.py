"""Benchmark: one RL step of geobench's GRPO against TRL's ``GRPOTrainer``, same model, batch and updates.

Both train the committed column-addition warm start (the quick profile's model) at the quick
regime's shape (:func:`_bench.quick_regime`): 16 prompts x 6 completions, up to 56 new tokens,
temperature 1, 8 updates per rollout batch (4 epochs x 2 mini-batches of 8 prompts; TRL's
``num_iterations=4, steps_per_generation=2``), clip 0.2, beta 0, token-mean loss (TRL's
``loss_type="dapo"`` is geobench's ``agg="token-mean"``), no gradient checkpointing, one
thread, the same grader (math-verify, its parse cache cleared before each run). A step is
rollout + grading + pi_old's log-probs + the 8 updates. ``geobench-reference`` is geobench
on its reference paths (transformers' ``generate`` and the padded forward pass, the code
before :mod:`geobench.llm.packed`).

The engines alternate in one process (``REPS`` rounds, the order reversed every round), each
run ``STEPS`` steps from a fresh load of the warm start; a run's first step (warm-up) and
geobench's last (it also evaluates) are not timed. The machine is shared, so what is reported
is each engine's median step (and quartiles) and the ratio of the medians, TRL's over each path's.
Needs ``pip install trl``; writes ``benchmarks/results/llm_vs_trl.csv``.
"""

from __future__ import annotations

import random
import statistics
import time

import torch
from _bench import quick_regime, reference_paths, write_results  # benchmarks/ is on sys.path when run as a script

from geobench.llm import grading
from geobench.llm.model import load_policy
from geobench.llm.rollout import make_rollout
from geobench.llm.tasks import make_task
from geobench.llm.train import train_cell
from geobench.llm.trl_engine import correctness, prompt_dataset

REPS, STEPS = 6, 6


def geobench_steps(folder: str, config, seed: int, reference: bool = False) -> list[float]:
    policy, tokenizer = load_policy(folder)
    rollout = make_rollout("hf", folder, tokenizer, config.sampling())
    ends: dict[int, float] = {}  # step -> when its first report came (its rows; an evaluation may follow)
    with reference_paths(reference):
        train_cell(
            policy,
            tokenizer,
            make_task(config.dataset, config.levels),
            rollout,
            "grpo",
            seed,
            config,
            on_step=lambda step, total, metrics=None: ends.setdefault(step, time.perf_counter()),
        )
    stamps = [ends[step] for step in sorted(ends) if step >= 1]
    return [b - a for a, b in zip(stamps[1:-1], stamps[2:], strict=True)]  # the first step is a warm-up


def trl_steps(folder: str, config, seed: int) -> list[float]:
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    policy, tokenizer = load_policy(folder)
    task = make_task(config.dataset, config.levels)
    data = prompt_dataset(task.sample(config.prompts_per_step * config.steps, random.Random(seed)), tokenizer, config)
    updates = config.epochs * config.minibatches
    stamps: list[float] = []

    class Clock(TrainerCallback):
        """A stamp at the start of each rollout batch's first update, and at the end."""

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step % updates == 0:
                stamps.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    trl_config = GRPOConfig(
        output_dir="/tmp/geobench-trl-bench",
        per_device_train_batch_size=config.prompts_per_step * config.group // config.minibatches,
        steps_per_generation=config.minibatches,
        gradient_accumulation_steps=1,
        num_iterations=config.epochs,
        num_generations=config.group,
        max_completion_length=config.max_new_tokens,
        max_steps=config.steps * updates,
        learning_rate=config.lr,
        lr_scheduler_type="cosine",
        warmup_steps=int(config.warmup_ratio * config.steps * updates),
        max_grad_norm=config.max_grad_norm,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=0,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10**9,
        disable_tqdm=True,
        shuffle_dataset=False,
        seed=seed,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=correctness,
        args=trl_config,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return [b - a for a, b in zip(stamps[1:-1], stamps[2:], strict=True)]


ENGINES = {
    "geobench": lambda folder, config, seed: geobench_steps(folder, config, seed),
    "geobench-reference": lambda folder, config, seed: geobench_steps(folder, config, seed, reference=True),
    "trl": trl_steps,
}


def main() -> None:
    torch.set_num_threads(1)
    folder, config = quick_regime(steps=STEPS)
    times: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    for rep in range(REPS):
        order = list(ENGINES) if rep % 2 == 0 else list(reversed(ENGINES))
        for engine in order:
            grading._parsed.cache_clear()  # every engine grades through it: start each run cold
            times[engine] += ENGINES[engine](folder, config, rep)
            assert torch.get_num_threads() == 1, "an engine changed torch's thread count"
    medians = {engine: statistics.median(t) for engine, t in times.items()}
    rows = [
        {
            "engine": engine,
            "step_s_median": round(medians[engine], 4),
            "step_s_q1": round(statistics.quantiles(times[engine], n=4)[0], 4),
            "step_s_q3": round(statistics.quantiles(times[engine], n=4)[2], 4),
            "trl_over_this": round(medians["trl"] / medians[engine], 2),
            "steps_timed": len(times[engine]),
            "prompts": config.prompts_per_step,
            "group": config.group,
            "max_new_tokens": config.max_new_tokens,
            "updates_per_batch": config.epochs * config.minibatches,
            "threads": torch.get_num_threads(),
        }
        for engine in ENGINES
    ]
    write_results(rows, "llm_vs_trl")


if __name__ == "__main__":
    main()
