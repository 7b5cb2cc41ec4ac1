"""OPO Fig. 3 toy: autograd through the library against closed-form derivatives; the run contract."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from geobench import toy
from geobench.config import experiment_file, load_config
from geobench.errors import ConfigError

COLUMNS = ["experiment", "variant", "coordinates", "p", "z", "seed", "step", "metric", "value"]


@pytest.fixture(scope="module")
def config():
    return load_config(toy.ToyConfig, experiment_file("opo_fig3"), "quick", {"grid_points": 401})


def closed_form(variant, reading, p):
    """|dL/dz| derived by hand for A = +1, z_ref = 0, beta = 1, mu = 1 (see the toy docstring)."""
    z = np.log(p / (1 - p))
    ratio = np.exp(z) if reading == "anchored-logit" else 2 * p  # pi/pi_ref of the sample
    dratio = ratio if reading == "anchored-logit" else ratio * (1 - p)  # d ratio / dz
    if variant in ("sft", "dpo"):
        return 1 - p
    if variant in ("grpo", "gspo", "dapo"):
        high = 1.28 if variant == "dapo" else 1.2
        return np.where(ratio <= high, dratio, 0.0)
    if variant == "opo":
        if reading == "anchored-logit":
            return np.abs(z - 1)
        return np.abs((np.log(2 * p) - 1) * (1 - p))
    raise KeyError(variant)


@pytest.mark.parametrize("reading", toy.READINGS)
@pytest.mark.parametrize("variant", ["sft", "dpo", "grpo", "dapo", "gspo", "opo"])
def test_autograd_curves_match_closed_forms(config, variant, reading):
    curve = _metric(toy.saturation_curve(config, variant, reading), "grad_abs")
    expected = closed_form(variant, reading, curve["p"].to_numpy())
    # Away from the clip boundary itself, where the grid point may fall on either side.
    boundary = np.isclose(expected, 0) != np.isclose(curve["value"], 0)
    assert boundary.sum() <= 1
    np.testing.assert_allclose(curve["value"][~boundary], expected[~boundary], rtol=1e-9, atol=1e-12)


def _metric(curve: pd.DataFrame, metric: str) -> pd.DataFrame:
    return curve[curve["metric"] == metric].reset_index(drop=True)


@pytest.mark.parametrize("variant", ["sft", "dpo", "grpo", "opo"])
def test_the_signed_gradient_raises_the_preferred_outcome_and_opos_turns_at_its_target(config, variant):
    """dL/dz < 0 wherever it is not 0 for the objectives without a finite optimum; OPO's quadratic
    (Eq. 7) has its optimum at Delta = A / mu = 1 (anchored logit): dL/dz = mu z - A changes sign there.
    grad_abs is |grad| row for row."""
    curve = toy.saturation_curve(config, variant, "anchored-logit")
    grad, size = _metric(curve, "grad"), _metric(curve, "grad_abs")
    np.testing.assert_array_equal(size["value"], grad["value"].abs())
    if variant == "opo":
        np.testing.assert_allclose(grad["value"], grad["z"] - 1, rtol=1e-9, atol=1e-12)
    else:
        assert (grad["value"] <= 0).all() and (grad["value"] < 0).any()


def test_the_papers_claim_holds_only_in_the_anchored_logit_reading(config):
    """OPO's gradient grows without bound as p -> 1 under Delta = z, and vanishes under exact Delta."""
    anchored = _metric(toy.saturation_curve(config, "opo", "anchored-logit"), "grad_abs")
    exact = _metric(toy.saturation_curve(config, "opo", "exact"), "grad_abs")
    assert anchored["value"].iloc[-1] > 5 and anchored["value"].is_monotonic_increasing is False
    assert exact["value"].iloc[-1] < 1e-3
    grpo = _metric(toy.saturation_curve(config, "grpo", "anchored-logit"), "grad_abs")
    assert (grpo["value"][grpo["p"] > 0.6] == 0).all()  # the hard cliff, exactly zero


def test_run_writes_schema_and_metadata_and_is_deterministic(config, tmp_path):
    first = toy.run(config, tmp_path / "a", profile="quick", show_progress=False)
    second = toy.run(config, tmp_path / "b", profile="quick", show_progress=False)
    assert first.read_bytes() == second.read_bytes()
    frame = pd.read_csv(first)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 401 * 6 * 2 * 2 and set(frame["metric"]) == {"grad_abs", "grad"}
    meta = (tmp_path / "a" / "run.json").read_text()
    for key in ('"git_commit"', '"command"', '"packages"', '"wall_time_s"', '"config"', '"torch"'):
        assert key in meta


def test_interrupted_run_resumes_without_redoing_finished_cells(config, tmp_path, monkeypatch):
    fresh = toy.run(config, tmp_path / "fresh", profile="quick", show_progress=False)
    calls = []
    real = toy.saturation_curve

    def flaky(cfg, objective, reading):
        if len(calls) == 5:
            raise KeyboardInterrupt  # killed after five cells
        calls.append((objective, reading))
        return real(cfg, objective, reading)

    monkeypatch.setattr(toy, "saturation_curve", flaky)
    with pytest.raises(KeyboardInterrupt):
        toy.run(config, tmp_path / "resumed", profile="quick", show_progress=False)
    assert not (tmp_path / "resumed" / "saturation.csv").exists()
    done_before = list(calls)
    monkeypatch.setattr(toy, "saturation_curve", lambda *a: (calls.append(a[1:]), real(*a))[1])
    resumed = toy.run(config, tmp_path / "resumed", profile="quick", show_progress=False)
    assert len(calls) - len(done_before) == 12 - 5  # only the unfinished cells ran
    assert resumed.read_bytes() == fresh.read_bytes()


def test_changed_config_does_not_reuse_old_cells(config, tmp_path):
    toy.run(config, tmp_path, profile="quick", show_progress=False)
    finer = dataclasses.replace(config, grid_points=501)
    frame = pd.read_csv(toy.run(finer, tmp_path, profile="quick", show_progress=False))
    assert frame["p"].nunique() == 501


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"objectives": ("opo", "nope")}, "unknown algorithm 'nope'"),
        ({"readings": ("log",)}, "unknown coordinates reading 'log'"),
        ({"p_min": 0.0}, "need 0 < p_min < p_max < 1"),
        ({"hparams": {"opo": {"alpha": 2.0}}}, r"alpha must be in \[0, 1\]"),
    ],
)
def test_bad_config_values_are_config_errors(config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(config, **overrides)


def test_unknown_setting_in_toml_is_reported(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[quick]\ngrid_pionts = 10\n")
    with pytest.raises(ConfigError, match="unknown setting 'grid_pionts'"):
        load_config(toy.ToyConfig, bad, "quick")
    with pytest.raises(ConfigError, match=r"has no \[paper\] profile"):
        load_config(toy.ToyConfig, bad, "paper")
