"""Benchmark: two RL steps per algorithm at the paper's batch shape, peak memory and step time.

The paper profile (OPO Sec. 9.1, ADPO Sec. 6.3): Qwen3-1.7B, 32 prompts x 6 rollouts, up to
1,280 new tokens, bf16. The model is ``random:qwen3-1.7b`` (the published architecture with
random weights, so no download); random weights rarely emit EOS, so every completion runs to
the token limit: the worst case for memory and time. Rollouts are HF ``generate`` (vLLM is not
exercised here). Writes ``benchmarks/results/llm_paper_shape[_NAME].csv``.

    python benchmarks/llm_paper_shape.py                       # the paper shape (a GPU with >= 40 GB)
    python benchmarks/llm_paper_shape.py --scale 16 --prompts 2 --group 3 --tokens 16 --name cpu
"""

from __future__ import annotations

import argparse
import random
import resource
import time

import torch
from _bench import write_results  # benchmarks/ is on sys.path when run as a script

from geobench.llm.model import load_policy
from geobench.llm.rollout import SamplingSettings, make_rollout
from geobench.llm.settings import ALGOS, LLMConfig
from geobench.llm.tasks import ArithmeticTask
from geobench.llm.train import train_cell


def _peak_memory_gb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def measure(algo: str, args: argparse.Namespace, device: str) -> dict:
    model = "random:qwen3-1.7b" + (f"/{args.scale}" if args.scale > 1 else "")
    policy, tokenizer = load_policy(model, args.dtype)
    policy.to(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sampling = SamplingSettings(1.0, 1.0, args.tokens)
    settings = LLMConfig(
        steps=2,
        prompts_per_step=args.prompts,
        group=args.group,
        minibatches=2,  # the authors' ratio: mini-batch = half the batch
        micro_batch=args.micro_batch,
        lr=2e-6,
        dynamic_sampling=False,  # a random model's groups are all wrong: DAPO would skip every update
        eval_every=10**9,
        eval_prompts=1,
        hparams={"adpo": {"tau": 0.8}},
    )
    task = ArithmeticTask()  # prompts only; the random model's answers are not the point
    start = time.perf_counter()
    rows = train_cell(policy, tokenizer, task, make_rollout("hf", model, tokenizer, sampling), algo, 0, settings)
    seconds = time.perf_counter() - start
    updates = [r["value"] for r in rows if r["metric"] == "update_time_s"]
    lengths = [r["value"] for r in rows if r["metric"] == "completion_length"]
    return {
        "algorithm": algo,
        "model": model,
        "dtype": args.dtype,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "prompts": args.prompts,
        "group": args.group,
        "max_new_tokens": args.tokens,
        "mean_completion_tokens": sum(lengths) / len(lengths),
        "micro_batch_prompts": args.micro_batch,
        "step_s": round(seconds / 2, 2),  # includes one greedy held-out evaluation of one prompt
        "update_s": round(sum(updates) / len(updates), 2),
        "peak_memory_gb": round(_peak_memory_gb(device), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=1, help="divide width, depth and heads by this")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--group", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=1280)
    parser.add_argument("--micro-batch", type=int, default=2, help="prompts per backward")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--name", default="", help="suffix of the CSV name (e.g. the card)")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(1)  # on a GPU too: the work is on the device, one host thread keeps runs comparable
    random.seed(0)
    rows = [measure(algo, args, device) for algo in args.algos.split(",")]
    write_results(rows, "llm_paper_shape" + (f"_{args.name}" if args.name else ""))


if __name__ == "__main__":
    main()
