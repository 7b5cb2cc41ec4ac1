"""The on-policy RL loop for language models: one (algorithm, seed) cell.

Per step: sample B prompts, G completions each (pi_old = the current weights), grade them,
apply the objective's recipe (overlong punishment and masking, group filtering), score them
under pi_old with the sampler's temperature and top-p (a separate no-grad pass only when more
than one update follows, an adaptive temperature needs it first, or an objective's prepare
step, OPO's mini-batch escort normalisation, must see a mini-batch split into micro-batches), then
``epochs`` passes of mini-batch updates with gradient accumulation over micro-batches
(exactly the whole-mini-batch gradient: :func:`accumulate_gradients`), AdamW, cosine
schedule with warm-up and gradient clipping. The anchor of every objective is pi_old (both
papers' on-policy anchor; GRPO/GSPO/DAPO run with beta = 0, i.e. no reference-model KL).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from geobench.errors import require_finite
from geobench.llm import samples as kept
from geobench.llm.grading import is_correct, reward
from geobench.llm.metrics import MUST_BE_FINITE, UPDATE_METRICS, response_efficiency, signal_range
from geobench.llm.rollout import Rollouts
from geobench.llm.settings import LLMConfig
from geobench.llm.warmstart import sampled_accuracy
from geobench.objectives import (
    GroupBatch,
    candidate_confidence,
    entropy_reward_temperature,
    get_objective,
    group_advantages,
    informative_groups,
    overlong_penalty,
)
from geobench.objectives.aggregation import Totals
from geobench.objectives.registry import BoundObjective
from geobench.progress import StepReport, no_report

# A token ratio pi / pi_old within this of 1 counts as on-policy (``ratio_one_frac``).
_ON_POLICY_TOL = 1e-6


def _scheduler(optimizer, settings: LLMConfig):
    from transformers import get_cosine_schedule_with_warmup

    updates = settings.steps * settings.epochs * settings.minibatches
    return get_cosine_schedule_with_warmup(optimizer, int(settings.warmup_ratio * updates), updates)


def _rewards(rollouts: Rollouts, answers: list[str], settings: LLMConfig, max_chars: int) -> tuple[Tensor, Tensor]:
    """(B*G,) rewards and (B*G,) 0/1 correctness."""
    correct = torch.tensor([float(is_correct(t, a)) for t, a in zip(rollouts.texts, answers, strict=True)])
    if settings.reward == "correct":
        return correct.clone(), correct
    shaped = [reward(t, a, settings.reward, max_chars) for t, a in zip(rollouts.texts, answers, strict=True)]
    return torch.tensor(shaped), correct


def guard_confidence(token_logp: Tensor, mask: Tensor, form: str) -> float:
    """Eq. 12's c_t from pi_old's (B, G, T) token log-probs: over lengths-normalised sequences or sums."""
    fmask = mask.to(token_logp.dtype)
    seq = (token_logp * fmask).sum(-1)
    return float(candidate_confidence(seq, fmask.sum(-1) if form == "token-mean" else None))


def per_prompt_tau(tau_base: float, entropy: Tensor, mask: Tensor, rewards: Tensor, vocab: int) -> Tensor:
    """ADPO's per-prompt tau of the authors' recipe (SETTINGS.md), (B,).

    H is each prompt's mean token entropy over its G completions, divided by log |vocab|;
    R its group-mean reward. The range is the recipe's [0.1, 5.0] (the function's
    defaults), not [tau_min, tau_max]: Eq. 12's tau_max = tau_base would pin this rule,
    which only raises tau above tau_base, to tau_base.

    Shapes: entropy and mask (B, G, T); rewards (B, G).
    """
    fmask = mask.to(entropy.dtype)
    mean_entropy = (entropy * fmask).sum((-1, -2)) / fmask.sum((-1, -2)).clamp(min=1.0)
    return entropy_reward_temperature(tau_base, mean_entropy / math.log(vocab), rewards.mean(-1))


@dataclass
class Accumulated:
    """What one mini-batch's gradient accumulation measured."""

    metrics: dict[str, float]
    ratio_deviation: float  # max |pi / pi_old - 1| over the mini-batch's real tokens
    entropy_sum: float = 0.0
    entropy_tokens: float = 0.0


def _group_rows(groups: Tensor, g: int) -> Tensor:
    """(len(groups) * G,) rollout rows of whole groups (row = b * G + g)."""
    return (groups.unsqueeze(-1) * g + torch.arange(g, device=groups.device)).flatten()


