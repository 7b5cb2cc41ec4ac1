"""Benchmark: actor update time per algorithm at one identical micro-batch (ADPO Table 4, like for like).

The paper's Table 4 times ADPO at micro-batch 8 and GRPO/GSPO at 6. Here every algorithm
updates the same model on the same rollouts (16 prompts x 6 completions, completions padded
to T tokens) through the trainer's own update (`geobench.llm.train._update`): forward,
backward, clip and AdamW step. Writes ``benchmarks/results/llm_update_time.csv``.
"""

from __future__ import annotations

import torch
from _bench import median_time, write_results  # benchmarks/ is on sys.path when run as a script

from geobench.llm.model import load_policy
from geobench.llm.rollout import Rollouts
from geobench.llm.settings import ALGOS, LLMConfig
from geobench.llm.train import _scheduler, _update
from geobench.llm.warmstart import WarmStartConfig, ensure_warmstart
from geobench.objectives import make_objective

PROMPTS, GROUP, REPEATS = 16, 6, 5
LENGTHS = (6, 32)  # the quick profile's completions, and longer ones where the model dominates


def fixed_rollouts(tokenizer, length: int, seed: int = 0) -> Rollouts:
    """Random completions of ``length`` tokens (content does not matter for timing)."""
    gen = torch.Generator().manual_seed(seed)
    prompts = tokenizer([f"{i}+{i}=" for i in range(PROMPTS)], return_tensors="pt", padding=True)
    n = PROMPTS * GROUP
    ids = torch.randint(3, len(tokenizer), (n, length), generator=gen)
    return Rollouts(
        prompts["input_ids"].repeat_interleave(GROUP, 0),
        prompts["attention_mask"].repeat_interleave(GROUP, 0),
        ids,
        torch.ones_like(ids),
        [""] * n,
        torch.zeros(n, dtype=torch.bool),
        0.0,
    )


def time_update(folder: str, algo: str, length: int) -> float:
    """Median seconds of one update of ``algo`` on fixed rollouts of ``length`` tokens."""
    policy, tokenizer = load_policy(folder)
    rolled = fixed_rollouts(tokenizer, length)
    rewards = torch.randint(0, 2, (PROMPTS, GROUP), generator=torch.Generator().manual_seed(1)).float()
    with torch.no_grad():
        old, _ = rolled.logprobs(policy)
    settings = LLMConfig(steps=REPEATS + 1, minibatches=1)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-5)
    scheduler = _scheduler(optimizer, settings)
    loss_fn = make_objective(algo, **({"tau": 0.8} if algo == "adpo" else {}))
    gen = torch.Generator().manual_seed(0)

    def step(_: int) -> None:
        _update(policy, optimizer, scheduler, loss_fn, rolled, rewards, old, settings, gen)

    step(0)  # warm-up: allocator and autograd caches
    return median_time(step, REPEATS)


def main() -> None:
    torch.set_num_threads(1)
    folder = str(ensure_warmstart(WarmStartConfig()))
    rows = [
        {
            "algorithm": algo,
            "micro_batch_completions": PROMPTS * GROUP,
            "tokens": length,
            "update_s_median": round(time_update(folder, algo, length), 4),
            "repeats": REPEATS,
            "threads": 1,
        }
        for length in LENGTHS
        for algo in ALGOS
    ]
    write_results(rows, "llm_update_time")


if __name__ == "__main__":
    main()
