"""Objectives over a leading seed axis: S independent runs trained as one computation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor
from torch.func import vmap

from geobench.objectives.batch import GroupBatch
from geobench.objectives.registry import make_objective


def per_seed_objective(name: str, **hparams: Any) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """``(logp, rewards, old, ref) -> (S,)``: the objective applied to each seed's batch.

    Inputs are (S, B, G) sequence/action log-probs and (S, B, G) rewards. ``vmap`` keeps
    batch-level operations (OPO's escort normalisation, DPO's valid-pair count) inside each
    seed, so ``losses.sum()`` gives every seed exactly the gradient of its own loss.
    """
    loss_fn = make_objective(name, **hparams)

    def one_seed(logp: Tensor, rewards: Tensor, old: Tensor, ref: Tensor) -> Tensor:
        return loss_fn(GroupBatch.from_sequences(logp, rewards, old_logp=old, ref_logp=ref))[0]

    seeds = vmap(one_seed)

    def losses(logp: Tensor, rewards: Tensor, old: Tensor, ref: Tensor) -> Tensor:
        stacked = seeds(logp, rewards, old, ref)
        loss_fn.require_finite(stacked)  # inside vmap the losses cannot be read; their (S,) stack can
        return stacked

    return losses
