"""The per-pair update check (issue 24): do two algorithms make different updates on the same batch?

At a checked step a cell of algorithm A, just before its own update, replays the whole update
sequence (``epochs`` x ``minibatches`` optimizer steps) of every algorithm X of the run on that
step's rollout batch, each from A's parameters, optimizer and scheduler state, and restores
them after each replay, so A's real update runs exactly as without the check (tested bit for
bit). Each replay is :func:`geobench.llm.train._update` itself, with X's objective and
hyperparameters and X's recipe applied to the batch as generated (overlong punishment, masking,
group filtering, its adaptive temperature), the same mini-batch order as A's (a copy of A's
generator) and the same pi_old: the log-probs of the same rows under the same weights. Each
update's parameter gradient (accumulated over the mini-batch's micro-batches) is read at the
optimizer step; gradient clipping scales the whole vector by a positive factor, which leaves a
cosine unchanged, so it is the cosine of the unclipped gradients. ``pairs.csv`` gets, per update
position u = 1 .. epochs*minibatches, cos(g_A^u, g_X^u).

What the check cannot know and fixes instead:

- X's adaptive temperature under Eq. 12's guard (ADPO's tau, OPO's escort T) has state, an EMA of
  X's own run's rewards, which A's cell does not have; X's replay takes a fresh guard's value on
  this batch (Eq. 12's first step: tau_max). At step 1, where every cell starts from the same warm
  start, that is X's own value; A's own replay uses A's real temperature. The per-prompt rule has no
  state and is exact.
- A replay in which X filters out every group makes no update: no rows for X at that step. One in
  which X keeps fewer groups than there are mini-batches makes fewer updates per epoch: rows for
  the update positions both sequences have.
- A zero gradient (e.g. a mini-batch of groups whose rewards are all equal) has no direction: its
  cosine is NaN, which the report counts neither way.

Cost: one replay per algorithm of the run, i.e. a checked step does ``len(algos)`` update
sequences besides its own, plus one no-grad pass of pi_old for each recipe that keeps other rows
than A's; no extra rollouts. Measured on a quick-profile GRPO cell (5 algorithms, 16 x 6
completions, 4 updates per batch, one thread): a checked step took 3.7 normal ones, so checking
every 20 steps adds about 14 % to a run.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from geobench.llm.settings import CellRecipe, LLMConfig
from geobench.llm.temperatures import authors_temperature, guard_confidence, per_prompt_tau
from geobench.llm.train import (
    StepState,
    UpdateBatch,
    _update,
    cell_hparams,
    needs_old,
    recipe_rewards,
    recipe_rows,
)
from geobench.objectives import get_objective, group_advantages

# pairs.csv's columns (PAIRS_SCHEMA.md); a cell's pair rows travel with its metrics as PAIR_METRIC.
PAIR_COLUMNS = ("experiment", "variant", "seed", "step", "other", "update", "cosine")
PAIR_METRIC = "pair_cosine"


def checked(step: int, every: int) -> bool:
    """Whether the check runs at RL step ``step`` (1-based): steps 1, 1 + k, 1 + 2k, ...; never for k = 0."""
    return every > 0 and (step - 1) % every == 0


class _Snapshot:
    """The learner's state: parameters, optimizer and scheduler state, and the RNGs; restored in place."""

    def __init__(self, state: StepState):
        self.state = state
        self.params = [p.detach().clone() for p in state.policy.parameters()]
        self.optimizer = copy.deepcopy(state.optimizer.state_dict())  # state_dict() holds the live tensors
        self.scheduler = copy.deepcopy(state.scheduler.state_dict())
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self) -> None:
        state = self.state
        with torch.no_grad():
            for param, saved in zip(state.policy.parameters(), self.params, strict=True):
                param.copy_(saved)
        # load_state_dict keeps the tensors it is given and the next replay updates them in place: a copy,
        # so that the snapshot stays valid for another restore.
        state.optimizer.load_state_dict(copy.deepcopy(self.optimizer))
        state.scheduler.load_state_dict(copy.deepcopy(self.scheduler))
        state.optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


class _Recording:
    """The cell's optimizer, recording the flattened parameter gradient at each ``step`` before taking it."""

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[Tensor]):
        self.optimizer = optimizer
        self.params = params
        self.grads: list[Tensor] = []

    def __getattr__(self, name: str) -> Any:  # param_groups, state, ...: the cell's optimizer's
        return getattr(self.optimizer, name)

    def step(self) -> None:
        flat = [torch.zeros_like(p).flatten() if p.grad is None else p.grad.detach().flatten() for p in self.params]
        self.grads.append(torch.cat(flat).float())
        self.optimizer.step()


