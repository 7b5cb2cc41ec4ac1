"""``geobench llm --engine trl``: the same algorithms through TRL's ``GRPOTrainer``.

TRL does the rollouts (transformers or its vLLM server/colocate modes), rewards, group
advantages, accelerate/DeepSpeed distribution and optimisation; the loss is geobench's
objective, called on a :class:`GroupBatch` built from TRL's inputs. Two things TRL does not
do for a group loss are added here:

- **Whole groups per micro-batch.** TRL shuffles the rows of a generation batch before
  splitting it into micro-batches, which scatters a prompt's completions; listwise
  objectives (ADPO) need the whole group. ``_prepare_inputs`` shuffles whole groups instead.
- **Geobench's metrics.** Per step, TRL's logs are mapped onto geobench's CSV schema
  (reward_mean, entropy, grad_norm, completion_length, ...) plus the objective's metrics,
  and held-out accuracy is measured before and after training.

The objective's recipe runs as in geobench's own loop: a guarded temperature (ADPO Eq. 12,
on whichever hyperparameter the recipe adapts) on TRL's batch reward, and group filtering on
TRL's advantages (``filter_metric="reward"``) or on the completions' correctness, graded beside
TRL's reward functions (``"accuracy"``); the per-prompt temperature rules are refused. So is
DAPO's refill (``max_gen_batches`` > 1): ``GRPOTrainer`` draws one generation batch per step
from its dataloader and has no way to ask for more prompts within a step, so filtered groups
leave the step's batch short, as in TRL itself.

TRL computes the group advantages itself and hands them to the loss, so an objective's own
``advantage`` is honoured through TRL's ``scale_rewards`` (``zscore`` -> "group", ``mean``
-> "none"); ``none`` has no TRL equivalent and is refused (:func:`trl_settings`). A recipe's
soft overlong punishment is an extra TRL reward function, and its overlong filtering is
TRL's ``mask_truncated_completions``. TRL scores completions with logits / T but without
the top-p nucleus, so ``top_p < 1`` is refused too.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import torch

from geobench.errors import ConfigError
from geobench.llm.data import eval_task, held_out_problems, run_steps, training_problems
from geobench.llm.grading import is_correct, reward
from geobench.llm.metrics import METRICS, response_efficiency, signal_range
from geobench.llm.prompts import prompted
from geobench.llm.settings import LLMConfig
from geobench.llm.temperatures import guard_confidence
from geobench.llm.warmstart import sampled_accuracy
from geobench.objectives import GroupBatch, Objective, get_objective, informative_groups, overlong_penalty

# TRL's log keys -> geobench's metric names (the rest of TRL's logs are dropped). The reward
# is the task reward's own column ("rewards/<name>/mean"), not TRL's "reward", which also
# sums DAPO's overlong punishment when that is on.
_TRL_METRICS = {
    "entropy": "entropy",
    "grad_norm": "grad_norm",
    "completions/mean_length": "completion_length",
    "step_time": "step_time_s",
}


def reward_function(kind: str = "correct", max_chars: int = 0):
    """A TRL reward function scoring by geobench's :func:`~geobench.llm.grading.reward` (``answer`` is a column)."""

    def score(completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return [reward(c, a, kind, max_chars) for c, a in zip(completions, answer, strict=True)]

    score.__name__ = kind  # TRL names the logged reward after the function
    return score


correctness = reward_function("correct")

# geobench's advantage mode -> TRL's scale_rewards (TRL always subtracts the group mean).
_TRL_SCALE = {"zscore": "group", "mean": "none"}


def trl_settings(entry: Objective, config: LLMConfig) -> dict[str, Any]:
    """The GRPOConfig fields that carry an objective's own settings into TRL, or a one-line ConfigError.

    - ``scale_rewards``: the objective's ``advantage`` (TRL passes its advantages to the loss).
    - ``mask_truncated_completions``: its recipe's overlong filtering (``overlong_filter``).
    """
    algo = entry.name
    advantage = entry.validate(dict(config.hparams.get(algo, {}))).get("advantage", "zscore")
    if advantage not in _TRL_SCALE:
        raise ConfigError(
            f"--engine trl passes TRL's group advantages (z-scored or mean-centred), so {algo}'s "
            f"advantage = {advantage!r} would be lost; set hparams.{algo}.advantage to 'zscore' or 'mean', "
            "or use --engine geobench"
        )
    if config.top_p < 1.0:
        raise ConfigError(
            f"--engine trl scores completions without the top-p nucleus, so top_p = {config.top_p} makes "
            "pi_old wrong; set top_p = 1.0 or use --engine geobench"
        )
    if config.cell_recipe(entry.recipe).filter_groups and config.max_gen_batches > 1:
        raise ConfigError(
            f"--engine trl cannot refill {algo}'s filtered batch (TRL's GRPOTrainer generates one batch per step), "
            "so max_gen_batches must be 1; use --engine geobench for DAPO's dynamic sampling"
        )
    return {
        "scale_rewards": _TRL_SCALE[advantage],
        "mask_truncated_completions": config.cell_recipe(entry.recipe).mask_truncated,
    }


def overlong_reward(max_len: int, cache_len: int):
    """DAPO's soft overlong punishment (Eq. 13) as a TRL reward function over the completion ids."""

    def overlong(completion_ids: list[list[int]], **_: Any) -> list[float]:
        lengths = torch.tensor([len(ids) for ids in completion_ids])
        return overlong_penalty(lengths, max_len, cache_len).tolist()

    return overlong


def prompt_dataset(problems, tokenizer, config: LLMConfig):
    """Problems as the ``datasets.Dataset`` TRL trains on: a ``prompt`` and an ``answer`` column.

    The prompts are :func:`geobench.llm.prompts.prompted`'s, the geobench loop's: plain strings, which
    TRL tokenizes as they are (no second chat template), so both paths feed the same ids (tested).
    """
    import datasets

    problems = prompted(problems, tokenizer, **config.prompt_settings())
    return datasets.Dataset.from_dict({"prompt": [p.prompt for p in problems], "answer": [p.answer for p in problems]})


def group_chunks(batch: dict[str, Any], group: int, chunks: int, gen: torch.Generator) -> list[dict[str, Any]]:
    """Shuffle whole groups of ``group`` consecutive rows, then split into ``chunks`` of whole groups."""
    n = next(len(v) for v in batch.values() if v is not None and not (isinstance(v, torch.Tensor) and v.ndim == 0))
    groups = n // group
    if n % group or groups % chunks:
        raise ValueError(f"a generation batch of {n} rows is not {chunks} chunks of whole groups of {group}")
    order = torch.randperm(groups, generator=gen)
    per = groups // chunks
    out = []
    for c in range(chunks):
        rows = (order[c * per : (c + 1) * per, None] * group + torch.arange(group)).flatten()
        out.append({k: _take(v, rows) for k, v in batch.items()})
    return out


def _take(value: Any, rows: torch.Tensor) -> Any:
    if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
        return value
    if isinstance(value, torch.Tensor):
        return value[rows.to(value.device)]
    return [value[i] for i in rows.tolist()]


def trainer_class():
    """``GRPOTrainer`` with geobench's loss (built lazily: TRL is an optional dependency)."""
    from trl import GRPOTrainer

    class GeobenchGRPOTrainer(GRPOTrainer):
        def __init__(self, *args: Any, objective: Objective, config: LLMConfig, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.objective, self.config = objective, config
            self.hparams = dict(config.hparams.get(objective.name, {}))
            self.recipe = config.cell_recipe(objective.recipe)
            adaptive = self.recipe.temperature
            if adaptive is not None and adaptive.rule != "guard":
                raise ConfigError(
                    f"--engine trl runs ADPO's Eq. 12 guard only; the {adaptive.rule!r} rule for "
                    f"{objective.name}'s {adaptive.hparam} needs --engine geobench"
                )
            self.guard = None if adaptive is None else adaptive.guard()
            self._tau_generation = -1
            self._group_gen = torch.Generator().manual_seed(self.args.seed)

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            """TRL's rewards; beside them, this process's completions' (N,) correctness for accuracy filtering."""
            graded = zip(completions, inputs, strict=True)
            self._correct = torch.tensor([float(is_correct(c, x["answer"])) for c, x in graded])
            return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

        def _prepare_inputs(self, generation_batch):
            if not self.model.training:
                return super()._prepare_inputs(generation_batch)
            every = self.args.steps_per_generation * self.num_iterations
            if self._step % every == 0 or self._buffered_inputs is None:
                scored = self._generate_and_score_completions(generation_batch)
                scored["correct"] = self._correct.to(scored["advantages"].device)  # rows as TRL's: this process's
                self._buffered_inputs = group_chunks(
                    scored, self.num_generations, self.args.steps_per_generation, self._group_gen
                )
            return self._buffered_inputs[self._step % self.args.steps_per_generation]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
            mask = inputs["completion_mask"]
            logps, entropy, _ = self._get_per_token_logps_and_entropies(
                model,
                torch.cat([prompt_ids, completion_ids], 1),
                torch.cat([inputs["prompt_mask"], mask], 1),
                completion_ids.size(1),
                compute_entropy=True,
            )
            g = self.num_generations
            shape = (-1, g, logps.shape[-1])
            adv = inputs["advantages"].view(-1, g)
            old = inputs.get("old_per_token_logps")
            old = logps.detach() if old is None else old
            judged = inputs["correct"].view(-1, g) if self.config.filter_metric == "accuracy" else adv
            keep = informative_groups(judged) if self.recipe.filter_groups else None
            batch = GroupBatch(logps.view(shape), mask.view(shape), adv, old.view(shape), advantages=adv)
            ids = completion_ids.view(shape)
            if keep is not None and not bool(keep.all()):
                idx = keep.nonzero().squeeze(-1)
                batch = GroupBatch(batch.logp[idx], batch.mask[idx], adv[idx], batch.old_logp[idx], advantages=adv[idx])
                ids = ids[idx]
            self._set_tau(batch, ids)
            if batch.logp.shape[0] == 0:  # every group filtered out: a zero loss that keeps the graph
                return logps.sum() * 0.0
            loss, metrics = self.objective.bind(**self.hparams)(batch)
            train = self._metrics["train"]
            for key, value in {"loss": loss.detach(), **metrics}.items():
                train[f"geobench/{key}"].append(float(value))
            train["geobench/entropy"].append(float((entropy.detach() * mask).sum() / mask.sum().clamp(min=1)))
            return loss

        def _set_tau(self, batch: GroupBatch, ids: torch.Tensor) -> None:
            """Eq. 12 once per generation batch, from the batch reward TRL logged and the policy's confidence."""
            generation = self._step // (self.args.steps_per_generation * self.num_iterations)
            if self.guard is None or generation == self._tau_generation or batch.logp.shape[0] == 0:
                return
            self._tau_generation = generation
            reward = self._metrics["train"][f"rewards/{self.config.reward}/mean"][-1]
            confidence = guard_confidence(batch.old, batch.mask, self.config.tau_confidence, ids)
            self.hparams[self.recipe.temperature.hparam] = self.guard.step(confidence, reward)

    return GeobenchGRPOTrainer


def _grpo_config(config: LLMConfig, seed: int, out: str, use_cpu: bool, algo_fields: dict[str, Any]):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=config.prompts_per_step * config.group // config.minibatches,
        steps_per_generation=config.minibatches,
        gradient_accumulation_steps=1,
        num_generations=config.group,
        num_iterations=config.epochs,
        max_completion_length=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=0,
        max_steps=config.steps * config.minibatches * config.epochs,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup_ratio * config.steps * config.minibatches * config.epochs),
        lr_scheduler_type="constant_with_warmup" if config.lr_schedule == "constant" else "cosine",
        max_grad_norm=config.max_grad_norm,
        beta=0.0,
        **algo_fields,  # scale_rewards, mask_truncated_completions: see trl_settings
        gradient_checkpointing=False,
        use_cpu=use_cpu,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        shuffle_dataset=False,
        seed=seed,
        use_vllm=config.rollout == "vllm",
        vllm_mode="colocate",
    )


