"""The Fig. 2 report on fixture CSVs: verdicts follow the numbers, and flip when they flip."""

import numpy as np
import pandas as pd
import pytest

from geobench.config import EXPERIMENTS_DIR
from geobench.report import bandits_report as br

PAPER = pd.read_csv(EXPERIMENTS_DIR / "paper" / "adpo_fig2_claims.csv")
SCALING = ("cauchy", "medium", (64, 128, 256))


def fixture(good: bool) -> pd.DataFrame:
    """Final WinMass rows where every claim of ADPO Sec. 6.1 holds (good) or fails (not good)."""
    rng = np.random.default_rng(0)
    rows = []

    def add(scenario, level, hidden, variant, mean):
        for seed in range(5):
            rows.append(
                dict(
                    experiment="bandits",
                    variant=variant,
                    scenario=scenario,
                    level=level,
                    hidden=hidden,
                    seed=seed,
                    step=100,
                    metric="winmass",
                    value=mean + rng.normal(0, 0.005),
                )
            )

    sign = 1 if good else -1
    for noise in br.NOISE_ORDER:
        for level in br.LEVEL_ORDER:
            for variant in br.PAPER_METHODS:
                mean = 0.5
                if variant == "trpo":
                    mean += 0.2 * sign
                if variant == "adpo-listwise-raw" and noise in ("shift", "adversarial"):
                    mean += 0.1 * sign
                if variant == "ppo" and noise == "shift":
                    mean -= 0.1 * sign
                add(noise, level, 128, variant, mean)
    for hidden, trend in ((64, -1), (256, 1)):  # hidden 128 is the sweep's cauchy/medium cell
        for variant in br.PAPER_METHODS:
            change = {"adpo-listwise-raw": 0.1, "ppo": -0.1}.get(variant, 0.0)
            add("cauchy", "medium", hidden, variant, 0.5 + change * trend * sign)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("good", [True, False])
def test_verdicts_follow_the_fixture(good):
    final = br.final_values(fixture(good))
    table = br.claims(final, br.summary(final), PAPER, 128, SCALING)
    assert len(table) == len(PAPER)
    expected = "reproduced" if good else "not reproduced"
    assert (table["verdict"] == expected).all(), table[["claim", "ours", "verdict"]].to_string()


def test_scenario_table_marks_the_winner():
    final = br.final_values(fixture(True))
    text = br.scenario_table(br.summary(final), 128)
    assert text.count("| trpo |\n") == 12 and "**0.7" in text


def test_missing_scaling_study_is_inconclusive_not_a_crash():
    frame = fixture(True)
    frame = frame[frame["hidden"] == 128]
    final = br.final_values(frame)
    table = br.claims(final, br.summary(final), PAPER, 128, SCALING).set_index("claim")
    assert table.loc["ADPO Listwise improves from hidden 64 to 256", "verdict"] == "inconclusive"