def replay_batch(state: StepState, algo: str, settings: LLMConfig, cache: dict) -> UpdateBatch | None:
    """What a cell of ``algo`` would update on in ``state``'s step: its recipe applied to the batch as
    generated, pi_old's log-probs of its rows (shared through ``cache`` between algorithms keeping the
    same rows), its temperature; None when its recipe keeps no group.

    ``cache`` maps (filter, mask, overlong) to (rows, rewards, pi_old log-probs, entropies); call with
    the learner at its snapshot.
    """
    entry = get_objective(algo)
    recipe = settings.cell_recipe(entry.recipe)
    key = _rows_key(recipe)
    if key not in cache:
        rewards = recipe_rewards(state.task_rewards, state.generated.lengths, recipe, settings.max_new_tokens)
        correct = state.task_correct if settings.filter_metric == "accuracy" else None
        rolled, rewards, _ = recipe_rows(state.generated, rewards, recipe, correct)
        cache[key] = [rolled, rewards, None, None]
    rolled, rewards, old, entropy = cache[key]
    if not len(rewards):
        return None
    adaptive = recipe.temperature
    per_prompt = adaptive is not None and adaptive.rule == "entropy-reward"
    if (old is None and needs_old(settings, entry, recipe, len(rewards))) or (per_prompt and entropy is None):
        with torch.no_grad():
            old, entropy = rolled.logprobs(state.policy, with_entropy=True)
        cache[key][2:] = [old, entropy]
    if not needs_old(settings, entry, recipe, len(rewards)):
        old = None  # as the cell would: one on-policy pass
    vocab = state.policy.config.vocab_size
    hparams = cell_hparams(entry, settings, vocab)
    if adaptive is not None:
        shape = (*rewards.shape, -1)
        mask = rolled.completion_mask.view(shape)
        chosen = {**entry.defaults, **hparams}
        if per_prompt:
            hparams[adaptive.hparam] = per_prompt_tau(
                chosen[adaptive.hparam], entropy.view(shape), mask, rewards, vocab, settings
            )
        elif adaptive.rule == "authors":  # stateless, so exact: the cell's rule on this batch
            adv = group_advantages(rewards, chosen.get("advantage", "zscore"))
            tau = authors_temperature(chosen[adaptive.hparam], old.view(shape), mask, adv, adaptive, vocab)
            hparams[adaptive.hparam] = tau
        else:
            ids = rolled.completion_ids.view(shape)
            confidence = guard_confidence(old.view(shape), mask, settings.tau_confidence, ids)
            hparams[adaptive.hparam] = adaptive.guard().step(confidence, float(rewards.mean()))
    return UpdateBatch(rolled, rewards, old, entry.bind(**hparams))


def _rows_key(recipe: CellRecipe) -> tuple[bool, bool, int]:
    """What decides the rows, rewards and pi_old log-probs a recipe gives the update."""
    return recipe.filter_groups, recipe.mask_truncated, recipe.overlong_cache


def update_directions(state: StepState, batch: UpdateBatch, settings: LLMConfig) -> list[Tensor]:
    """The (n_params,) gradient of each of the ``epochs * minibatches`` updates of ``batch``'s update
    sequence from ``state``'s learner; the learner is restored after."""
    snapshot = _Snapshot(state)
    recording = _Recording(state.optimizer, list(state.policy.parameters()))
    gen = torch.Generator().set_state(state.gen.get_state())  # A's mini-batch order, A's generator untouched
    try:
        inputs = (batch.loss_fn, batch.rolled, batch.rewards, batch.old)
        _update(state.policy, recording, state.scheduler, *inputs, settings, gen)
    finally:
        snapshot.restore()
    return recording.grads


def cosine(a: Tensor, b: Tensor) -> float:
    """cos(a, b) in float64; NaN when either is zero (no direction to compare)."""
    a, b = a.double(), b.double()
    norms = float(a.norm()) * float(b.norm())
    return float(a @ b) / norms if norms > 0 else math.nan


def pair_cosines(state: StepState, algo: str, settings: LLMConfig) -> dict[str, list[float]]:
    """{X: [cos(g_A^u, g_X^u) for u = 1 .. U]} for every X of ``settings.compared`` other than ``algo`` (A)
    whose recipe keeps a group (U: the shorter sequence's updates); A's sequence is its own update's,
    X's from :func:`replay_batch`."""
    reference = update_directions(state, state.own, settings)
    own, own_key = state.own, _rows_key(settings.cell_recipe(get_objective(algo).recipe))
    cache: dict = {own_key: [own.rolled, own.rewards, own.old, None]}  # an X keeping A's rows reuses its pi_old
    out = {}
    for other in settings.compared:
        if other == algo:
            continue
        batch = replay_batch(state, other, settings, cache)
        if batch is not None:
            grads = update_directions(state, batch, settings)
            out[other] = [cosine(a, b) for a, b in zip(reference, grads, strict=False)]
    return out


class PairCheck:
    """A cell's ``before_update`` hook: the check at every ``pair_check_every``-th step; its rows in ``rows``.

    Rows are tidy like the cell's metrics: one ``pair_cosine`` row per (other, update) with the
    columns ``other`` and ``update``, and one ``pair_check_time_s`` (timing) row per checked step.
    """

    def __init__(self, settings: LLMConfig, algo: str, seed: int):
        self.settings, self.algo, self.seed = settings, algo, seed
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int, state: StepState) -> None:
        if not checked(step, self.settings.pair_check_every):
            return
        start = time.perf_counter()
        for other, values in pair_cosines(state, self.algo, self.settings).items():
            for update, value in enumerate(values, start=1):
                row = {"seed": self.seed, "step": step, "metric": PAIR_METRIC, "value": value}
                self.rows.append({**row, "other": other, "update": update})
        seconds = time.perf_counter() - start
        self.rows.append({"seed": self.seed, "step": step, "metric": "pair_check_time_s", "value": seconds})


def split_pairs(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A cell's rows as (its metric rows, its pairs.csv rows in :data:`PAIR_COLUMNS` less ``experiment``)."""
    if "other" not in frame.columns:
        return frame, pd.DataFrame(columns=list(PAIR_COLUMNS[1:]))
    is_pair = frame["metric"] == PAIR_METRIC
    pairs = frame[is_pair].rename(columns={"value": "cosine"})[list(PAIR_COLUMNS[1:])]
    return frame[~is_pair].drop(columns=["other", "update"]), pairs.astype({"update": int})
