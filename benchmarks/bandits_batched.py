"""Benchmark: training the seeds of a bandit cell as one batched computation vs a per-seed loop.

Both paths run the same code (`train_cell`); the loop calls it once per seed with a single
seed, which is what a plain implementation does. Target: batched >= 5x faster at 10 seeds.
Writes ``benchmarks/results/bandits_batched.csv``.
"""

from __future__ import annotations

import torch
from _bench import median_time, write_results  # benchmarks/ is on sys.path when run as a script

from geobench.bandits import BanditConfig
from geobench.bandits.train import pretrain_reference, train_cell
from geobench.config import experiment_file, load_config

SEEDS = list(range(10))
METHODS = ("adpo-listwise-raw", "dpo-hard", "grpo", "opo", "trpo")
STEPS = 40
REPEATS = 3


def main() -> None:
    torch.set_num_threads(1)
    config = load_config(BanditConfig, experiment_file("adpo_fig2"), "quick", {"steps": STEPS})
    env, settings = config.env(), config.settings()
    level = config.noise_level("cauchy", "medium")
    rows = []
    warm = pretrain_reference(env, 128, SEEDS[:2], settings)  # first calls pay one-off costs (vmap, allocator)
    for method in METHODS:
        train_cell(env, level, ("warm-up",), method, config.hparams.get(method, {}), warm, SEEDS[:2], settings)
    for method in METHODS:
        hp = config.hparams.get(method, {})

        def batched(method: str = method, hp: dict = hp) -> None:
            ref = pretrain_reference(env, 128, SEEDS, settings)
            train_cell(env, level, ("cauchy", "medium", 0), method, hp, ref, SEEDS, settings)

        def loop(method: str = method, hp: dict = hp) -> None:
            for seed in SEEDS:
                ref = pretrain_reference(env, 128, [seed], settings)
                train_cell(env, level, ("cauchy", "medium", 0), method, hp, ref, [seed], settings)

        batched_s = median_time(lambda _: batched(), REPEATS)
        loop_s = median_time(lambda _: loop(), REPEATS)
        rows.append(
            {
                "method": method,
                "seeds": len(SEEDS),
                "steps": STEPS,
                "batched_s": round(batched_s, 3),
                "per_seed_loop_s": round(loop_s, 3),
                "speedup": round(loop_s / batched_s, 2),
                "repeats": REPEATS,
                "target_speedup": 5.0,
            }
        )
        print(rows[-1], flush=True)
    write_results(rows, "bandits_batched")


if __name__ == "__main__":
    main()
