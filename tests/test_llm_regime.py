"""The run-level regime check (the fallback for runs without a per-pair check): a run whose objectives
provably coincide is reported as such, not as evidence."""

import numpy as np
import pandas as pd
import pytest

from geobench.report.claims import read_claims
from geobench.report.llm_regime import pairwise_table, regime, regime_table
from geobench.report.llm_report import LLMRun, claims

ALGOS = ("grpo", "gspo", "dapo", "opo", "adpo")
PAPER = read_claims("llm_claims").set_index("claim", drop=False)


def synthetic_run(on_policy: float, clip: float, length_std: float, opo_gain: float = 0.0, seeds: int = 5):
    """metrics.csv rows of 5 algorithms x seeds x 30 steps with the given regime."""
    rng = np.random.default_rng(0)
    rows = []
    for algo in ALGOS:
        for seed in range(seeds):
            for step in range(1, 31):
                reward = 0.4 + 0.01 * step + (opo_gain if algo == "opo" else 0.0) + 0.01 * rng.standard_normal()
                values = {
                    "reward_mean": reward,
                    "grad_norm": 1.0 + 0.05 * rng.standard_normal(),
                    "entropy": 0.5,
                    "completion_length": 20.0,
                    "completion_length_std": length_std,
                    "ratio_one_frac": on_policy,
                    "reward_levels": 2.0,
                    "truncated_frac": 0.0,
                    "response_efficiency": 1.0,
                }
                if algo in ("grpo", "gspo", "dapo"):
                    values["clip_frac"] = clip
                rows += [
                    {"variant": algo, "seed": seed, "step": step, "metric": k, "value": v} for k, v in values.items()
                ]
            rows.append({"variant": algo, "seed": seed, "step": 30, "metric": "heldout_accuracy", "value": reward})
    return pd.DataFrame(rows)


def test_an_on_policy_fixed_length_run_cannot_discriminate_and_its_verdicts_say_so():
    frame = synthetic_run(on_policy=1.0, clip=0.0, length_std=0.3, opo_gain=0.3)
    found = regime(frame)
    assert not found.discriminates and "cannot tell the objectives apart" in found.sentence()
    table = claims(LLMRun(frame, "arithmetic"), PAPER.loc[["opo_best_reward"]])
    best = table[table["claim"] == "OPO reaches the highest final reward"].iloc[0]
    assert best["verdict"] == "not testable" and "no per-pair check in this run" in best["rule"]
    assert "coarser run-level check" in best["rule"]
    told = [line for line in pairwise_table(frame).splitlines() if line.startswith("| GRPO - OPO")]
    assert told[0].endswith("coarser run-level check: objectives coincide) |")  # OPO is 0.3 higher, yet untestable


def test_an_off_policy_run_with_varied_lengths_discriminates_and_keeps_its_verdicts():
    frame = synthetic_run(on_policy=0.5, clip=0.05, length_std=8.0, opo_gain=0.3)
    found = regime(frame)
    assert found.ratios_leave_one and found.clip_acts and found.lengths_vary and found.discriminates
    assert found.sentence().startswith("Run-level check: the mechanisms that can separate the objectives act")
    assert "does not show that any given pair makes different updates" in found.sentence()
    best = claims(LLMRun(frame, "column-addition"), PAPER.loc[["opo_best_reward"]])
    assert best.loc[best["claim"] == "OPO reaches the highest final reward", "verdict"].iloc[0] == "reproduced"


@pytest.mark.parametrize("length_std, discriminates", [(0.5, False), (1.5, True)])
def test_length_spread_alone_is_enough_to_discriminate(length_std, discriminates):
    assert regime(synthetic_run(on_policy=1.0, clip=0.0, length_std=length_std)).discriminates is discriminates


def test_regime_and_pairwise_tables_name_what_the_run_resolves():
    frame = synthetic_run(on_policy=0.5, clip=0.05, length_std=8.0, opo_gain=0.3)
    assert "| GRPO | 50% | 0.0500 | - | 20.0 | 8.0 | 0.0% | 2 |" in regime_table(frame)  # clip_mass not logged
    pairs = pairwise_table(frame)
    opo_row = next(line for line in pairs.splitlines() if line.startswith("| GRPO - OPO"))
    assert "reward, held-out accuracy" in opo_row  # OPO is 0.3 higher on every seed
    grpo_gspo = next(line for line in pairs.splitlines() if line.startswith("| GRPO - GSPO"))
    assert grpo_gspo.endswith("| nothing |")


def test_claims_about_a_collapsed_algorithms_gradients_do_not_count():
    frame = synthetic_run(on_policy=0.5, clip=0.05, length_std=8.0)
    opo = (frame["variant"] == "opo") & (frame["metric"] == "reward_mean") & (frame["step"] > 10)
    frame.loc[opo, "value"] = 0.01  # OPO collapses after step 10
    grad = (frame["variant"] == "opo") & (frame["metric"] == "grad_norm")
    frame.loc[grad, "value"] = 100.0  # and its gradients blow up
    row = (
        claims(LLMRun(frame, "column-addition"), PAPER.loc[["opo_largest_grad"]])
        .set_index("claim")
        .loc["OPO keeps the largest gradient norm at convergence"]
    )
    assert row["verdict"] == "inconclusive" and "OPO COLLAPSED" in row["rule"]
