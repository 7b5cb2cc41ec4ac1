"""The on-policy RL loop for language models: one (algorithm, seed) cell.

Per step: sample B prompts, G completions each (pi_old = the current weights), grade them,
apply the objective's recipe (overlong punishment and masking, group filtering with DAPO's
refill: :mod:`geobench.llm.dynamic_sampling`), score them under pi_old with the sampler's
temperature and top-p (a separate no-grad pass only when more than one update follows, an
adaptive temperature needs it first, or an objective's prepare step, OPO's mini-batch escort
normalisation, must see a mini-batch split into micro-batches), then
``epochs`` passes of mini-batch updates with gradient accumulation over micro-batches
(exactly the whole-mini-batch gradient: :func:`accumulate_gradients`), AdamW, cosine
schedule with warm-up and gradient clipping. The anchor of every objective is pi_old (both
papers' on-policy anchor; GRPO/GSPO/DAPO run with beta = 0, i.e. no reference-model KL).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from geobench.errors import require_finite
from geobench.llm import samples as kept
from geobench.llm.data import eval_task, held_out_problems, run_steps, training_problems
from geobench.llm.dynamic_sampling import Scored, fill_batch
from geobench.llm.grading import is_correct, reward
from geobench.llm.metrics import MUST_BE_FINITE, UPDATE_METRICS, response_efficiency, signal_range
from geobench.llm.prompts import prompted
from geobench.llm.rollout import Rollouts
from geobench.llm.settings import CellRecipe, LLMConfig
from geobench.llm.temperatures import authors_temperature, guard_confidence, per_prompt_tau
from geobench.llm.warmstart import sampled_accuracy
from geobench.objectives import (
    GroupBatch,
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


def generation_seed(seed: int, step: int, round_: int) -> int:
    """The sampler's seed for generation round ``round_`` of ``step``: round 0 is the step's own
    (the same for every algorithm at ``seed``); dynamic sampling's rounds >= 1 get seeds no other
    (seed, step, round) has, since seed * 1_000_003 + step < 2**32 under the caps."""
    return seed * 1_000_003 + step + round_ * 2**32


def _scheduler(optimizer, settings: LLMConfig):
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    updates = settings.steps * settings.epochs * settings.minibatches
    warmup = int(settings.warmup_ratio * updates)
    if settings.lr_schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    return get_cosine_schedule_with_warmup(optimizer, warmup, updates)


def _rewards(rollouts: Rollouts, answers: list[str], settings: LLMConfig, max_chars: int) -> tuple[Tensor, Tensor]:
    """(B*G,) rewards and (B*G,) 0/1 correctness."""
    correct = torch.tensor([float(is_correct(t, a)) for t, a in zip(rollouts.texts, answers, strict=True)])
    if settings.reward == "correct":
        return correct.clone(), correct
    shaped = [reward(t, a, settings.reward, max_chars) for t, a in zip(rollouts.texts, answers, strict=True)]
    return torch.tensor(shaped), correct


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


def cell_hparams(entry, settings: LLMConfig, vocab: int) -> dict[str, Any]:
    """The hyperparameters a cell of ``entry`` binds: the run's table for it, plus |vocab| where it takes it."""
    hparams = dict(settings.hparams.get(entry.name, {}))
    if "vocab_size" in entry.defaults:  # OPO's code form: its adaptive tau divides by log |vocab|
        hparams.setdefault("vocab_size", vocab)
    return hparams


def recipe_rewards(rewards: Tensor, lengths: Tensor, recipe: CellRecipe, max_new: int) -> Tensor:
    """(B, G) rewards the objective sees: the task's plus any overlong punishment (DAPO Eq. 13)."""
    if recipe.overlong_cache:
        rewards = rewards + overlong_penalty(lengths, max_new, recipe.overlong_cache).view_as(rewards)
    return rewards


