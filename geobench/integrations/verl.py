"""geobench's objectives as verl policy losses (verl >= 0.9), registered as ``geobench_<name>``.

verl finds this module through the ``verl.plugins`` entry point in geobench's pyproject
(or ``VERL_USE_EXTERNAL_MODULES=geobench.integrations.verl``); importing it registers
every objective of :data:`LOSSES` in ``verl.trainer.ppo.core_algos.POLICY_LOSS_REGISTRY``.
Select one with ``actor_rollout_ref.actor.policy_loss.loss_mode=geobench_opo``.

How the two things verl's loss signature lacks reach the loss:

- **Group structure.** verl passes (N, T) tensors, N = micro-batch of responses, and the
  group size as ``config.rollout_n``. Responses arrive prompt-major (verl repeats each prompt
  ``n`` times, interleaved), so a micro-batch holds whole groups in consecutive rows as long
  as nothing reorders them: ``trainer.balance_batch=False``, ``actor.shuffle=False``,
  ``use_dynamic_bsz=False`` and a micro-batch that is a multiple of ``rollout.n``. The loss
  checks this on every call: N must divide by G, and with GRPO's group-normalised
  advantages every block of G consecutive advantages must sum to zero; otherwise it raises
  an error naming these settings.
- **Hyperparameters.** ``policy_loss`` is instantiated from its ``_target_``; pointing that
  at :class:`GeobenchPolicyLossConfig` (a ``PolicyLossConfig`` with one more field) lets
  ``+actor_rollout_ref.actor.policy_loss.hparams.alpha=0.4`` reach the loss. They are
  validated by geobench's registry, so a bad value fails at the first step with geobench's
  one-line message. The clip ratios come from verl's own ``clip_ratio_low/high`` and the
  aggregation from ``loss_agg_mode`` for the objectives that take them.

Advantages are verl's (e.g. ``algorithm.adv_estimator=grpo``), read per response from the
first token; geobench's objectives use them as given (``GroupBatch.advantages``). ADPO's
adaptive temperature needs the batch reward, which a verl loss never sees: here tau is
fixed (``hparams.tau``). OPO's code form (``geobench_opo-code``) computes the authors' adaptive
tau on its anchored logits inside the loss, on the micro-batch it is called on, as their fork does.

**Mini-batch statistics** (an objective's ``prepare`` step: OPO's escort normalisation over the
mini-batch). verl calls the loss on one micro-batch at a time, so the loss cannot see the rest of
a mini-batch on its own GPU; the generated config therefore makes each GPU's micro-batch its
whole share of the mini-batch (``verl_fields.micro_responses``), and the loss gathers the
detached inputs of ``prepare`` (pi_old's sequence log-probs and the advantages, fixed during the
update) from every data-parallel rank, runs the same ``prepare`` as the geobench loop on the
whole mini-batch, and keeps its own rows. Ranks hold consecutive chunks of the mini-batch in rank
order (verl's DP dispatch), and every rank calls the loss equally often (no dynamic batch size),
so the collective is matched. Sequence parallelism (ulysses > 1) is not supported by this gather.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss
from verl.workers.config import PolicyLossConfig

from geobench.objectives import GroupBatch, get_objective
from geobench.objectives.aggregation import Totals

PREFIX = "geobench_"
LOSSES = ("opo", "opo-code", "adpo", "grpo", "gspo", "dapo")
_GROUP_SETTINGS = (
    "set trainer.balance_batch=False, actor_rollout_ref.actor.shuffle=False, "
    "actor_rollout_ref.actor.use_dynamic_bsz=False and a ppo_micro_batch_size_per_gpu that is a multiple of rollout.n"
)


@dataclass
class GeobenchPolicyLossConfig(PolicyLossConfig):
    """verl's policy-loss config plus the geobench objective's hyperparameters."""

    hparams: dict[str, Any] = field(default_factory=dict)


def _hparams(name: str, config: Any, loss_agg_mode: str) -> dict[str, Any]:
    """The objective's hyperparameters: verl's clip and aggregation where it takes them, then ``hparams``."""
    accepted = get_objective(name).defaults
    from_verl = {
        "clip_low": config.get("clip_ratio_low", None),
        "clip_high": config.get("clip_ratio_high", None),
        "agg": loss_agg_mode,
    }
    chosen = {k: v for k, v in from_verl.items() if k in accepted and v is not None}
    policy_loss = config.get("policy_loss", None)
    extra = dict(policy_loss.get("hparams", {}) or {}) if policy_loss is not None else {}
    return {**chosen, **extra}


def group_batch(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    group: int,
) -> GroupBatch:
    """verl's (N, T) tensors as a (N / G, G, T) group batch; raises if rows are not whole groups."""
    n, t = log_prob.shape
    if group < 2 or n % group:
        raise ValueError(
            f"geobench loss: micro-batch of {n} responses is not whole groups of {group}; {_GROUP_SETTINGS}"
        )
    mask = response_mask.to(log_prob.dtype)
    seq_adv = (advantages * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # (N,) one value per response
    blocks = seq_adv.view(-1, group)
    if (blocks.sum(-1).abs() > 1e-3 * group * (1.0 + blocks.abs().amax(-1))).any():
        raise ValueError(
            "geobench loss: consecutive rows do not form groups (advantages do not sum to 0 per group); "
            + _GROUP_SETTINGS
        )
    shape = (n // group, group, t)
    return GroupBatch(
        logp=log_prob.view(shape),
        mask=response_mask.view(shape),
        rewards=blocks,
        old_logp=old_log_prob.view(shape),
        advantages=blocks,
    )


def global_totals(config: Any, group: int) -> tuple[Totals | None, int]:
    """The mini-batch's counts across every rank, from verl's ``global_batch_info``, and the dp size.

    verl 0.9's engine sums micro-batch gradients and averages them over data-parallel ranks,
    expecting each loss to be its share of the global mini-batch times ``dp_size`` (``agg_loss``):
    ``batch_num_tokens`` tokens and ``global_batch_size`` responses. With these as
    :class:`GroupBatch.totals`, geobench's loss is that share for every aggregation, as in the
    loop's gradient accumulation. (None, 1) when verl passes no such counts (a plain call).
    """
    info = dict(getattr(config, "global_batch_info", None) or {})
    tokens, responses = info.get("batch_num_tokens"), info.get("global_batch_size")
    if tokens is None or responses is None:
        return None, 1
    n = float(responses)
    return Totals(tokens=float(tokens), sequences=n, candidates=n, contexts=n / group), int(info.get("dp_size", 1))


def _all_gather(local: torch.Tensor) -> list[torch.Tensor]:
    """``local`` from every data-parallel rank in rank order; just ``[local]`` outside torch.distributed."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [local]
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.contiguous())
    return parts


def prepare_inputs(batch: GroupBatch) -> torch.Tensor:
    """(2, B, G): what an objective's ``prepare`` reads, pi_ref's sequence log-probs and the advantages."""
    return torch.stack([batch.seq_logp("ref").detach(), batch.advantage("zscore")])


def with_mini_batch_drive(bound: Any, batch: GroupBatch, gather: Any = None) -> GroupBatch:
    """``batch`` with ``drive`` from ``bound.prepare`` over the whole mini-batch (every rank's rows).

    ``gather`` returns the (2, B_r, G) :func:`prepare_inputs` of every rank in rank order; this
    rank's rows are located by its own tensor's position among them (torch.distributed's rank).
    """
    local = prepare_inputs(batch)
    parts = (gather or _all_gather)(local)
    rank = torch.distributed.get_rank() if len(parts) > 1 else 0
    whole = torch.cat(parts, dim=1)
    if batch.totals is not None and whole[0].numel() != batch.totals.candidates:
        raise ValueError(
            f"geobench loss: the ranks' micro-batches hold {whole[0].numel()} of the mini-batch's "
            f"{batch.totals.candidates:.0f} responses; a mini-batch statistic needs each GPU's micro-batch to be its "
            "whole share: ppo_micro_batch_size_per_gpu = ppo_mini_batch_size x rollout.n / GPUs (geobench verl command)"
        )
    ref, adv = whole[0], whole[1]
    sequences = dataclasses.replace(GroupBatch.from_sequences(ref, adv, old_logp=ref), advantages=adv)
    drive = bound.prepare(sequences).drive
    if drive is None:  # a form whose prepare precomputes nothing (OPO's code form reads the policy)
        return batch
    start = sum(p.shape[1] for p in parts[:rank])
    return dataclasses.replace(batch, drive=drive[start : start + local.shape[1]])


def make_verl_loss(name: str):
    """A verl policy loss calling geobench's objective ``name`` (the signature verl calls)."""

    def loss(
        old_log_prob: torch.Tensor,
        log_prob: torch.Tensor,
        advantages: torch.Tensor,
        response_mask: torch.Tensor,
        loss_agg_mode: str = "token-mean",
        config: Any = None,
        rollout_is_weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        if config is None:
            raise ValueError(f"{PREFIX}{name}: verl passes the actor config; got None")
        if rollout_is_weights is not None:
            raise ValueError(
                f"{PREFIX}{name}: rollout correction weights are not supported; disable rollout_correction"
            )
        group = int(config.get("rollout_n"))
        batch = group_batch(old_log_prob, log_prob, advantages, response_mask, group)
        totals, dp_size = global_totals(config, group)
        batch = dataclasses.replace(batch, totals=totals)
        bound = get_objective(name).bind(**_hparams(name, config, loss_agg_mode))
        if bound.prepares:
            batch = with_mini_batch_drive(bound, batch)
        value, metrics = bound(batch)
        value = value * dp_size  # ranks' gradients are averaged: each loss is its share times dp_size
        return value, {f"actor/geobench/{key}": float(v) for key, v in metrics.items()}

    loss.__name__ = f"{PREFIX}{name}"
    loss.__doc__ = f"geobench's ``{name}`` objective as a verl policy loss (see geobench.integrations.verl)."
    return loss


def register() -> list[str]:
    """Register every objective of :data:`LOSSES` with verl (idempotent); returns the names."""
    names = []
    for name in LOSSES:
        key = f"{PREFIX}{name}"
        if key not in POLICY_LOSS_REGISTRY:
            register_policy_loss(key)(make_verl_loss(name))
        names.append(key)
    return names


register()  # the plugin contract: verl imports this module and expects its losses registered