def accumulate_gradients(
    policy,
    loss_fn: BoundObjective,
    rollouts: Rollouts,
    rewards: Tensor,
    old: Tensor | None,
    mini: Tensor,
    per_micro: int,
) -> Accumulated:
    """Backward of one mini-batch's loss into ``.grad``, in micro-batches of ``per_micro`` whole groups.

    Each micro-batch's loss is its share of the mini-batch loss (``GroupBatch.totals``: the
    mini-batch's token / sequence / candidate / context counts), so the micro-batch losses
    add up to the mini-batch loss for every aggregation mode and ragged lengths; the
    objective's whole-mini-batch statistics (OPO's escort normalisation) are computed once
    by ``loss_fn.prepare`` from pi_old's log-probs and the rewards, fixed during the update.
    The accumulated gradient is that of one whole-mini-batch pass for any ``per_micro``.

    Args:
        rewards: (B, G); old: (B*G, T) pi_old log-probs or None (one on-policy pass: pi_old
            is the detached training forward); mini: (M,) the mini-batch's group indices.
    """
    g = rewards.shape[-1]
    rows = _group_rows(mini, g)
    mask = rollouts.completion_mask[rows].view(len(mini), g, -1)
    totals = Totals.of(mask)
    drive = None
    if loss_fn.prepares and per_micro < len(mini):
        if old is None:
            raise ValueError("splitting a mini-batch for an objective with a prepare step needs pi_old's log-probs")
        whole_old = old[rows].view(mask.shape)
        whole = GroupBatch(whole_old, mask, rewards[mini], old_logp=whole_old, totals=totals)
        drive = loss_fn.for_contexts(mini).prepare(whole).drive
    out = Accumulated({}, 0.0)
    for start in range(0, len(mini), per_micro):
        micro = mini[start : start + per_micro]
        micro_rows = _group_rows(micro, g)
        logp, entropy = rollouts.logprobs(policy, micro_rows, with_entropy=old is None)
        fmask = rollouts.completion_mask[micro_rows].to(logp.dtype)
        if entropy is not None:
            out.entropy_sum += float(entropy.detach().sum())
            out.entropy_tokens += float(fmask.sum())
        micro_old = None if old is None else old[micro_rows]
        if micro_old is not None:
            deviation = ((logp.detach() - micro_old).exp() - 1.0).abs() * fmask
            out.ratio_deviation = max(out.ratio_deviation, float(deviation.max()))
        shape = (len(micro), g, logp.shape[-1])
        batch = GroupBatch(
            logp=logp.view(shape),
            mask=fmask.view(shape),
            rewards=rewards[micro],
            old_logp=None if micro_old is None else micro_old.view(shape),
            drive=None if drive is None else drive[start : start + len(micro)],
            totals=totals,
        )
        loss, metrics = loss_fn.for_contexts(micro)(batch)
        loss.backward()
        out.metrics["loss"] = out.metrics.get("loss", 0.0) + float(loss.detach())  # shares add up exactly
        weight = len(micro) / len(mini)  # diagnostics: averaged by prompt share
        for key, value in metrics.items():
            out.metrics[key] = out.metrics.get(key, 0.0) + weight * float(value)
    return out


