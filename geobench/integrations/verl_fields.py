"""The one mapping from a resolved :class:`~geobench.llm.settings.LLMConfig` to verl's hydra overrides.

Both LLM paths read the same resolved config: ``geobench llm`` runs it, ``geobench verl command``
writes it as ``verl.trainer.main_ppo`` overrides through :data:`FIELDS`, one row per verl key
(adding a setting is one row). Each row names the LLMConfig field(s) it reads; a setting that
verl's ``main_ppo`` cannot express is refused (:func:`check_expressible`) or, where the verl run
keeps a fixed value instead, listed by :func:`departures`. Nothing here imports verl.

Batch sizes: the loop's prompts are verl's prompts (``data.train_batch_size``,
``ppo_mini_batch_size`` count prompts; verl multiplies by ``rollout.n``), its micro-batch
counts prompts per backward, verl's ``ppo_micro_batch_size_per_gpu`` responses per GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from geobench.errors import ConfigError
from geobench.llm.settings import LLMConfig
from geobench.objectives import get_objective

ACTOR = "actor_rollout_ref.actor"
# The baselines run through verl's own losses (geobench's agree to 1e-6, tests/test_verl_parity.py);
# every other objective through geobench's, registered by the verl plugin as geobench_<name>.
NATIVE_LOSSES = {"grpo": "vanilla", "dapo": "vanilla", "gspo": "gspo"}
# verl's GRPO estimator z-scores per group, or centres only (norm_adv_by_std_in_grpo=False).
ADVANTAGE_STD = {"zscore": True, "mean": False}


def hparams_of(config: LLMConfig, algo: str) -> dict[str, Any]:
    """The objective's resolved hyperparameters: its registered defaults, then the run's table."""
    return {**get_objective(algo).defaults, **dict(config.hparams.get(algo, {}))}


def loss_mode(algo: str) -> str:
    return NATIVE_LOSSES.get(algo, f"geobench_{algo}")


def micro_responses(config: LLMConfig, algo: str, n_gpus: int) -> int:
    """verl's ``ppo_micro_batch_size_per_gpu`` (responses): the loop's micro-batch in responses, except
    for an objective with a mini-batch ``prepare`` step (OPO's escort normalisation), whose verl loss
    sees one micro-batch at a time: there each GPU's micro-batch is its whole share of the mini-batch,
    and the loss reduces the mini-batch statistic over the data-parallel group (integrations.verl)."""
    per_mini = config.prompts_per_step // config.minibatches * config.group
    if get_objective(algo).prepare is not None:
        if per_mini % n_gpus or (per_mini // n_gpus) % config.group:
            raise ConfigError(
                f"{algo}: a mini-batch of {per_mini} responses does not split into whole groups over {n_gpus} GPUs"
            )
        return per_mini // n_gpus
    return (config.micro_batch or config.prompts_per_step // config.minibatches) * config.group


def _mini_batch(config: LLMConfig) -> int:
    if config.prompts_per_step % config.minibatches:
        raise ConfigError(f"prompts_per_step {config.prompts_per_step} must divide by minibatches {config.minibatches}")
    return config.prompts_per_step // config.minibatches


def _advantage_std(config: LLMConfig, algo: str, n_gpus: int) -> bool:
    mode = hparams_of(config, algo).get("advantage", "zscore")
    if mode not in ADVANTAGE_STD:
        raise ConfigError(f"{algo}: advantage {mode!r} has no verl estimator; valid: {', '.join(ADVANTAGE_STD)}")
    return ADVANTAGE_STD[mode]


def _taken(name: str) -> Callable[[LLMConfig, str, int], Any]:
    """The objective's hyperparameter ``name`` where it takes one, else None (the row is left out)."""
    return lambda c, a, g: hparams_of(c, a).get(name) if name in get_objective(a).defaults else None


@dataclass(frozen=True)
class Field:
    """One verl key, the LLMConfig field(s) it is written from, and how."""

    key: str
    source: str  # the LLMConfig field(s) or objective hyperparameter, as the table shows them
    value: Callable[[LLMConfig, str, int], Any]  # (config, algo, n_gpus) -> value; None: not written


FIELDS: tuple[Field, ...] = (
    Field("actor_rollout_ref.model.path", "model", lambda c, a, g: c.model),
    Field("data.train_batch_size", "prompts_per_step", lambda c, a, g: c.prompts_per_step),
    Field(f"{ACTOR}.ppo_mini_batch_size", "prompts_per_step / minibatches", lambda c, a, g: _mini_batch(c)),
    Field(f"{ACTOR}.ppo_micro_batch_size_per_gpu", "micro_batch x group", micro_responses),
    Field(f"{ACTOR}.ppo_epochs", "epochs", lambda c, a, g: c.epochs),
    Field("actor_rollout_ref.rollout.n", "group", lambda c, a, g: c.group),
    Field("data.max_response_length", "max_new_tokens", lambda c, a, g: c.max_new_tokens),
    Field("actor_rollout_ref.rollout.temperature", "temperature", lambda c, a, g: c.temperature),
    Field("actor_rollout_ref.rollout.top_p", "top_p", lambda c, a, g: c.top_p),
    Field(f"{ACTOR}.optim.lr", "lr", lambda c, a, g: c.lr),
    Field(f"{ACTOR}.optim.lr_scheduler_type", "lr_schedule", lambda c, a, g: c.lr_schedule),
    Field(f"{ACTOR}.optim.lr_warmup_steps_ratio", "warmup_ratio", lambda c, a, g: c.warmup_ratio),
    Field(f"{ACTOR}.optim.weight_decay", "weight_decay", lambda c, a, g: c.weight_decay),
    Field(f"{ACTOR}.optim.clip_grad", "max_grad_norm", lambda c, a, g: c.max_grad_norm),
    Field("trainer.total_training_steps", "steps", lambda c, a, g: c.steps),
    Field("trainer.test_freq", "eval_every", lambda c, a, g: c.eval_every),
    Field("algorithm.adv_estimator", "group advantages (GroupBatch.advantage)", lambda c, a, g: "grpo"),
    Field("algorithm.norm_adv_by_std_in_grpo", "hparams.<algo>.advantage", _advantage_std),
    Field(f"{ACTOR}.policy_loss.loss_mode", "algo (the objective)", lambda c, a, g: loss_mode(a)),
    Field(f"{ACTOR}.clip_ratio_low", "hparams.<algo>.clip_low", _taken("clip_low")),
    Field(f"{ACTOR}.clip_ratio_high", "hparams.<algo>.clip_high", _taken("clip_high")),
    Field(f"{ACTOR}.loss_agg_mode", "hparams.<algo>.agg", _taken("agg")),
    Field("+reward.custom_reward_function.reward_kwargs.kind", "reward", lambda c, a, g: c.reward),
    Field("+reward.custom_reward_function.reward_kwargs.max_chars", "max_new_tokens", lambda c, a, g: c.max_new_tokens),
    # loop25's fields join here, one row each, e.g.
    # Field("data.apply_chat_template_kwargs.enable_thinking", "enable_thinking", lambda c, a, g: c.enable_thinking),
)
# geobench's own losses read the objective's hyperparameters from the policy-loss config (integrations.verl).
LOSS_TARGET = f"{ACTOR}.policy_loss._target_=geobench.integrations.verl.GeobenchPolicyLossConfig"
HPARAMS_PREFIX = f"+{ACTOR}.policy_loss.hparams."


def _text(value: Any) -> str:
    return str(value) if not isinstance(value, bool) else str(value)


def check_expressible(config: LLMConfig, algo: str) -> None:
    """Refuse, in one line, a setting verl's ``main_ppo`` has no counterpart for."""
    recipe = config.cell_recipe(get_objective(algo).recipe)
    if recipe.filter_groups:
        raise ConfigError(
            f"{algo}: dynamic sampling has no counterpart in verl's main_ppo; set dynamic_sampling = false"
        )
    if recipe.overlong_cache or recipe.mask_truncated:
        raise ConfigError(
            f"{algo}: DAPO's overlong handling is not in verl's main_ppo; "
            "set overlong_cache = 0 and overlong_filter = false"
        )


def departures(config: LLMConfig, algo: str) -> list[str]:
    """Where the verl run keeps a fixed value for what the loop adapts (a verl loss sees no batch reward)."""
    adaptive = config.cell_recipe(get_objective(algo).recipe).temperature
    if adaptive is None:
        return []
    fixed = hparams_of(config, algo)[adaptive.hparam]
    return [f"{algo}: the loop adapts {adaptive.hparam} ({adaptive.rule}); verl keeps it at {fixed}"]


def generated(config: LLMConfig, algo: str, n_gpus: int) -> list[str]:
    """The overrides :data:`FIELDS` writes for ``algo``, then geobench's loss and its hyperparameters."""
    if algo not in config.algos:
        raise ConfigError(f"this run has no algorithm {algo!r} for verl; valid: {', '.join(config.algos)}")
    check_expressible(config, algo)
    out = []
    for row in FIELDS:
        value = row.value(config, algo, n_gpus)
        if value is not None:
            out.append(f"{row.key}={_text(value)}")
    if algo not in NATIVE_LOSSES:
        out.append(LOSS_TARGET)
        own = dict(config.hparams.get(algo, {}))
        out += [f"{HPARAMS_PREFIX}{k}={_text(v)}" for k, v in own.items() if k not in ("clip_low", "clip_high", "agg")]
    return out
