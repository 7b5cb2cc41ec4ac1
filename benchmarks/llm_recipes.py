"""Measurement: the quick profile's adaptive temperatures under each reading, and DAPO's dynamic sampling.

One short real run per (algorithm, reading) from the committed column-addition warm start, at
the quick profile's settings (one seed, one thread, ``--steps`` steps; the schedule spans those
steps): the range tau covered, Eq. 12's confidence c over the first and last five steps, and for
DAPO the generation rounds and groups kept per step. Writes ``benchmarks/results/llm_recipes.csv``.

    python benchmarks/llm_recipes.py --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch
from _bench import write_results  # benchmarks/ is on sys.path when run as a script

from geobench.config import experiment_file, load_config
from geobench.llm.model import load_policy
from geobench.llm.rollout import make_rollout
from geobench.llm.settings import LLMConfig
from geobench.llm.tasks import make_task
from geobench.llm.train import train_cell
from geobench.llm.warmstart import ensure_warmstart

# (algorithm, the LLMConfig fields of the reading)
RUNS = [
    ("adpo", {"tau_confidence": "token-mean"}),
    ("adpo", {"tau_confidence": "sequence"}),
    ("adpo", {"tau_confidence": "candidate-set"}),
    ("opo", {"opo_tau_rule": "guard", "tau_confidence": "token-mean"}),
    ("opo", {"opo_tau_rule": "guard", "tau_confidence": "sequence"}),
    ("opo", {"opo_tau_rule": "guard", "tau_confidence": "candidate-set"}),
    ("opo", {"opo_tau_rule": "authors"}),
    ("dapo", {"max_gen_batches": 10, "filter_metric": "accuracy"}),
    ("dapo", {"max_gen_batches": 1, "filter_metric": "accuracy"}),
]


def _mean(values: list[float]) -> float:
    return round(statistics.fmean(values), 3) if values else float("nan")


def measure(algo: str, fields: dict, steps: int, seed: int = 0) -> dict:
    quick = load_config(LLMConfig, experiment_file("opo_table1"), "quick")
    config = dataclasses.replace(quick, steps=steps, eval_every=10**6, eval_prompts=8, **fields)
    policy, tokenizer = load_policy(str(ensure_warmstart(config.warmstart_config())), config.dtype)
    rollout = make_rollout("hf", "", tokenizer, config.sampling())
    rows = train_cell(policy, tokenizer, make_task(config.dataset, config.levels), rollout, algo, seed, config)
    series: dict[str, list[float]] = {}
    for row in rows:
        series.setdefault(row["metric"], []).append(row["value"])
    out = {"algo": algo, "reading": " ".join(f"{k}={v}" for k, v in fields.items()), "steps": steps}
    reward = series["reward_mean"]
    out.update(reward_first5=_mean(reward[:5]), reward_last5=_mean(reward[-5:]))
    if "tau" in series:
        tau = series["tau"]
        out.update(tau_min=round(min(tau), 3), tau_max=round(max(tau), 3), tau_mean=_mean(tau))
    if "guard_confidence" in series:
        c = series["guard_confidence"]
        out.update(c_first5=_mean(c[:5]), c_last5=_mean(c[-5:]))
    if "gen_rounds" in series:
        rounds, kept = series["gen_rounds"], series["groups_kept"]
        out.update(gen_rounds_mean=_mean(rounds), gen_rounds_max=max(rounds), groups_kept_mean=_mean(kept))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    steps = parser.parse_args().steps
    torch.set_num_threads(1)
    write_results([measure(algo, fields, steps) for algo, fields in RUNS], "llm_recipes")


if __name__ == "__main__":
    main()