def recipe_rows(
    rolled: Rollouts, rewards: Tensor, recipe: CellRecipe, correct: Tensor | None = None
) -> tuple[Rollouts, Tensor, Tensor | None]:
    """The rows (B'*G) and rewards (B', G) an update under ``recipe`` uses, and the kept groups (B',) or None:
    truncated completions masked out of the loss, uninformative groups dropped (DAPO Eq. 11) — judged
    on the (B, G) ``correct`` when given (an accuracy filter), else on the rewards. No refill: this is
    one batch's rows, which the per-pair check compares algorithms on."""
    if recipe.mask_truncated:
        rolled = rolled.mask_truncated()
    if not recipe.filter_groups:
        return rolled, rewards, None
    groups = informative_groups(rewards if correct is None else correct).nonzero().squeeze(-1)
    return rolled.select(_group_rows(groups, rewards.shape[-1])), rewards[groups], groups


def needs_old(settings: LLMConfig, entry, recipe: CellRecipe, n_groups: int) -> bool:
    """Whether pi_old's log-probs need their own no-grad pass rather than the training forward's
    detached ones: more than one update, an adaptive temperature, or a prepare step over a split mini-batch."""
    splits = 0 < settings.micro_batch < math.ceil(n_groups / settings.minibatches)
    many = settings.epochs * settings.minibatches > 1
    return many or recipe.temperature is not None or (entry.prepare is not None and splits)


@dataclass(frozen=True)
class UpdateBatch:
    """What one step's update sequence runs on."""

    rolled: Rollouts  # the B'*G rows the update uses
    rewards: Tensor  # (B', G) the rewards the objective sees
    old: Tensor | None  # (B'*G, T) pi_old's log-probs; None: one on-policy pass
    loss_fn: BoundObjective


