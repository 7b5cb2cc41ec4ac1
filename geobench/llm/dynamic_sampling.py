"""DAPO's dynamic sampling (Yu et al. 2025, Eq. 11 and Algorithm 1): sample until the batch is full.

Algorithm 1 filters out the groups that carry no group-relative signal, adds the rest to a
buffer and keeps sampling "if n_b < N: continue" until the buffer holds N groups; verl's DAPO
recipe bounds the rounds with ``filter_groups.max_num_gen_batches`` (10 in its scripts) and
judges a group by ``filter_groups.metric`` (``acc`` there: all-correct and all-wrong groups go,
whatever a shaped reward or the overlong punishment adds). geobench does the same, except that
when the bound is hit it trains on what was collected (verl raises) and the loop logs how many
groups that was (``groups_kept``) and how many rounds it took (``gen_rounds``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from geobench.llm.rollout import Rollouts
from geobench.objectives import informative_groups

# What decides whether a group is informative: the correctness of its G completions (DAPO's
# Algorithm 1 and verl's metric "acc") or the rewards the objective sees (with any shaping
# and overlong punishment: geobench's former reading).
FILTER_METRICS = ("accuracy", "reward")


@dataclass(frozen=True)
class Scored:
    """One generation round: B prompts x G completions, graded.

    rolled: the B*G rollouts (row = b * G + g); rewards: (B, G) what the objective sees;
    correct: (B, G) 0/1 correctness.
    """

    rolled: Rollouts
    rewards: Tensor
    correct: Tensor

    def informative(self, metric: str) -> Tensor:
        """(B,) bool: the groups whose ``metric`` ("accuracy" or "reward") is not the same for all G."""
        return informative_groups(self.correct if metric == "accuracy" else self.rewards)

    def groups(self, index: Tensor) -> Scored:
        """The groups at ``index`` (M,), whole."""
        g = self.rewards.shape[-1]
        rows = (index.unsqueeze(-1) * g + torch.arange(g, device=index.device)).flatten()
        return Scored(self.rolled.select(rows), self.rewards[index], self.correct[index])


def fill_batch(
    first: Scored, more: Callable[[int], Scored], want: int, max_rounds: int, metric: str
) -> tuple[Scored, int]:
    """The first ``want`` informative groups of up to ``max_rounds`` generation rounds, and the rounds used.

    ``first`` is round 0 (the step's own prompts); ``more(r)`` generates and grades round r >= 1.
    Rounds stop as soon as ``want`` groups are kept; the excess of the last round is dropped
    in order (verl's "align the batch"), so the batch holds exactly ``want`` groups unless
    ``max_rounds`` ran out first, in which case it holds all the informative groups found
    (possibly none).
    """
    kept = [first.groups(first.informative(metric).nonzero().squeeze(-1))]
    count, rounds = len(kept[0].rewards), 1
    while count < want and rounds < max_rounds:
        scored = more(rounds)
        rounds += 1
        kept.append(scored.groups(scored.informative(metric).nonzero().squeeze(-1)))
        count += len(kept[-1].rewards)
    batch = concat(kept) if len(kept) > 1 else kept[0]
    if count > want:
        batch = batch.groups(torch.arange(want, device=batch.rewards.device))
    return batch, rounds


def concat(parts: list[Scored]) -> Scored:
    """The rounds' groups as one batch, in order."""
    return Scored(
        concat_rollouts([p.rolled for p in parts]),
        torch.cat([p.rewards for p in parts]),
        torch.cat([p.correct for p in parts]),
    )


def concat_rollouts(parts: list[Rollouts], pad_id: int = 0) -> Rollouts:
    """Rollouts of several generation rounds as one batch: prompts re-left-padded and
    completions re-right-padded to the widest (the padding sits under mask 0, and position
    ids count real tokens only, so every sequence scores as it did in its own batch)."""
    width_p = max(p.prompt_ids.shape[1] for p in parts)
    width_c = max(p.completion_ids.shape[1] for p in parts)

    def pad(x: Tensor, width: int, left: bool, value: int) -> Tensor:
        extra = width - x.shape[1]
        return torch.nn.functional.pad(x, (extra, 0) if left else (0, extra), value=value)

    return Rollouts(
        torch.cat([pad(p.prompt_ids, width_p, True, pad_id) for p in parts]),
        torch.cat([pad(p.prompt_mask, width_p, True, 0) for p in parts]),
        torch.cat([pad(p.completion_ids, width_c, False, pad_id) for p in parts]),
        torch.cat([pad(p.completion_mask, width_c, False, 0) for p in parts]),
        [text for p in parts for text in p.texts],
        torch.cat([p.truncated for p in parts]),
        sum(p.seconds for p in parts),
        parts[0].sampling,
    )
