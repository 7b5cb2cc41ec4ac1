"""Training one bandit cell: every seed of (scenario, level, hidden, method) as one computation.

Seeds are a leading axis of the MLP weights (:mod:`geobench.nn`); each seed's loss is the
library objective applied to that seed's batch through ``torch.func.vmap``, so
batch-level operations (OPO's escort normalisation, DPO's valid-pair count) never mix
seeds, and the summed loss gives every seed exactly its own gradient. AdamW is
elementwise, so one optimizer over the stacked weights is S independent optimizers.

Feedback by method family (ADPO Sec. 6.1 leaves it unstated; ours):

- ``listwise``: the noisy scores of all K items of each context;
- ``pairwise``: the same K noisy scores, consumed as all K(K-1)/2 labelled pairs;
- ``sampled`` (PPO, GRPO, OPO, TRPO): G actions drawn from the current policy per
  context, each with its own noisy reward.

Every method makes ``epochs`` AdamW passes over each batch with pi_old frozen (TRPO: one
natural-gradient step instead, its KL exact over the K items). Anchors: methods fed
offline feedback (listwise, pairwise) keep the fixed pretrained reference (ADPO Sec. 5.2:
"Fixed/uniform anchors: Suitable for offline settings"; DPO's "Fixed Anchor"); OPO anchors
on pi_old (Algorithm 1). ``anchor`` overrides this per cell (the config's ``anchors``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from geobench.bandits.env import BanditEnv, Draws, NoiseLevel, corrupt, top_items, winmass
from geobench.errors import ConfigError, require_finite
from geobench.nn import flatten_params, generator, init_mlp, mlp, unflatten_params
from geobench.objectives import find_objective, natural_gradient_step, per_seed_objective
from geobench.progress import StepReport, no_report, seed_means


@dataclass(frozen=True)
class Method:
    """A bandit method: which objective, which feedback, which anchor, which update."""

    objective: str
    feedback: str  # "listwise" | "pairwise" | "sampled"
    anchor: str  # "reference" (fixed, pretrained) | "old" (on-policy pi_old)
    update: str = "adamw"  # or "trpo"


ANCHORS = ("reference", "old")
METHODS: dict[str, Method] = {
    "adpo-listwise-raw": Method("adpo-listwise-raw", "listwise", "reference"),
    "adpo-listwise-rank": Method("adpo-listwise-rank", "listwise", "reference"),
    "adpo-pairwise": Method("adpo-pairwise", "pairwise", "reference"),
    "dpo-soft": Method("dpo-soft", "pairwise", "reference"),
    "dpo-hard": Method("dpo-hard", "pairwise", "reference"),
    "ppo": Method("ppo", "sampled", "old"),
    "trpo": Method("trpo", "sampled", "old", update="trpo"),
    "grpo": Method("grpo", "sampled", "old"),
    "opo": Method("opo", "sampled", "old"),
}


# The anchor an objective outside the table runs with, by its declared feedback: the offline
# feedbacks keep the fixed pretrained reference, sampled feedback the on-policy pi_old (ADPO Sec. 5.2).
DEFAULT_ANCHORS = {"listwise": "reference", "pairwise": "reference", "sampled": "old"}


def get_method(name: str) -> Method:
    """The table's method ``name``, else the registered objective ``name`` (a plugin's, say) as
    its own method: its declared feedback, that feedback's default anchor, an AdamW update."""
    if name in METHODS:
        return METHODS[name]
    entry = find_objective(name)
    if entry is None:
        valid = ", ".join(METHODS)
        listed = "or an objective `geobench objectives` lists"
        raise ConfigError(f"unknown bandit method {name!r}; valid: {valid}, {listed}")
    return Method(name, entry.feedback, DEFAULT_ANCHORS[entry.feedback])


@dataclass(frozen=True)
class TrainSettings:
    """The numbers one cell needs (a view of BanditConfig, so this module has no sweep logic)."""

    steps: int
    batch_contexts: int
    samples_per_context: int
    epochs: int
    lr: float
    weight_decay: float
    ref_steps: int
    eval_contexts: int
    eval_every: int
    trpo_max_kl: float
    trpo_damping: float
    trpo_cg_iters: int