@dataclass(frozen=True)
class StepState:
    """A cell just before its update: the learner, the step's batch as generated, and its own update's batch.

    ``before_update`` hooks (the per-pair check, :mod:`geobench.llm.pair_check`) receive it and must
    leave the learner as they found it.
    """

    policy: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    gen: torch.Generator  # the mini-batch order's generator, before this step's update draws from it
    generated: Rollouts  # B*G rows, before any recipe masks or filters them
    task_rewards: Tensor  # (B, G) the grader's rewards, before any overlong punishment
    task_correct: Tensor  # (B, G) 0/1 correctness, what an accuracy filter reads
    own: UpdateBatch


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
    before_update: Callable[[int, StepState], None] = lambda step, state: None,
) -> list[dict[str, Any]]:
    """Train ``policy`` in place with ``algo``; returns tidy rows (step, metric, value).

    Every logged step's values also go to ``on_step`` as they are logged; ``samples``, if given,
    receives a few completions of the steps :func:`geobench.llm.samples.due` names.

    What happens around the loss is ``algo``'s registered recipe under the run's switches
    (:meth:`LLMConfig.cell_recipe`): group filtering, overlong handling, an adaptive temperature.
    ``before_update(step, state)`` runs before each step's update and leaves the learner unchanged.
    """
    torch.manual_seed(seed)
    if settings.data_epochs:  # the passes' batches, capped at `steps` (geobench.llm.data)
        steps = run_steps(settings.steps, task, settings.data_epochs, settings.prompts_per_step)
        settings = dataclasses.replace(settings, steps=steps)
    prompts_rng = random.Random(seed)  # same prompts for every algorithm at a given seed
    stream = training_problems(task, settings.data_epochs, seed)
    # Dynamic sampling's extra prompts come from their own stream, so that a refilling cell's
    # step-t prompts stay those of every other algorithm at this seed (paired comparisons).
    refill_rng = random.Random(f"refill-{seed}")
    held = eval_task(task, settings.dataset, settings.levels, settings.eval_split, settings.eval_levels)
    prompt = functools.partial(prompted, tokenizer=tokenizer, **settings.prompt_settings())
    held_out = prompt(held_out_problems(task, held, settings.eval_prompts, seed))
    entry = get_objective(algo)
    recipe = settings.cell_recipe(entry.recipe)
    hparams = cell_hparams(entry, settings, policy.config.vocab_size)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = _scheduler(optimizer, settings)
    adaptive = recipe.temperature
    guard = None if adaptive is None else adaptive.guard()
    per_prompt = adaptive is not None and adaptive.rule == "entropy-reward"
    authors = adaptive is not None and adaptive.rule == "authors"
    chosen = {**entry.defaults, **hparams}
    base = chosen[adaptive.hparam] if per_prompt or authors else None  # the per-prompt and authors' rules' base
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

    def score(problems, generation: int) -> tuple[Scored, Tensor]:
        """One generation round of ``problems``, graded; and its (B*G,) task rewards."""
        rolled = rollout.generate(policy, [p.prompt for p in problems], settings.group, generation).to(policy.device)
        answers = [p.answer for p in problems for _ in range(settings.group)]
        flat_rewards, correct = _rewards(rolled, answers, settings, max_new)
        shape = (len(problems), settings.group)
        rewards = flat_rewards.view(shape).to(policy.device)
        if recipe.overlong_cache:
            rewards = rewards + overlong_penalty(rolled.lengths, max_new, recipe.overlong_cache).view_as(rewards)
        return Scored(rolled, rewards, correct.view(shape).to(policy.device)), flat_rewards

    def refill(step: int, round_: int) -> Scored:
        """Dynamic sampling's round ``round_`` >= 1 of ``step``: fresh prompts from refill_rng."""
        return score(prompt(task.sample(settings.prompts_per_step, refill_rng)), generation_seed(seed, step, round_))[0]

    policy.train()
    evaluate(0)
    for step in range(1, settings.steps + 1):
        problems = prompt(stream.sample(settings.prompts_per_step, prompts_rng))
        rollout.sync(policy)
        scored, flat_rewards = score(problems, generation_seed(seed, step, 0))
        # the step's batch as generated, which the per-pair check replays every algorithm on
        generated, task_rewards, task_correct = scored.rolled, flat_rewards.view_as(scored.rewards), scored.correct
        # measured on the step's own prompts, before any filtering: the same prompts as every algorithm's
        values = _rollout_metrics(scored.rolled, flat_rewards, scored.correct.flatten(), scored.rewards)
        if recipe.filter_groups:  # DAPO's dynamic sampling: refill from refill_rng up to max_gen_batches rounds
            more = functools.partial(refill, step)
            want = settings.prompts_per_step
            scored, rounds = fill_batch(scored, more, want, settings.max_gen_batches, settings.filter_metric)
            values["groups_kept"], values["gen_rounds"] = float(len(scored.rewards)), float(rounds)
        rolled, rewards = scored.rolled, scored.rewards
        if samples is not None and kept.due(step, settings.steps, settings.eval_every):
            samples += kept.completions(step, seed, [p.prompt for p in problems], generated, flat_rewards)
        if recipe.mask_truncated:
            rolled = rolled.mask_truncated()
        if len(rewards):
            old = None  # one on-policy pass: pi_old's log-probs come from the training forward itself
            if needs_old(settings, entry, recipe, len(rewards)):
                with torch.no_grad():
                    old, entropy = rolled.logprobs(policy, with_entropy=True)
                values["entropy"] = float(entropy.sum() / rolled.completion_mask.sum().clamp(min=1))
            shape = (*rewards.shape, -1)
            mask = rolled.completion_mask.view(shape)
            if guard is not None:
                ids = rolled.completion_ids.view(shape)
                confidence = guard_confidence(old.view(shape), mask, settings.tau_confidence, ids)
                hparams[adaptive.hparam] = guard.step(confidence, float(rewards.mean()))
                values["guard_confidence"], values["guard_improvement"] = confidence, guard.improvement
            if authors:
                adv = group_advantages(rewards, chosen.get("advantage", "zscore"))
                vocab = policy.config.vocab_size
                hparams[adaptive.hparam] = authors_temperature(base, old.view(shape), mask, adv, adaptive, vocab)
            if per_prompt:
                vocab = policy.config.vocab_size
                hparams[adaptive.hparam] = per_prompt_tau(base, entropy.view(shape), mask, rewards, vocab, settings)
            loss_fn = entry.bind(**hparams)
            own = UpdateBatch(rolled, rewards, old, loss_fn)
            state = StepState(policy, optimizer, scheduler, gen, generated, task_rewards, task_correct, own)
            before_update(step, state)
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
