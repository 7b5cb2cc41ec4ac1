"""Bandits: noise statistics, WinMass, learning on clean data, determinism, seed independence, resume."""

import dataclasses
import math

import pandas as pd
import pytest
import torch

from geobench.bandits import BanditConfig, BanditEnv, NoiseLevel, sweep
from geobench.bandits.env import Draws, corrupt, top_items, winmass
from geobench.config import experiment_file, load_config
from geobench.errors import ConfigError
from geobench.nn import generator
from tests.conftest import cli_error

N = 200_000


def noise_of(level: NoiseLevel, clean=None, top=None, center=None, event_shape=None):
    clean = torch.zeros(N, 1) if clean is None else clean
    gen = generator("test-noise")
    draws = Draws.sample(tuple(clean.shape), event_shape or tuple(clean.shape), gen)
    top = torch.zeros_like(clean, dtype=torch.bool) if top is None else top
    center = torch.zeros(clean.shape[0], 1) if center is None else center
    return corrupt(clean, top, center, draws, level) - clean


def test_gaussian_noise_and_outliers_have_their_stated_moments():
    plain = noise_of(NoiseLevel(sigma=0.5))
    assert plain.mean().item() == pytest.approx(0.0, abs=0.01)
    assert plain.std().item() == pytest.approx(0.5, rel=0.01)
    mixed = noise_of(NoiseLevel(sigma=0.5, outlier_frac=0.1, outlier_scale=5.0))
    assert mixed.var().item() == pytest.approx(0.25 + 0.1 * 25.0, rel=0.03)  # sigma^2 + frac * scale^2


def test_cauchy_noise_has_median_absolute_value_equal_to_its_scale():
    noise = noise_of(NoiseLevel(cauchy_scale=0.7))
    assert noise.abs().median().item() == pytest.approx(0.7, rel=0.02)
    assert noise.abs().max().item() > 100  # heavy tails


def test_adversarial_flips_only_top_items_at_the_stated_rate():
    clean = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(N // 4, 4)
    top = top_items(clean, 2)
    center = clean.median(-1, keepdim=True).values
    level = NoiseLevel(flip_frac=0.3, flip_top=2)
    noisy = clean + noise_of(level, clean, top, center, event_shape=(N // 4, 1))
    flipped = noisy[:, 0] < center[:, 0]
    assert flipped.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(flipped, noisy[:, 1] < center[:, 0])  # one event corrupts the whole context
    assert torch.equal(noisy[:, 2:], clean[:, 2:])  # items outside the top are never touched


def test_shifted_contexts_have_the_stated_mean():
    env = BanditEnv()
    x = env.contexts((N // 10,), generator("shift"), shift=2.0)
    assert torch.allclose(x.mean(0), 2.0 * env.shift_direction, atol=0.02)


def test_winmass_of_a_one_hot_policy_on_the_best_item_is_one():
    env = BanditEnv()
    x = env.eval_contexts(500)
    best = env.clean_rewards(x).argmax(-1)
    logits = torch.nn.functional.one_hot(best, env.items).float() * 1e4
    assert winmass(logits, best).item() == pytest.approx(1.0)
    assert winmass(torch.zeros(500, env.items), best).item() == pytest.approx(1 / env.items)


@pytest.fixture
def small(tmp_path):
    config = load_config(BanditConfig, experiment_file("adpo_fig2"), "quick")
    return dataclasses.replace(
        config,
        noises=("shift",),
        levels=("light",),
        methods=("adpo-listwise-raw", "grpo", "trpo"),
        hidden=(32,),
        seeds=2,
        steps=8,
        eval_every=4,
        eval_contexts=256,
    )


def test_trained_policies_beat_the_reference_on_clean_feedback(small, tmp_path):
    clean = {**{k: dict(v) for k, v in small.noise.items()}, "cauchy": {"light": {"cauchy_scale": 0.0}}}
    config = dataclasses.replace(small, noises=("cauchy",), noise=clean, steps=60, eval_every=60, seeds=3)
    frame = pd.read_csv(sweep.run(config, tmp_path, show_progress=False))
    frame = frame[frame["metric"] == "winmass"]
    reference = frame[frame["variant"] == "reference"]["value"].mean()
    final = frame[(frame["step"] == 60)].groupby("variant")["value"].mean()
    assert set(final.index) == {"adpo-listwise-raw", "grpo", "trpo"}
    assert (final > reference + 0.05).all(), (reference, final.to_dict())


def test_same_seed_same_csv_and_schema(small, tmp_path):
    first = sweep.run(small, tmp_path / "a", show_progress=False)
    second = sweep.run(small, tmp_path / "b", show_progress=False)
    assert first.read_bytes() == second.read_bytes()
    frame = pd.read_csv(first)
    assert list(frame.columns) == [
        "experiment",
        "variant",
        "scenario",
        "level",
        "hidden",
        "seed",
        "step",
        "metric",
        "value",
    ]
    assert set(frame["metric"]) == {"winmass", "top_prob"} and frame["value"].between(0, 1).all()
    assert set(frame["step"]) == {0, 4, 8}


def test_a_seed_trains_the_same_alone_or_batched_with_others(small, tmp_path):
    """Batching seeds must not couple them: seed 1 of a (0, 1) batch equals seed 1 alone."""
    together = pd.read_csv(sweep.run(small, tmp_path / "two", show_progress=False))
    alone = pd.read_csv(sweep.run(dataclasses.replace(small, seed=1, seeds=1), tmp_path / "one", show_progress=False))
    key = ["variant", "step", "metric"]
    a = together[together["seed"] == 1].sort_values(key)["value"].to_numpy()
    b = alone.sort_values(key)["value"].to_numpy()
    assert a == pytest.approx(b, abs=1e-5)


def test_a_killed_sweep_resumes_without_redoing_finished_cells(small, tmp_path, monkeypatch):
    calls = []
    real = sweep.train_cell

    def counting(*args, **kwargs):
        if len(calls) == 2 and not counting.resumed:
            raise KeyboardInterrupt
        calls.append(args[3])
        return real(*args, **kwargs)

    counting.resumed = False
    monkeypatch.setattr(sweep, "train_cell", counting)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(small, tmp_path / "r", show_progress=False)
    counting.resumed = True
    sweep.run(small, tmp_path / "r", show_progress=False)
    assert calls == ["adpo-listwise-raw", "grpo", "trpo"]  # the third cell alone ran on resume


@pytest.mark.parametrize(
    "args, message",
    [
        (["--noise", "laplace"], "unknown noise 'laplace'; valid: gaussian-outliers, shift, adversarial, cauchy, all"),
        (["--level", "extreme"], "unknown level 'extreme'; valid: light, medium, heavy, all"),
        (["--methods", "nosuch"], "unknown bandit method 'nosuch'; valid: adpo-listwise-raw"),
        (["--hidden", "64,big"], "--hidden expects comma-separated integers; got '64,big'"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    assert message in cli_error("bandits", *args, "--out", str(tmp_path))


def test_config_rejects_noise_without_parameters(small):
    with pytest.raises(ConfigError, match="no parameters for noise 'cauchy' at level 'light'"):
        dataclasses.replace(small, noise={"shift": small.noise["shift"]}, noises=("cauchy",))
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\]"):
        dataclasses.replace(small, methods=("opo",), hparams={"opo": {"alpha": 3.0}})
    assert math.isclose(small.lr, 5e-4)