def pretrain_reference(env: BanditEnv, hidden: int, seeds: list[int], s: TrainSettings) -> dict[str, Tensor]:
    """The reference policy: the MLP trained ``ref_steps`` AdamW steps on clean labels i*(x).

    ADPO Sec. 6.1: "Reference policies are pre-trained for 30 steps on clean data to
    simulate SFT initialization." Returns detached stacked parameters (S, ...).
    """
    params = init_mlp([env.dim, hidden, env.items], [generator("bandit-init", hidden, seed) for seed in seeds])
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.AdamW(params.values(), lr=s.lr, weight_decay=s.weight_decay)
    gens = [generator("bandit-ref-data", hidden, seed) for seed in seeds]
    contexts = torch.stack([env.contexts((s.ref_steps, s.batch_contexts), g) for g in gens])  # (S, steps, B, d)
    for step in range(s.ref_steps):
        x = contexts[:, step]
        labels = env.clean_rewards(x).argmax(-1)
        logits = mlp(params, x)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
        opt.zero_grad()
        loss.view(len(seeds), -1).mean(-1).sum().backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def evaluate(env: BanditEnv, params: dict[str, Tensor], n: int) -> dict[str, Tensor]:
    """Metrics of each seed's policy on the held-out clean contexts, each (S,).

    ``winmass``: E_x[pi(i*(x) | x)]; ``top_prob``: E_x[max_i pi(i | x)], the policy's
    confidence, so that "confident but wrong" (high top_prob, low winmass) is visible.
    """
    x = env.eval_contexts(n)
    best = env.clean_rewards(x).argmax(-1)
    s = next(iter(params.values())).shape[0]
    with torch.no_grad():
        logits = mlp(params, x.expand(s, -1, -1))
        return {"winmass": winmass(logits, best), "top_prob": torch.softmax(logits, -1).max(-1).values.mean(-1)}


@dataclass(frozen=True)
class SeedStreams:
    """Every random number one cell consumes, drawn up front: one generator call per seed and
    tensor instead of one per step, so S seeds add no per-step Python work. Each seed has its
    own generator, so a seed's numbers do not depend on which other seeds run with it.

    Shapes: contexts (S, steps, B, d); draws (S, steps, B, n); actions (S, steps, B, G) or None.
    """

    contexts: Tensor
    draws: Draws
    actions: Tensor | None

    @classmethod
    def draw(
        cls, env: BanditEnv, level: NoiseLevel, gens: list[torch.Generator], s: TrainSettings, n_obs: int, sampled: bool
    ) -> SeedStreams:
        shape = (s.steps, s.batch_contexts)
        contexts = torch.stack([env.contexts(shape, g, level.shift) for g in gens])
        # listwise/pairwise feedback: one corruption event per context; sampled: one per action
        per_seed = [Draws.sample((*shape, n_obs), (*shape, n_obs if sampled else 1), g) for g in gens]
        draws = Draws(*(torch.stack([getattr(d, f.name) for d in per_seed]) for f in dataclasses.fields(Draws)))
        actions = torch.stack([torch.rand(*shape, n_obs, generator=g) for g in gens]) if sampled else None
        return cls(contexts, draws, actions)

    def at(self, step: int) -> tuple[Tensor, Draws, Tensor | None]:
        """The contexts (S, B, d), feedback draws and action uniforms of one step."""
        draws = Draws(*(getattr(self.draws, f.name)[:, step] for f in dataclasses.fields(Draws)))
        return self.contexts[:, step], draws, None if self.actions is None else self.actions[:, step]


