"""The quick profile's base model: a tiny Qwen3 supervised on a built-in task until its
sampled accuracy first reaches a target, so RL starts with room to improve.

The committed one, ``experiments/llm/warmstart/<task>``, is read (never rewritten) by every run whose
settings are the ones it records, so a fresh clone's ``make reproduce`` starts from it as it is. A run
with other settings builds its own under its own run folder (``<--out>/warmstart/<task>``) and reuses
it from there. The committed one is regenerated only deliberately, by ``make warmstart``
(:func:`build_warmstart` with its default folder, from the quick LLM profile's settings).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from geobench.config import EXPERIMENTS_DIR
from geobench.errors import ConfigError
from geobench.llm.grading import is_correct
from geobench.llm.model import TinyQwen3, completion_logprobs, save_policy, tiny_qwen3
from geobench.llm.rollout import HFRollout, SamplingSettings
from geobench.llm.tasks import BUILT_IN, make_task
from geobench.llm.tokenizer import char_tokenizer
from geobench.progress import progress_bar
from geobench.results import atomic_write_text, package_versions, replaced_folder

WARMSTART_DIR = EXPERIMENTS_DIR / "llm" / "warmstart"


@dataclass(frozen=True)
class WarmStartConfig:
    """Supervised warm start; stops at the first evaluation with accuracy >= ``target``."""

    task: str = "arithmetic"
    levels: tuple[int, ...] = (1, 2, 3, 4)
    shape: TinyQwen3 = TinyQwen3()
    seed: int = 0
    lr: float = 3e-3
    batch: int = 64
    max_steps: int = 4000
    eval_every: int = 25
    eval_prompts: int = 256
    target: float = 0.35
    max_new_tokens: int = 6

    def __post_init__(self) -> None:
        if self.task not in BUILT_IN:
            valid = ", ".join(BUILT_IN)
            raise ConfigError(f"a warm start is built for the built-in tasks ({valid}); got {self.task!r}")


def warmstart_dir(task: str) -> Path:
    return WARMSTART_DIR / task


def _supervised_batch(tokenizer, task, rng: random.Random, n: int):
    problems = task.sample(n, rng)
    prompts = tokenizer([p.prompt for p in problems], return_tensors="pt", padding=True)
    targets = [tokenizer(task.completion(p, rng))["input_ids"] + [tokenizer.eos_token_id] for p in problems]
    width = max(len(t) for t in targets)
    ids = torch.tensor([t + [tokenizer.pad_token_id] * (width - len(t)) for t in targets])
    mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in targets])
    return prompts["input_ids"], prompts["attention_mask"], ids, mask


def sampled_accuracy(policy, tokenizer, problems, max_new_tokens: int, seed: int, temperature: float = 1.0) -> float:
    """Fraction of problems answered correctly by one sample each (temperature 0: greedy)."""
    sampler = HFRollout(tokenizer, SamplingSettings(temperature, 1.0, max_new_tokens))
    texts = sampler.generate(policy, [p.prompt for p in problems], 1, seed).texts
    return sum(is_correct(t, p.answer) for t, p in zip(texts, problems, strict=True)) / len(problems)


def build_warmstart(config: WarmStartConfig, folder: Path | None = None, show_progress: bool = True) -> dict:
    """Train, save model + tokenizer + ``warmstart.json`` into ``folder`` (default: the committed one of the
    task, for ``make warmstart`` only); returns the record. The files are written into a sibling folder
    swapped in whole once complete, so a build killed mid-way leaves the old warm start (or none)."""
    folder = folder or warmstart_dir(config.task)
    start = time.time()
    tokenizer = char_tokenizer()
    policy = tiny_qwen3(tokenizer, config.shape, config.seed)
    task = make_task(config.task, config.levels)
    rng = random.Random(config.seed)
    held_out = task.sample(config.eval_prompts, random.Random(config.seed + 10_000))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr)
    accuracy, step = 0.0, 0
    with progress_bar(show_progress) as bar:
        job = bar.add_task("warm start (SFT)", total=config.max_steps)
        for step in range(1, config.max_steps + 1):
            p_ids, p_mask, c_ids, c_mask = _supervised_batch(tokenizer, task, rng, config.batch)
            logp, _ = completion_logprobs(policy, p_ids, p_mask, c_ids, c_mask)
            loss = -logp.sum() / c_mask.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.advance(job)
            if step % config.eval_every == 0:
                policy.eval()
                accuracy = sampled_accuracy(policy, tokenizer, held_out, config.max_new_tokens, config.seed + step)
                policy.train()
                bar.update(job, description=f"warm start (SFT) acc {accuracy:.2f}")
                if accuracy >= config.target:
                    break
    record = {
        "config": json.loads(json.dumps(asdict(config))),
        "steps": step,
        "sampled_accuracy": accuracy,
        "eval_prompts": config.eval_prompts,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "wall_time_s": round(time.time() - start, 1),
        "packages": package_versions(),
    }
    with replaced_folder(folder) as scratch:
        save_policy(policy, tokenizer, scratch)
        atomic_write_text(scratch / "warmstart.json", json.dumps(record, indent=2) + "\n")
    return record


def ensure_warmstart(config: WarmStartConfig, folder: Path | None = None, show_progress: bool = True) -> Path:
    """The warm start for ``config``: the committed one when it records ``config`` (read as it is), else
    the one in ``folder`` (a run's ``<out>/warmstart/<task>``), built there first if missing or made with
    other settings. Without ``folder`` a committed one made with other settings is one line."""
    if _made_with(warmstart_dir(config.task), config):
        return warmstart_dir(config.task)
    if folder is None:
        raise ConfigError(
            f"the committed warm start {warmstart_dir(config.task)} was made with other settings; "
            "give the run a folder of its own, or regenerate it with `make warmstart`"
        )
    if not _made_with(folder, config):
        build_warmstart(config, folder, show_progress)
    return folder


def _made_with(folder: Path, config: WarmStartConfig) -> bool:
    record = folder / "warmstart.json"
    return record.exists() and json.loads(record.read_text()).get("config") == json.loads(json.dumps(asdict(config)))
