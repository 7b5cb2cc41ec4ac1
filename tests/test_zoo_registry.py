"""The zoo's registry contract: every objective of issue 22 is registered, a pure scalar loss whose padding
gets no gradient, and its new hyperparameters are range-checked in one line."""

import pytest
import torch

from geobench.errors import ConfigError
from geobench.objectives import REGISTRY, make_objective
from tests.conftest import random_batch

ZOO = sorted(
    name
    for name, entry in REGISTRY.items()
    if entry.fn.__module__.startswith("geobench.objectives.zoo") or name in {"bnpo", "luspo"}
)


def test_the_zoo_is_registered():
    assert len(ZOO) == 34 and {"dr-grpo", "cispo-trl", "cispo-verl", "kimi-kl", "ipo", "simpo"} <= set(ZOO)
    assert {"aspo", "bapo", "tis", "icepop"} <= set(ZOO)


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_objective_is_a_pure_scalar_loss_with_detached_metrics(name):
    batch = random_batch(b=2, g=3, t=4, seed=11)
    loss, metrics = make_objective(name)(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, batch.logp)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert grad[batch.mask == 0].abs().sum() == 0
    assert all(not v.requires_grad and v.dim() == 0 for v in metrics.values())
    assert make_objective(name)(batch)[0].item() == loss.item()


@pytest.mark.parametrize(
    "name, hparams, message",
    [
        ("robust", {"flip_rate": 0.5}, r"flip_rate must be in \[0, 0.5\)"),
        ("exo-pair", {"exo_epsilon": 0.0}, r"exo_epsilon must be in \(0, 0.5\)"),
        ("cispo-trl", {"weight_cap": 0.0}, r"weight_cap must be in \(0, inf\)"),
        ("dr-grpo", {"horizon": 0}, r"horizon must be in \[1, inf\)"),
        ("gmpo", {"clip_low": -0.1}, r"clip_low must be in \[0, 1\)"),
        ("clip-cov", {"clip_cov_ratio": 0.0}, r"clip_cov_ratio must be in \(0, 1\]"),
        ("aspo", {"dual_clip": 1.0}, r"dual_clip must be in \(1, inf\)"),
        ("bapo", {"rho_target": 0.0}, r"rho_target must be in \(0, 1\]"),
        ("bapo", {"ratio_high_max": 0.9}, r"ratio_high_max must be in \[1, inf\)"),
        ("tis", {"is_cap": 0.5}, r"is_cap must be in \[1, inf\)"),
        ("icepop", {"icepop_low": 1.5}, r"icepop_low must be in \(0, 1\]"),
    ],
)
def test_zoo_hyperparameters_are_range_checked_in_one_line(name, hparams, message):
    with pytest.raises(ConfigError, match=message) as err:
        make_objective(name, **hparams)
    assert "\n" not in str(err.value)
