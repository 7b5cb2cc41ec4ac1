"""tau over training for ADPO and OPO: the figure and the range sentence, from a hand-made metrics.csv."""

import numpy as np
import pandas as pd
import pytest

from geobench.report.llm_tau import tau_figure, tau_ranges, tau_sentence


def tau_frame() -> pd.DataFrame:
    rows = []
    for seed in range(2):
        for step in range(1, 6):
            rows += [
                {"variant": "adpo", "seed": seed, "step": step, "metric": "tau", "value": 0.8 - 0.1 * step * seed},
                {"variant": "opo", "seed": seed, "step": step, "metric": "tau", "value": 1.5},
                {"variant": "grpo", "seed": seed, "step": step, "metric": "reward_mean", "value": 0.5},
            ]
    return pd.DataFrame(rows)


CONFIG = {"tau_min": 0.1, "tau_max": 0.8, "opo_tau_min": 0.2, "opo_tau_max": 1.5, "adaptive_tau": True}


def test_tau_range_and_sentence_come_from_the_csv():
    ranges = tau_ranges(tau_frame(), CONFIG).set_index("variant")
    assert ranges.loc["adpo", ["low", "high"]].tolist() == pytest.approx([0.3, 0.8])
    assert ranges.loc["adpo", "share"] == pytest.approx(0.5 / 0.7) and ranges.loc["opo", "share"] == 0.0
    assert tau_sentence(tau_frame(), CONFIG) == (
        "Over 2 seeds x 5 steps (min-max over both): ADPO's tau stayed in [0.300, 0.800], 71% of its rule's range "
        "[0.1, 0.8]; OPO's tau stayed in [1.500, 1.500], 0% of its rule's range [0.2, 1.5]."
    )
    assert tau_sentence(tau_frame().query("metric != 'tau'"), CONFIG).startswith("No algorithm of this run logs")


def test_tau_figure_draws_each_seed_the_mean_and_the_rules_range():
    fig = tau_figure(tau_frame(), CONFIG, "tau")
    adpo, opo = fig.axes
    assert adpo.get_title() == "ADPO" and opo.get_title() == "OPO"
    lines = adpo.get_lines()
    assert len(lines) == 2 + 1 + 2  # two seeds, their mean, the range's two bounds
    np.testing.assert_allclose(lines[2].get_ydata(), [0.75, 0.7, 0.65, 0.6, 0.55])  # the seed mean
    assert [line.get_ydata()[0] for line in lines[3:]] == [0.1, 0.8]