def train_cell(
    env: BanditEnv,
    level: NoiseLevel,
    data_key: tuple[Any, ...],
    method_name: str,
    hparams: Mapping[str, Any],
    reference: dict[str, Tensor],
    seeds: list[int],
    s: TrainSettings,
    on_step: StepReport = no_report,
    anchor: str | None = None,
) -> pd.DataFrame:
    """Train all seeds of one cell from the reference; rows of WinMass along training.

    ``data_key`` names the data stream (scenario, level, ...): methods of one family see
    the same contexts and noise for the same seed (common random numbers).
    """
    method = get_method(method_name)
    if anchor is not None:
        method = dataclasses.replace(method, anchor=anchor)
    per_seed = per_seed_objective(method.objective, **hparams)
    params = {k: v.clone().requires_grad_(True) for k, v in reference.items()}
    opt = torch.optim.AdamW(params.values(), lr=s.lr, weight_decay=s.weight_decay)
    n_obs = env.items if method.feedback != "sampled" else s.samples_per_context
    gens = [generator("bandit-data", *data_key, method.feedback, seed) for seed in seeds]
    sampled = method.feedback == "sampled"
    streams = SeedStreams.draw(env, level, gens, s, n_obs, sampled=sampled)
    rows = [metric_rows(evaluate(env, params, s.eval_contexts), seeds, 0)]
    on_step(0, s.steps, seed_means(rows[-1]))
    for step in range(1, s.steps + 1):
        x, draws, u = streams.at(step - 1)
        clean = env.clean_rewards(x)  # (S, B, K)
        center = clean.median(-1, keepdim=True).values
        top = top_items(clean, level.flip_top)
        with torch.no_grad():  # only the forward passes this method uses
            ref_all = torch.log_softmax(mlp(reference, x), -1) if method.anchor == "reference" else None
            old_all = torch.log_softmax(mlp(params, x), -1) if sampled or method.anchor == "old" else ref_all
        if sampled:
            actions = sample_actions(old_all, u)  # (S, B, G)
            rewards = corrupt(clean.gather(-1, actions), top.gather(-1, actions), center, draws, level)
            old = old_all.gather(-1, actions)
            anchor_logp = old if method.anchor == "old" else ref_all.gather(-1, actions)
            if method.update == "trpo":
                params = _trpo_update(params, x, actions, rewards, old_all, per_seed, s)
            else:
                for _ in range(s.epochs):
                    logp = torch.log_softmax(mlp(params, x), -1).gather(-1, actions)
                    _adamw_step(opt, per_seed(logp, rewards, old, anchor_logp))
        else:
            rewards = corrupt(clean, top, center, draws, level)
            anchor_logp = old_all if method.anchor == "old" else ref_all
            for _ in range(s.epochs):
                logp = torch.log_softmax(mlp(params, x), -1)
                _adamw_step(opt, per_seed(logp, rewards, old_all, anchor_logp))
        logged = step % s.eval_every == 0 or step == s.steps
        if logged:
            rows.append(metric_rows(evaluate(env, params, s.eval_contexts), seeds, step))
        on_step(step, s.steps, seed_means(rows[-1]) if logged else None)
    return pd.concat(rows, ignore_index=True)


def sample_actions(log_probs: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: (S, B, K) log-probs and (S, B, G) uniforms -> (S, B, G) items.

    Each seed draws from its own uniforms, so a seed's results do not depend on which
    other seeds share the batch.
    """
    cdf = log_probs.exp().cumsum(-1)
    return torch.searchsorted(cdf, u * cdf[..., -1:]).clamp(max=log_probs.shape[-1] - 1)


def _adamw_step(opt: torch.optim.Optimizer, losses: Tensor) -> None:
    opt.zero_grad()
    losses.sum().backward()  # seeds are independent: each gets its own gradient
    opt.step()


def _trpo_update(
    params: dict[str, Tensor],
    x: Tensor,
    actions: Tensor,
    rewards: Tensor,
    old_all: Tensor,
    per_seed: Callable[..., Tensor],
    s: TrainSettings,
) -> dict[str, Tensor]:
    """One natural-gradient step per seed; the KL is exact over the K items, mean over contexts."""
    old = old_all.gather(-1, actions)

    def log_probs(flat: Tensor) -> Tensor:
        return torch.log_softmax(mlp(unflatten_params(flat, params), x), -1)

    def loss_fn(flat: Tensor) -> Tensor:
        return per_seed(log_probs(flat).gather(-1, actions), rewards, old, old)

    def kl_fn(flat: Tensor) -> Tensor:
        return (old_all.exp() * (old_all - log_probs(flat))).sum(-1).mean(-1)

    new, _ = natural_gradient_step(
        flatten_params(params),
        loss_fn,
        kl_fn,
        max_kl=s.trpo_max_kl,
        damping=s.trpo_damping,
        cg_iters=s.trpo_cg_iters,
    )
    return {k: v.detach().requires_grad_(True) for k, v in unflatten_params(new, params).items()}


def metric_rows(metrics: dict[str, Tensor], seeds: list[int], step: int) -> pd.DataFrame:
    """Tidy rows of per-seed metrics; a diverged seed (NaN or inf) stops the cell instead of being written."""
    for name, v in metrics.items():
        require_finite({name: float(v.sum())}, step=step)
    return pd.concat(
        [
            pd.DataFrame({"seed": seeds, "step": step, "metric": name, "value": v.tolist()})
            for name, v in metrics.items()
        ],
        ignore_index=True,
    )
