"""Seed-level statistics for reports: bootstrap confidence intervals and the verdict rule.

Two arms are *paired* when seed k of one shares its randomness with seed k of the other (the LLM
runs: every algorithm's seed k sees the same prompts); a paired bootstrap resamples seed indices
jointly (:func:`paired_diff_ci`, :func:`paired_ratio_ci`), so the seed-to-seed variation both arms
share cancels. The unpaired ones resample each arm on its own, for arms that share nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NOT_TESTABLE = "not testable"  # the run cannot test the claim (too short, too few seeds, updates that coincide)
VERDICTS = ("reproduced", "not reproduced", "inconclusive", NOT_TESTABLE)


def last_logged(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The rows at the last logged ``step`` of every group of ``keys`` (a run's final values)."""
    return frame[frame["step"] == frame.groupby(keys)["step"].transform("max")]


def bootstrap_mean_ci(
    values: np.ndarray, level: float = 0.95, n_boot: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap CI of the mean over seeds: (mean, low, high)."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return float(values[0]), float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, values.size), replace=True).mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(values.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def ci_text(values: np.ndarray, fmt: str = "{:.3f}") -> str:
    """'mean [low, high]' over the finite seed values (bootstrap 95% CI); '-' when there are none."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return "-"
    mean, low, high = bootstrap_mean_ci(values)
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


def _bootstrap_two_arms(
    treated, baseline, statistic, level: float, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """statistic(mean_treated, mean_baseline) with a percentile CI, seeds resampled per arm."""
    treated, baseline = np.asarray(treated, dtype=float), np.asarray(baseline, dtype=float)
    rng = np.random.default_rng(seed)
    t = rng.choice(treated, size=(n_boot, treated.size), replace=True).mean(axis=1)
    b = rng.choice(baseline, size=(n_boot, baseline.size), replace=True).mean(axis=1)
    boot = statistic(t, b)
    tail = (1 - level) / 2 * 100
    point = float(statistic(treated.mean(), baseline.mean()))
    return point, float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))


def bootstrap_ratio_ci(
    treated: np.ndarray, baseline: np.ndarray, level: float = 0.95, n_boot: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """Relative difference mean(treated) / mean(baseline) - 1 with a bootstrap CI."""
    return _bootstrap_two_arms(treated, baseline, lambda t, b: t / b - 1, level, n_boot, seed)


def bootstrap_diff_ci(
    treated: np.ndarray, baseline: np.ndarray, level: float = 0.95, n_boot: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(treated) - mean(baseline) with a bootstrap CI."""
    return _bootstrap_two_arms(treated, baseline, lambda t, b: t - b, level, n_boot, seed)


def _paired(treated, baseline, statistic, level: float, n_boot: int, seed: int) -> tuple[float, float, float]:
    """statistic(mean_treated, mean_baseline) with a percentile CI, the same seed indices drawn for both arms.

    ``treated[k]`` and ``baseline[k]`` are seed k of each arm, shape (n,) each.
    """
    treated, baseline = np.asarray(treated, dtype=float), np.asarray(baseline, dtype=float)
    if treated.shape != baseline.shape or treated.ndim != 1:
        raise ValueError(
            f"paired samples need one value per seed in each arm, got {treated.shape} and {baseline.shape}"
        )
    index = np.random.default_rng(seed).integers(0, treated.size, size=(n_boot, treated.size))  # (n_boot, n)
    boot = statistic(treated[index].mean(axis=1), baseline[index].mean(axis=1))
    tail = (1 - level) / 2 * 100
    point = float(statistic(treated.mean(), baseline.mean()))
    return point, float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))


def paired_diff_ci(
    treated: np.ndarray, baseline: np.ndarray, level: float = 0.95, n_boot: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(treated) - mean(baseline) with a paired bootstrap CI (seed k of one arm with seed k of the other)."""
    return _paired(treated, baseline, lambda t, b: t - b, level, n_boot, seed)


def paired_ratio_ci(
    treated: np.ndarray, baseline: np.ndarray, level: float = 0.95, n_boot: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(treated) / mean(baseline) - 1 with a paired bootstrap CI."""
    return _paired(treated, baseline, lambda t, b: t / b - 1, level, n_boot, seed)


def sign_verdict(low: float, high: float, claimed_sign: int) -> str:
    """The rule for a directional claim: the CI on the claimed side of 0 reproduces it,
    on the other side refutes it, and a CI that straddles 0 is inconclusive."""
    if claimed_sign * low > 0 and claimed_sign * high > 0:
        return "reproduced"
    if claimed_sign * low < 0 and claimed_sign * high < 0:
        return "not reproduced"
    return "inconclusive"
