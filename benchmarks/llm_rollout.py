"""Benchmark: rollout throughput (completion tokens per second) per backend on the warm-start model.

``hf`` always runs; ``vllm`` runs where vLLM and a CUDA device are present and is reported
as skipped otherwise. Writes ``benchmarks/results/llm_rollout.csv``.
"""

from __future__ import annotations

import statistics

import torch
from _bench import write_results  # benchmarks/ is on sys.path when run as a script

from geobench.llm.model import load_policy
from geobench.llm.rollout import SamplingSettings, make_rollout
from geobench.llm.tasks import ArithmeticTask
from geobench.llm.warmstart import WarmStartConfig, ensure_warmstart

PROMPTS, GROUP, REPEATS = 16, 6, 5


def main() -> None:
    import random

    torch.set_num_threads(1)
    folder = str(ensure_warmstart(WarmStartConfig()))
    prompts = [p.prompt for p in ArithmeticTask().sample(PROMPTS, random.Random(0))]
    rows = []
    for backend in ("hf", "vllm"):
        try:
            import vllm  # noqa: F401

            has_vllm = torch.cuda.is_available()
        except ImportError:
            has_vllm = False
        if backend == "vllm" and not has_vllm:
            rows.append({"backend": backend, "max_new_tokens": "-", "tokens_per_s_median": "skipped: no vLLM/CUDA"})
            continue
        for max_new in (6, 32):
            policy, tokenizer = load_policy(folder)
            rollout = make_rollout(backend, folder, tokenizer, SamplingSettings(max_new_tokens=max_new))
            rollout.generate(policy, prompts, GROUP, seed=0)  # warm-up
            speeds = [rollout.generate(policy, prompts, GROUP, seed=i).tokens_per_s for i in range(1, REPEATS + 1)]
            rows.append(
                {
                    "backend": backend,
                    "max_new_tokens": max_new,
                    "tokens_per_s_median": round(statistics.median(speeds), 1),
                }
            )
    write_results(rows, "llm_rollout")


if __name__ == "__main__":
    main()
