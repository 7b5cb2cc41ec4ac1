"""OPO Fig. 3: gradient saturation on a binary logit, by autograd through the objective library.

A policy over two outcomes {y, y'} with logit z: pi(y) = p = sigmoid(z), anchor z_ref.
For each objective we build the group batch it would see, evaluate its loss at every
point of a grid over p, and record dL/dz (``grad``) and |dL/dz| (``grad_abs``, the figure's).
The objectives are the library's, with the constants of ``experiments/opo_fig3.toml``;
nothing here differentiates by hand.

Two readings of the anchored coordinate Delta (the ``coordinates`` column):

- ``anchored-logit``: the candidates' scores are the logits (z, 0) and the anchor's
  (z_ref, 0), so Delta(y) = z - z_ref and the ratio is e^(z - z_ref). This is the reading
  under which the paper's figure holds (OPO's gradient |mu z - A| grows linearly).
- ``exact``: the scores are the true log-probs (log p, log(1 - p)), so Delta(y) =
  log p - log sigmoid(z_ref). OPO's logit gradient is then (mu Delta - A)(1 - p), which
  vanishes as p -> 1 like the others: the figure's claim depends on the coordinate.

Sampled-feedback objectives (GRPO, DAPO, GSPO, OPO) see the single sample y with
advantage A; pairwise ones (DPO) the pair y > y'; listwise ones (SFT) both outcomes
with y the target. pi_old = pi_ref, so ratios are taken against the anchor. Every one of them
prefers y, so a descent step should raise z: dL/dz < 0. A positive ``grad`` is a sign error, which
|dL/dz| alone would read as a gradient that does not vanish.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from geobench.config import check_caps, check_lists
from geobench.errors import ConfigError
from geobench.executor import ExecutorConfig
from geobench.identity import objective_inputs, package_inputs
from geobench.objectives import GroupBatch, check_tables, get_objective
from geobench.progress import progress_bar
from geobench.results import RunDir

EXPERIMENT = "toy-saturation"
READINGS = ("anchored-logit", "exact")
# Memory, time and CSV grow linearly with the grid (one row per point, objective and reading):
# 10^5 points took 17 s, 0.8 GB and 180 MB of CSV on the 2-core machine; 10^8 ran out of
# memory after 9 minutes. Past 10^5 the curves are no sharper at any plot resolution.
# The metrics a cell writes, recorded among its inputs: a cell written before ``grad`` existed is
# recomputed, not merged with the cells that have it.
METRICS = ("grad_abs", "grad")
CAPS = {"grid_points": (100_000, "the paper profile draws 20,001; 100,000 already take ~0.8 GB and 180 MB of CSV")}


@dataclass(frozen=True)
class ToyConfig:
    """Settings of the saturation study; see ``experiments/opo_fig3.toml`` for their sources."""

    objectives: tuple[str, ...] = ("sft", "dpo", "grpo", "dapo", "gspo", "opo")
    readings: tuple[str, ...] = READINGS
    grid_points: int = 2001
    p_min: float = 1e-4
    p_max: float = 1.0 - 1e-4
    z_ref: float = 0.0
    advantage: float = 1.0
    log_floor: float = 1e-16
    seed: int = 0
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_lists(self, "objectives", "readings")
        check_caps(self, CAPS)
        check_tables(self.hparams)
        for name in self.objectives:
            get_objective(name).validate(dict(self.hparams.get(name, {})))
        for reading in self.readings:
            if reading not in READINGS:
                raise ConfigError(f"unknown coordinates reading {reading!r}; valid: {', '.join(READINGS)}")
        if self.grid_points < 3:
            raise ConfigError(f"grid_points must be >= 3; got {self.grid_points}")
        if not 0.0 < self.p_min < self.p_max < 1.0:
            raise ConfigError(f"need 0 < p_min < p_max < 1; got p_min={self.p_min}, p_max={self.p_max}")


def candidate_scores(z: torch.Tensor, z_ref: float, reading: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Policy and anchor scores of the two outcomes (y, y') under a reading: each (N, 2)."""
    ref = torch.full_like(z, z_ref)
    if reading == "anchored-logit":
        return torch.stack([z, torch.zeros_like(z)], -1), torch.stack([ref, torch.zeros_like(ref)], -1)
    return (
        torch.stack([F.logsigmoid(z), F.logsigmoid(-z)], -1),
        torch.stack([F.logsigmoid(ref), F.logsigmoid(-ref)], -1),
    )