def _update(
    policy,
    optimizer,
    scheduler,
    loss_fn: BoundObjective,
    rollouts: Rollouts,
    rewards: Tensor,
    old: Tensor | None,
    settings: LLMConfig,
    gen: torch.Generator,
) -> dict[str, float]:
    """``epochs`` x ``minibatches`` optimizer steps over the groups; returns averaged metrics.

    ``old`` (B*G, T) are pi_old's log-probs; None means a single on-policy pass, where pi_old
    is the policy being differentiated, so its log-probs are the detached training ones (as
    in TRL) and the token entropy is read off the same forward pass.
    """
    n_groups = rewards.shape[0]
    per_mini = math.ceil(n_groups / settings.minibatches)
    per_micro = settings.micro_batch or per_mini
    sums: dict[str, float] = {}
    entropy_sum, tokens = 0.0, 0.0
    updates, on_policy = 0, 0
    for _ in range(settings.epochs):
        order = torch.randperm(n_groups, generator=gen).to(rewards.device)
        for mini in order.split(per_mini):
            optimizer.zero_grad(set_to_none=True)
            acc = accumulate_gradients(policy, loss_fn, rollouts, rewards, old, mini, per_micro)
            entropy_sum, tokens = entropy_sum + acc.entropy_sum, tokens + acc.entropy_tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            acc.metrics["grad_norm"] = float(grad_norm)
            for key, value in acc.metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            updates += 1
            on_policy += acc.ratio_deviation <= _ON_POLICY_TOL
    means = {key: value / updates for key, value in sums.items()}
    means["ratio_one_frac"] = on_policy / updates
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
    settings: LLMConfig,
    on_step: StepReport = no_report,
    samples: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train ``policy`` in place with ``algo``; returns tidy rows (step, metric, value).

    Every logged step's values also go to ``on_step`` as they are logged; ``samples``, if given,
    receives a few completions of the steps :func:`geobench.llm.samples.due` names.

    What happens around the loss is ``algo``'s registered recipe under the run's switches
    (:meth:`LLMConfig.cell_recipe`): group filtering, overlong handling, an adaptive temperature.
    """
    torch.manual_seed(seed)
    prompts_rng = random.Random(seed)  # same prompts for every algorithm at a given seed
    held_out = task.sample(settings.eval_prompts, random.Random(10_000 + seed))
    entry = get_objective(algo)
    recipe = settings.cell_recipe(entry.recipe)
    hparams = dict(settings.hparams.get(algo, {}))
    if "vocab_size" in entry.defaults:  # OPO's code form: its adaptive tau divides by log |vocab|
        hparams.setdefault("vocab_size", policy.config.vocab_size)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = _scheduler(optimizer, settings)
    adaptive = recipe.temperature
    guard = None if adaptive is None else adaptive.guard()
    per_prompt = adaptive is not None and adaptive.rule == "entropy-reward"
    base = {**entry.defaults, **hparams}[adaptive.hparam] if per_prompt else None  # the per-prompt rule's tau_base
    gen = torch.Generator().manual_seed(seed)
    max_new = rollout.sampling.max_new_tokens
    rows: list[dict[str, Any]] = []

    def log(step: int, values: dict[str, float]) -> None:
        require_finite(values, step=step, names=MUST_BE_FINITE)
        rows.extend({"seed": seed, "step": step, "metric": k, "value": float(v)} for k, v in values.items())
        on_step(step, settings.steps, values)

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
        if recipe.overlong_cache:
            rewards = rewards + overlong_penalty(rolled.lengths, max_new, recipe.overlong_cache).view_as(rewards)
        values = _rollout_metrics(rolled, flat_rewards, correct, rewards)
        if samples is not None and kept.due(step, settings.steps, settings.eval_every):
            samples += kept.completions(step, seed, [p.prompt for p in problems], rolled, flat_rewards)
        if recipe.mask_truncated:
            rolled = rolled.mask_truncated()
        if recipe.filter_groups:
            groups = informative_groups(rewards).nonzero().squeeze(-1)
            rolled = rolled.select(_group_rows(groups, settings.group))
            rewards = rewards[groups]
            values["kept_groups"] = float(len(groups))
        if len(rewards):
            per_mini = math.ceil(len(rewards) / settings.minibatches)
            splits = 0 < settings.micro_batch < per_mini
            old = None  # one on-policy pass: pi_old's log-probs come from the training forward itself
            needs_old = settings.epochs * settings.minibatches > 1 or adaptive is not None
            if needs_old or (entry.prepare is not None and splits):
                with torch.no_grad():
                    old, entropy = rolled.logprobs(policy, with_entropy=True)
                values["entropy"] = float(entropy.sum() / rolled.completion_mask.sum().clamp(min=1))
            shape = (*rewards.shape, -1)
            mask = rolled.completion_mask.view(shape)
            if guard is not None:
                confidence = guard_confidence(old.view(shape), mask, settings.tau_confidence)
                hparams[adaptive.hparam] = guard.step(confidence, float(rewards.mean()))
            if per_prompt:
                vocab = policy.config.vocab_size
                hparams[adaptive.hparam] = per_prompt_tau(base, entropy.view(shape), mask, rewards, vocab)
            loss_fn = entry.bind(**hparams)
            start = time.perf_counter()
            metrics = _update(policy, optimizer, scheduler, loss_fn, rolled, rewards, old, settings, gen)
            values["update_time_s"] = time.perf_counter() - start
            metrics["signal_range"] = signal_range(metrics, values["adv_range"])
            metrics["response_efficiency"] = response_efficiency(metrics["grad_norm"], metrics["signal_range"])
            values.update({k: v for k, v in metrics.items() if k in UPDATE_METRICS})
        # else: every group was filtered out, so no update this step (nothing to time; the scheduler does not advance)
        log(step, values)
        if step % settings.eval_every == 0 or step == settings.steps:
            evaluate(step)
    return rows


def _rollout_metrics(rolled: Rollouts, flat_rewards: Tensor, correct: Tensor, rewards: Tensor) -> dict[str, float]:
    """The step's rollout metrics and throughput, from the task rewards and correctness (B*G,) and
    the (B, G) rewards the objective sees (with any overlong punishment)."""
    lengths = rolled.lengths.float()
    zscored = group_advantages(rewards)
    return {
        "reward_mean": float(flat_rewards.mean()),
        "accuracy": float(correct.mean()),
        "completion_length": float(lengths.mean()),
        "completion_length_std": float(lengths.std(correction=0)),  # population std over the step's B*G
        "truncated_frac": float(rolled.truncated.float().mean()),
        "reward_levels": float(torch.unique(rewards).numel()),
        "rollout_tokens_per_s": rolled.tokens_per_s,
        "adv_range": float(zscored.max() - zscored.min()),
    }
