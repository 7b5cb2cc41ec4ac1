"""The device check of issue 25: two RL steps per algorithm at the paper's batch shape on one GPU.

Random Qwen3-1.7B (``random:qwen3-1.7b``, no download), bf16, HF rollouts, 32 prompts x 6 completions
up to 1,280 new tokens, micro-batches of 2 prompts (the OPO paper profile's shape), for each algorithm:
step time, update time and ``torch.cuda.max_memory_allocated`` (reset per algorithm). The CSV
(``benchmarks/results/gpu_check[_NAME].csv``) is rewritten after every algorithm, so a run stopped by
its time limit keeps the algorithms it finished. ``--tiny`` is the CPU shape that tests this file.

    bash benchmarks/gpu_check.sh                # on one GPU, under 10 minutes
    python benchmarks/gpu_check.py --tiny       # any CPU, seconds
"""

from __future__ import annotations

import argparse
import random

import torch
from _bench import write_results  # benchmarks/ is on sys.path when run as a script
from llm_paper_shape import measure

from geobench.llm.settings import ALGOS

PAPER = {"scale": 1, "prompts": 32, "group": 6, "tokens": 1280, "micro_batch": 2, "dtype": "bfloat16"}
TINY = {"scale": 64, "prompts": 2, "group": 2, "tokens": 8, "micro_batch": 1, "dtype": "float32"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="a CPU-sized shape (random:qwen3-1.7b/64, 2 x 2 x 8)")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--name", default="", help="suffix of the CSV name")
    args = parser.parse_args(argv)
    shape = argparse.Namespace(**(TINY if args.tiny else PAPER))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        raise SystemExit("gpu_check: no GPU here; run it on one, or pass --tiny for the CPU shape")
    torch.set_num_threads(1)
    random.seed(0)
    name = "gpu_check" + ("_tiny" if args.tiny else "") + (f"_{args.name}" if args.name else "")
    rows = []
    for algo in args.algos.split(","):
        rows.append(measure(algo, shape, device))
        write_results(rows, name)  # after each algorithm: a timed-out run keeps what it finished
        if device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