def train_cell(policy, tokenizer, task, algo: str, seed: int, config: LLMConfig, out: str, *, on_step=None):
    """Train ``policy`` with TRL and geobench's ``algo``; tidy rows as :func:`geobench.llm.train.train_cell`.

    Rollouts through vLLM when ``config.rollout`` is "vllm" (TRL's colocate mode), else transformers.
    """
    from transformers import PrinterCallback, TrainerCallback

    entry = get_objective(algo)
    if config.data_epochs:  # the passes' batches, capped at `steps` (geobench.llm.data)
        config = dataclasses.replace(
            config, steps=run_steps(config.steps, task, config.data_epochs, config.prompts_per_step)
        )
    stream = training_problems(task, config.data_epochs, seed)
    data = prompt_dataset(stream.sample(config.prompts_per_step * config.steps, random.Random(seed)), tokenizer, config)
    held = eval_task(task, config.dataset, config.levels, config.eval_split, config.eval_levels)
    held_out = prompted(held_out_problems(task, held, config.eval_prompts, seed), tokenizer, **config.prompt_settings())
    rows: list[dict[str, Any]] = []

    def heldout(step: int) -> None:
        policy.eval()
        acc = sampled_accuracy(policy, tokenizer, held_out, config.max_new_tokens, seed, temperature=0.0)
        rows.append({"seed": seed, "step": step, "metric": "heldout_accuracy", "value": acc})
        if on_step:
            on_step(step, config.steps, {"heldout_accuracy": acc})

    algo_fields = trl_settings(entry, config)
    reward_funcs = [reward_function(config.reward, config.max_new_tokens)]
    overlong_cache = config.cell_recipe(entry.recipe).overlong_cache
    if overlong_cache:
        reward_funcs.append(overlong_reward(config.max_new_tokens, overlong_cache))
    names = {**_TRL_METRICS, f"rewards/{config.reward}/mean": "reward_mean"}
    updates_per_step = config.minibatches * config.epochs
    pending: dict[str, list[float]] = {}

    class ToRows(TrainerCallback):
        """TRL logs once per optimizer update; geobench's CSV has one row per metric and RL step."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key, value in (logs or {}).items():
                name = names.get(key, key.removeprefix("geobench/") if key.startswith("geobench/") else None)
                if name is not None:
                    pending.setdefault(name, []).append(float(value))
            if state.global_step % updates_per_step == 0 and pending:
                self.flush(state.global_step // updates_per_step)

        def flush(self, step: int) -> None:
            values = {name: sum(v) / len(v) for name, v in pending.items()}
            pending.clear()
            if "reward_mean" in values and config.reward == "correct":
                values["accuracy"] = values["reward_mean"]  # the reward is 1/0 correctness
            values["signal_range"] = signal_range(values, math.nan)
            if "grad_norm" in values:
                values["response_efficiency"] = response_efficiency(values["grad_norm"], values["signal_range"])
            logged = {k: v for k, v in values.items() if k in METRICS}  # the objective's others stay in it
            rows.extend({"seed": seed, "step": step, "metric": k, "value": v} for k, v in logged.items())
            if on_step:
                on_step(step, config.steps, logged)

    torch.manual_seed(seed)
    heldout(0)
    use_cpu = not torch.cuda.is_available()
    trainer = trainer_class()(
        model=policy,
        reward_funcs=reward_funcs,
        args=_grpo_config(config, seed, out, use_cpu=use_cpu, algo_fields=algo_fields),
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[ToRows()],
        objective=entry,
        config=config,
    )
    trainer.remove_callback(PrinterCallback)  # geobench shows its own progress bar
    trainer.train()
    heldout(config.steps)
    return rows
