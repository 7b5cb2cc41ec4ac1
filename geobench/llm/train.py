"""The on-policy RL loop for language models: one (algorithm, seed) cell.

Per step: sample B prompts, G completions each (pi_old = the current weights), grade them,
score them under pi_old (a separate no-grad pass only when more than one update follows, or
ADPO's temperature needs it first), then ``epochs`` passes of mini-batch updates
with gradient accumulation over micro-batches, AdamW, cosine schedule with warm-up and
gradient clipping. The anchor of every objective is pi_old (both papers' on-policy
anchor; GRPO/GSPO/DAPO run with beta = 0, i.e. no reference-model KL).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from geobench.llm.grading import is_correct, reward
from geobench.llm.rollout import Rollouts
from geobench.llm.warmstart import sampled_accuracy
from geobench.objectives import (
    GroupBatch,
    GuardedTemperature,
    candidate_confidence,
    group_advantages,
    informative_groups,
    make_objective,
    overlong_penalty,
)


@dataclass(frozen=True)
class RLSettings:
    """The loop's settings (a view of ``LLMConfig``; sources in ``experiments/opo_table1.toml``)."""

    steps: int = 60
    prompts_per_step: int = 8
    group: int = 6
    epochs: int = 1
    minibatches: int = 1
    micro_batch: int = 0  # prompts (groups) per micro-batch; 0 = the whole mini-batch
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    reward: str = "correct"
    dynamic_sampling: bool = True  # DAPO only
    overlong_cache: int = 0  # DAPO only; 0 = off
    adaptive_tau: bool = True  # ADPO only: Eq. 12
    tau_min: float = 0.1
    tau_max: float = 0.8
    eval_every: int = 10
    eval_prompts: int = 200
    hparams: dict[str, Any] = field(default_factory=dict)


def _scheduler(optimizer, settings: RLSettings):
    from transformers import get_cosine_schedule_with_warmup

    updates = settings.steps * settings.epochs * settings.minibatches
    return get_cosine_schedule_with_warmup(optimizer, int(settings.warmup_ratio * updates), updates)


def _rewards(rollouts: Rollouts, answers: list[str], settings: RLSettings, max_chars: int) -> tuple[Tensor, Tensor]:
    """(B*G,) rewards and (B*G,) 0/1 correctness."""
    correct = torch.tensor([float(is_correct(t, a)) for t, a in zip(rollouts.texts, answers, strict=True)])
    if settings.reward == "correct":
        return correct.clone(), correct
    shaped = [reward(t, a, settings.reward, max_chars) for t, a in zip(rollouts.texts, answers, strict=True)]
    return torch.tensor(shaped), correct


def _update(
    policy,
    optimizer,
    scheduler,
    loss_fn,
    rollouts: Rollouts,
    rewards: Tensor,
    old: Tensor | None,
    settings: RLSettings,
    gen: torch.Generator,
) -> dict[str, float]:
    """``epochs`` x ``minibatches`` optimizer steps over the groups; returns averaged metrics.

    ``old`` (B*G, T) are pi_old's log-probs; None means a single on-policy pass, where pi_old
    is the policy being differentiated, so its log-probs are the detached training ones (as
    in TRL) and the token entropy is read off the same forward pass.
    """
    n_groups, g = rewards.shape
    per_mini = math.ceil(n_groups / settings.minibatches)
    per_micro = settings.micro_batch or per_mini
    sums: dict[str, float] = {}
    entropy_sum, tokens = 0.0, 0.0
    updates = 0
    for _ in range(settings.epochs):
        order = torch.randperm(n_groups, generator=gen).to(rewards.device)
        for mini in order.split(per_mini):
            optimizer.zero_grad(set_to_none=True)
            totals: dict[str, float] = {}
            for micro in mini.split(per_micro):
                rows = (micro.unsqueeze(-1) * g + torch.arange(g, device=micro.device)).flatten()
                logp, entropy = rollouts.logprobs(policy, rows, with_entropy=old is None)
                if entropy is not None:
                    entropy_sum += float(entropy.detach().sum())
                    tokens += float(rollouts.completion_mask[rows].sum())
                shape = (len(micro), g, logp.shape[-1])
                batch = GroupBatch(
                    logp=logp.view(shape),
                    mask=rollouts.completion_mask[rows].view(shape),
                    rewards=rewards[micro],
                    old_logp=None if old is None else old[rows].view(shape),
                )
                loss, metrics = loss_fn(batch)
                weight = len(micro) / len(mini)
                (loss * weight).backward()
                for key, value in {"loss": loss.detach(), **metrics}.items():
                    totals[key] = totals.get(key, 0.0) + weight * float(value)
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            totals["grad_norm"] = float(grad_norm)
            for key, value in totals.items():
                sums[key] = sums.get(key, 0.0) + value
            updates += 1
    means = {key: value / updates for key, value in sums.items()}
    if tokens:
        means["entropy"] = entropy_sum / tokens
    return means


