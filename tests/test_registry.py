"""The registry: names, metadata, validation errors, and the pure-function contract."""

import pytest
import torch

from geobench.errors import ConfigError
from geobench.objectives import REGISTRY, GroupBatch, get_objective, make_objective
from tests.conftest import random_batch

EXPECTED = {"sft", "kd", "dpo", "dpo-soft", "ppo", "grpo", "dapo", "gspo", "trpo", "opo", "adpo", "adpo-pairwise"}


def test_every_issue_objective_is_registered_with_geometry_and_docs():
    assert EXPECTED <= set(REGISTRY)
    for name, entry in REGISTRY.items():
        geo = entry.geometry
        assert all([geo.sampling, geo.optimization, geo.coordinates, geo.target]), name
        assert entry.paper and entry.feedback in {"sampled", "pairwise", "listwise"}
        assert "Shapes" in entry.fn.__doc__, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_objectives_are_pure_scalar_losses_with_detached_metrics(name):
    batch = random_batch(b=2, g=3, t=4, seed=11)
    loss, metrics = make_objective(name)(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, batch.logp)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert grad[batch.mask == 0].abs().sum() == 0  # padding never receives gradient
    assert all(not v.requires_grad and v.dim() == 0 for v in metrics.values())
    again, _ = make_objective(name)(batch)
    assert again.item() == loss.item()


@pytest.mark.parametrize(
    "name, hparams, message",
    [
        ("opo", {"alpha": 1.5}, r"alpha must be in \[0, 1\]; got 1.5"),
        ("opo", {"alpha": -0.1}, r"alpha must be in \[0, 1\]"),
        ("opo", {"mu": 0.0}, r"mu must be in \(0, inf\)"),
        ("adpo", {"tau": -1.0}, r"tau must be in \(0, inf\)"),
        ("adpo", {"tau": torch.tensor([0.5, 0.0])}, r"tau must be in \(0, inf\)"),
        ("grpo", {"clip_low": -0.1}, r"clip_low must be in \[0, 1\)"),
        ("dapo", {"clip_high": -0.2}, r"clip_high must be in \[0, inf\)"),
        ("grpo", {"agg": "mean"}, r"agg must be one of token-mean"),
        ("adpo", {"target": "listnet"}, r"target must be one of softmax, plackett-luce, top1"),
        ("opo", {"beta": 0.1}, r"unknown hyperparameter 'beta'; valid: advantage, alpha"),
    ],
)
def test_bad_hyperparameters_raise_one_line_errors(name, hparams, message):
    with pytest.raises(ConfigError, match=message) as err:
        make_objective(name, **hparams)
    assert "\n" not in str(err.value)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(
        ConfigError, match="unknown algorithm 'ppo2'; valid: adpo, adpo-listwise-rank, adpo-listwise-raw, adpo-pairwise"
    ):
        get_objective("ppo2")


def test_variants_share_a_function_but_not_defaults():
    assert REGISTRY["grpo"].fn is REGISTRY["dapo"].fn is REGISTRY["ppo"].fn
    assert REGISTRY["grpo"].defaults["clip_high"] == 0.2
    assert REGISTRY["dapo"].defaults["clip_high"] == 0.28
    assert REGISTRY["ppo"].defaults["advantage"] == "mean"


def test_batch_shape_errors_are_config_errors():
    with pytest.raises(ConfigError, match=r"mask has shape \(2, 3\), expected \(2, 3, 4\)"):
        GroupBatch(logp=torch.zeros(2, 3, 4), mask=torch.ones(2, 3), rewards=torch.zeros(2, 3))


# The names the experiments' CSVs and legends use for a form of another objective.
VARIANTS = {
    "adpo-listwise-raw": ("adpo", {"target": "softmax", "advantage": "zscore"}),
    "adpo-listwise-rank": ("adpo", {"target": "plackett-luce", "advantage": "none"}),
    "adpo-self-anchor": ("adpo", {"target": "softmax", "advantage": "none"}),
    "adpo-self-anchor-ema": ("adpo", {"target": "softmax", "advantage": "none"}),
    "dpo-hard": ("dpo", {"label_smoothing": 0.0}),
    "opo-escort-no-ref": ("opo", {"escort_ref": False}),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_variant_is_its_base_with_fixed_hyperparameters_whatever_the_config_says(name):
    base, fixed = VARIANTS[name]
    entry = REGISTRY[name]
    assert (entry.base, entry.fixed, entry.fn, entry.feedback) == (
        base,
        fixed,
        REGISTRY[base].fn,
        REGISTRY[base].feedback,
    )
    batch = random_batch(b=2, g=3, t=4, seed=5)
    settable = {"tau": 0.7} if base == "adpo" else {"mu": 2.0} if base == "opo" else {"beta": 0.5}
    mine, _ = make_objective(name, **settable)(batch)
    theirs, _ = make_objective(base, **settable, **fixed)(batch)
    assert mine.item() == theirs.item()
    again, _ = make_objective(name, **settable, **fixed)(batch)  # a config may restate a fixed value
    assert again.item() == mine.item()


def test_a_variants_fixed_hyperparameter_cannot_be_changed():
    with pytest.raises(
        ConfigError, match=r"adpo-listwise-raw: target is fixed at 'softmax' \(adpo-listwise-raw is adpo"
    ):
        make_objective("adpo-listwise-raw", target="plackett-luce")


def test_the_bandits_listwise_forms_differ_without_hyperparameter_tables():
    """A custom config without the TOML's tables used to run raw and rank both as Plackett-Luce."""
    batch = random_batch(b=2, g=4, t=1, seed=2)
    raw, _ = make_objective("adpo-listwise-raw")(batch)
    rank, _ = make_objective("adpo-listwise-rank")(batch)
    assert raw.item() != rank.item()
    assert rank.item() == make_objective("adpo", advantage="none")(batch)[0].item()