def toy_batch(z: torch.Tensor, feedback: str, reading: str, z_ref: float, advantage: float) -> GroupBatch:
    """The group batch an objective with this feedback sees at logits z: (N,) -> B = N contexts."""
    scores, ref = candidate_scores(z, z_ref, reading)
    rewards = torch.zeros_like(scores)
    rewards[:, 0] = advantage
    if feedback == "sampled":  # only the sample y, with its advantage given as is
        a = rewards[:, :1]
        one = GroupBatch.from_sequences(scores[:, :1], a, old_logp=ref[:, :1], ref_logp=ref[:, :1])
        return dataclasses.replace(one, advantages=a)
    return GroupBatch.from_sequences(scores, rewards, old_logp=ref, ref_logp=ref)


def saturation_curve(config: ToyConfig, objective: str, reading: str) -> pd.DataFrame:
    """|dL/dz| and dL/dz over the p grid for one objective and reading, as tidy rows (N per metric)."""
    entry = get_objective(objective)
    loss_fn = entry.bind(**dict(config.hparams.get(objective, {})))
    p = torch.linspace(config.p_min, config.p_max, config.grid_points, dtype=torch.float64)
    z = torch.logit(p).requires_grad_(True)
    loss, _ = loss_fn(toy_batch(z, entry.feedback, reading, config.z_ref, config.advantage))
    # Every objective averages its loss over the N independent contexts with equal weight,
    # so N * dL/dz_i is the derivative of context i's own loss.
    (grad,) = torch.autograd.grad(loss, z)
    grad = grad * config.grid_points
    values = {"grad_abs": grad.abs(), "grad": grad}
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "variant": objective,
                    "coordinates": reading,
                    "p": p.numpy(),
                    "z": z.detach().numpy(),
                    "seed": config.seed,
                    "step": 0,
                    "metric": metric,
                    "value": values[metric].numpy(),
                }
            )
            for metric in METRICS
        ],
        ignore_index=True,
    )


def run(
    config: ToyConfig,
    out: Path | str,
    *,
    profile: str = "custom",
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
    rerun: bool = False,
) -> Path:
    """Compute every (objective, reading) curve, resuming finished ones (all of them under
    ``rerun``); returns the CSV path.

    ``executor`` is taken so that every experiment's ``run`` has one signature, and ignored: a
    cell is one autograd pass over the grid, milliseconds, less than a worker takes to start.
    """
    run_dir = RunDir(out, EXPERIMENT, config, inputs=cell_inputs, rerun=rerun)
    cells = [(o, r) for r in config.readings for o in config.objectives]
    with progress_bar(show_progress) as bar:
        task = bar.add_task("toy saturation", total=len(cells))
        for objective, reading in cells:
            key = {"variant": objective, "coordinates": reading}
            if not run_dir.done(key):
                run_dir.write_cell(key, saturation_curve(config, objective, reading))
            bar.advance(task)
    return run_dir.finish("saturation", profile)


def cell_inputs(key: Mapping[str, Any]) -> dict[str, str]:
    """What a cell's rows depend on besides the config (:mod:`geobench.identity`): its objective's code
    and the metrics it writes."""
    return {**objective_inputs([get_objective(key["variant"])]), **package_inputs(), "toy metrics": ",".join(METRICS)}


def run_inputs(config: ToyConfig) -> dict[str, str]:
    """The union of every cell's inputs, as ``run.json`` records it."""
    return {k: v for o in config.objectives for k, v in cell_inputs({"variant": o}).items()}