def train_cell(
    policy,
    tokenizer,
    task,
    rollout,
    algo: str,
    seed: int,
    settings: RLSettings,
    on_step: Callable[[], None] = lambda: None,
) -> list[dict[str, Any]]:
    """Train ``policy`` in place with ``algo``; returns tidy rows (step, metric, value)."""
    torch.manual_seed(seed)
    prompts_rng = random.Random(seed)  # same prompts for every algorithm at a given seed
    held_out = task.sample(settings.eval_prompts, random.Random(10_000 + seed))
    hparams = dict(settings.hparams.get(algo, {}))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = _scheduler(optimizer, settings)
    guard = GuardedTemperature(settings.tau_min, settings.tau_max) if algo == "adpo" and settings.adaptive_tau else None
    gen = torch.Generator().manual_seed(seed)
    max_new = rollout.sampling.max_new_tokens
    rows: list[dict[str, Any]] = []

    def log(step: int, values: dict[str, float]) -> None:
        rows.extend({"seed": seed, "step": step, "metric": k, "value": float(v)} for k, v in values.items())

    def evaluate(step: int) -> None:
        policy.eval()
        acc = sampled_accuracy(policy, tokenizer, held_out, max_new, seed, temperature=0.0)
        policy.train()
        log(step, {"heldout_accuracy": acc})

    policy.train()
    evaluate(0)
    for step in range(1, settings.steps + 1):
        problems = task.sample(settings.prompts_per_step, prompts_rng)
        rollout.sync(policy)
        rolled = rollout.generate(policy, [p.prompt for p in problems], settings.group, seed * 1_000_003 + step)
        rolled = rolled.to(policy.device)
        answers = [p.answer for p in problems for _ in range(settings.group)]
        flat_rewards, correct = _rewards(rolled, answers, settings, max_new)
        rewards = flat_rewards.view(len(problems), settings.group).to(policy.device)
        if algo == "dapo" and settings.overlong_cache:
            rewards = rewards + overlong_penalty(rolled.lengths, max_new, settings.overlong_cache).view_as(rewards)
        values = {
            "reward_mean": float(flat_rewards.mean()),
            "accuracy": float(correct.mean()),
            "completion_length": float(rolled.lengths.float().mean()),
            "rollout_tokens_per_s": rolled.tokens_per_s,
        }
        zscored = group_advantages(rewards)
        values["adv_range"] = float(zscored.max() - zscored.min())
        keep = informative_groups(rewards) if algo == "dapo" and settings.dynamic_sampling else None
        if keep is not None:
            groups = keep.nonzero().squeeze(-1)
            offsets = torch.arange(settings.group, device=groups.device)
            rolled = rolled.select((groups.unsqueeze(-1) * settings.group + offsets).flatten())
            rewards = rewards[groups]
            values["kept_groups"] = float(len(groups))
        if len(rewards):
            old = None  # one on-policy pass: pi_old's log-probs come from the training forward itself
            if settings.epochs * settings.minibatches > 1 or guard is not None:
                with torch.no_grad():
                    old, entropy = rolled.logprobs(policy, with_entropy=True)
                values["entropy"] = float(entropy.sum() / rolled.completion_mask.sum().clamp(min=1))
            if guard is not None:
                seq = (old.view(*rewards.shape, -1)).sum(-1)
                hparams["tau"] = guard.step(float(candidate_confidence(seq)), float(rewards.mean()))
            loss_fn = make_objective(algo, **hparams)
            start = time.perf_counter()
            metrics = _update(policy, optimizer, scheduler, loss_fn, rolled, rewards, old, settings, gen)
            values["update_time_s"] = time.perf_counter() - start
            signal = metrics.get("w_range", metrics.get("adv_range", values["adv_range"]))
            metrics["signal_range"] = signal
            metrics["response_efficiency"] = metrics["grad_norm"] / (0.5 * signal) if signal > 0 else math.nan
            values.update({k: v for k, v in metrics.items() if k in _LOGGED})
        # else: DAPO kept no group, so no update this step (nothing to time; the scheduler does not advance)
        log(step, values)
        if step % settings.eval_every == 0 or step == settings.steps:
            evaluate(step)
        on_step()
    return rows


# Objective metrics worth a CSV column; the rest stay in the objective.
_LOGGED = {
    "entropy",
    "loss",
    "grad_norm",
    "clip_frac",
    "tau",
    "signal_range",
    "response_efficiency",
    "approx_kl",
    "w_range",
}
