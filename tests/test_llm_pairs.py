"""The per-pair check in the report, "not testable" and the stress table's grad norms,
on hand-made CSVs that follow the schemas the LLM loop writes (pairs.csv, metrics.csv)."""

import numpy as np
import pandas as pd
import pytest

from geobench.errors import ConfigError
from geobench.report.claims import read_claims
from geobench.report.llm_ablations import large_not_exploding, stress_table
from geobench.report.llm_artifacts import draw_llm
from geobench.report.llm_pairs import COLUMNS, pair_summary, pair_verdict, pairs_text, read_pairs
from geobench.report.llm_regime import pairwise_table
from geobench.report.llm_report import LLMRun, claims
from geobench.results import write_csv
from tests.test_llm_regime import synthetic_run
from tests.test_report import llm_fixture

PAPER = read_claims("llm_claims").set_index("claim", drop=False)
UPDATES = 4


# The per-pair check, on a pairs.csv with the loop's columns.


def pairs_frame(algos, cosine, seeds: int = 2, steps=(0, 20, 40)) -> pd.DataFrame:
    """pairs.csv rows (COLUMNS, in order): every algorithm's cells compared with every other, at each checked
    step and update position; ``cosine(a, x, update, seed, step)`` gives the value."""
    rows = [
        {
            "experiment": "llm",
            "variant": a,
            "seed": seed,
            "step": step,
            "other": x,
            "update": u,
            "cosine": cosine(a, x, u, seed, step),
        }
        for a in algos
        for x in algos
        if x != a
        for seed in range(seeds)
        for step in steps
        for u in range(1, UPDATES + 1)
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def theory(a, x, update, seed, step):
    """GRPO and DAPO coincide (DAPO's rescale, cancelled by AdamW); every other pair differs on the late updates."""
    if {a, x} == {"grpo", "dapo"}:
        return 0.995 + 0.002 * seed
    return 1.0 if update <= 2 else 0.3 + 0.1 * update + 0.01 * seed


def test_pair_verdicts_coincide_and_differ_by_the_rule():
    pairs = pairs_frame(("grpo", "dapo", "gspo", "opo"), theory)
    assert pair_verdict(pairs, "grpo", "dapo") == pair_verdict(pairs, "dapo", "grpo") == "coincide"
    assert pair_verdict(pairs, "grpo", "gspo") == "differ" and pair_verdict(pairs, "gspo", "opo") == "differ"
    assert pair_verdict(pairs, "grpo", "adpo") is None  # never checked
    summary = pair_summary(pairs).set_index("pair")
    assert summary.loc["DAPO - GRPO", ["update 1", "update 4", "lowest", "verdict"]].tolist() == [
        "0.996",
        "0.996",
        "0.995",
        "coincide",
    ]
    differ = summary.loc["GRPO - GSPO"]
    assert differ[["update 1", "update 2", "update 3", "update 4"]].tolist() == ["1.000", "1.000", "0.605", "0.705"]
    assert differ["below 0.99 at updates"] == "3, 4" and differ["verdict"] == "differ"
    assert differ["cosines checked"] == "48 (3 steps, 2 seeds, 2 directions)"
    assert "**Coinciding pairs: DAPO - GRPO.**" in pairs_text(pairs, UPDATES)


def test_one_direction_or_one_step_below_the_threshold_makes_a_pair_differ_and_nan_counts_neither_way():
    def one_dip(a, x, update, seed, step):
        return 0.5 if (a, x, update, seed, step) == ("dapo", "grpo", 4, 1, 40) else 1.0

    assert pair_verdict(pairs_frame(("grpo", "dapo"), one_dip), "grpo", "dapo") == "differ"

    def zero_gradient(a, x, update, seed, step):
        return np.nan if seed == 0 else 1.0

    assert pair_verdict(pairs_frame(("grpo", "dapo"), zero_gradient), "grpo", "dapo") == "coincide"
    assert pair_verdict(pairs_frame(("grpo", "dapo"), lambda *_: np.nan), "grpo", "dapo") is None


def test_read_pairs_takes_the_csv_beside_metrics_and_names_a_missing_column(tmp_path):
    assert read_pairs(tmp_path) is None  # an older run: no per-pair check
    pairs = pairs_frame(("grpo", "dapo"), theory)
    write_csv(pairs, tmp_path / "pairs.csv")
    assert read_pairs(tmp_path).equals(pairs)
    write_csv(pairs.drop(columns="update"), tmp_path / "pairs.csv")
    with pytest.raises(ConfigError, match=r"lacks the per-pair check's columns \['update'\]"):
        read_pairs(tmp_path)


def test_a_comparison_between_coinciding_algorithms_is_not_testable_in_claims_and_pairwise_rows():
    frame = synthetic_run(on_policy=0.5, clip=0.05, length_std=8.0, opo_gain=0.3)
    dapo_low = (frame["variant"] == "dapo") & (frame["metric"] == "grad_norm")
    frame.loc[dapo_low, "value"] = 0.2  # DAPO's grad norm is lowest on every seed: the numbers would say reproduced
    pairs = pairs_frame(("grpo", "gspo", "dapo", "opo", "adpo"), theory)
    table = claims(LLMRun(frame, "column-addition", pairs), PAPER.loc[["dapo_smallest_grad", "opo_best_reward"]])
    rows = table.set_index("claim")
    dapo = rows.loc["DAPO has the smallest gradient norm"]
    assert dapo["verdict"] == "not testable"
    assert dapo["rule"].endswith(
        "; not testable (updates coincide: cosine >= 0.99 at every checked update): DAPO and GRPO"
    )
    assert rows.loc["OPO reaches the highest final reward", "verdict"] == "reproduced"  # OPO's pairs all differ
    without_check = claims(LLMRun(frame, "column-addition"), PAPER.loc[["dapo_smallest_grad"]])
    assert without_check["verdict"].iloc[0] == "reproduced"  # the run-level check cannot see the coincidence
    lines = pairwise_table(frame, pairs=pairs).splitlines()
    dapo_grpo = next(line for line in lines if line.startswith("| DAPO - GRPO"))
    assert dapo_grpo.startswith("| DAPO - GRPO | coincide |")
    assert dapo_grpo.endswith("| not testable (updates coincide: cosine >= 0.99 at every checked update) |")
    assert next(line for line in lines if line.startswith("| GRPO - OPO")).startswith("| GRPO - OPO | differ |")


def test_a_pair_the_check_skipped_falls_back_on_the_run_level_check():
    frame = synthetic_run(on_policy=1.0, clip=0.0, length_std=0.3, opo_gain=0.3)  # run-level: objectives coincide
    pairs = pairs_frame(("grpo", "gspo"), lambda *_: 0.2)  # only GRPO and GSPO were checked: they differ
    run = LLMRun(frame, "column-addition", pairs)
    assert run.discrimination.void("grpo", "gspo") is None
    row = claims(run, PAPER.loc[["opo_best_reward"]]).iloc[0]
    assert row["verdict"] == "not testable"
    assert row["rule"].endswith(
        "; not testable (the per-pair check skipped this pair; the coarser run-level check: objectives coincide)"
    )


def test_one_seed_cannot_give_a_ci_so_its_claims_are_not_testable():
    frame = synthetic_run(on_policy=0.5, clip=0.05, length_std=8.0, opo_gain=0.3, seeds=1)
    row = claims(LLMRun(frame, "column-addition"), PAPER.loc[["opo_best_reward"]]).iloc[0]
    assert row["verdict"] == "not testable"
    assert row["rule"].endswith("; not testable (1 seed(s): a CI over seeds needs at least 2)")
    assert "not testable (1 seed(s) in common" in pairwise_table(frame)


def test_a_run_shorter_than_the_claims_horizon_cannot_test_it():
    """'GRPO collapses near step 40' after 30 steps: not testable, even though the curve falls."""
    frame = synthetic_run(on_policy=0.5, clip=0.05, length_std=8.0)
    grpo = (frame["variant"] == "grpo") & (frame["metric"] == "reward_mean") & (frame["step"] > 10)
    frame.loc[grpo, "value"] = 0.01
    row = claims(LLMRun(frame, "column-addition"), PAPER.loc[["grpo_collapse"]]).iloc[0]
    assert row["verdict"] == "not testable" and row["rule"].endswith("(the run has 30 steps; the claim needs 40)")


def test_a_report_over_a_run_with_pairs_csv_shows_the_table_and_marks_the_coinciding_pair(tmp_path):
    llm_fixture(tmp_path / "llm", opo_reward=0.8)
    write_csv(pairs_frame(("grpo", "gspo", "dapo", "opo", "adpo"), theory), tmp_path / "llm" / "pairs.csv")
    figures = tmp_path / "figures"
    draw_llm(tmp_path / "llm", figures)
    shown = (figures / "llm_pairs.md").read_text()
    assert "**Coinciding pairs: DAPO - GRPO.**" in shown and "| DAPO - GRPO |" in shown
    assert "No per-pair check" not in shown and "Run-level check" not in shown
    assert "| DAPO - GRPO | coincide |" in (figures / "llm_pairwise.md").read_text()
    (tmp_path / "llm" / "pairs.csv").unlink()  # an older run
    draw_llm(tmp_path / "llm", figures / "old", only=frozenset({"llm_pairs"}))
    fallback = (figures / "old" / "llm_pairs.md").read_text()
    assert "**No per-pair check in this run**" in fallback and "Run-level check:" in fallback


# The stress table: a collapsed seed's median grad norm is 0.


def stress_frame(opo_norms) -> pd.DataFrame:
    """Three seeds x 10 steps: GRPO at 1.0; OPO's grad norm per seed from ``opo_norms[seed]`` (a list of 10)."""
    rows = []
    for seed in range(3):
        for step in range(1, 11):
            for variant, norm in (("grpo", 1.0), ("opo", opo_norms[seed][step - 1])):
                rows += [
                    {"variant": variant, "seed": seed, "step": step, "metric": "grad_norm", "value": norm},
                    {"variant": variant, "seed": seed, "step": step, "metric": "reward_mean", "value": 0.5},
                ]
    return pd.DataFrame(rows)


def test_a_seed_whose_grad_norm_is_mostly_zero_reads_median_0_not_a_huge_ratio():
    collapsed = [42.3, 5.0, 3.0, 4.0] + [0.0] * 6  # 60% of steps exactly 0: the median is 0
    frame = stress_frame([[4.0] * 9 + [8.0], [5.0] * 10, collapsed])
    opo = next(line for line in stress_table(frame).splitlines() if line.startswith("| OPO"))
    assert opo.endswith("| 42.30 | 4.00, 5.00, 0 (seed 2: exactly 0 on 60% of steps, the seed collapsed) |")
    assert "e+" not in opo
    args = dict(subject="opo", versus="grpo", metric="grad_norm", statistic="final", threshold="10")
    outcome = large_not_exploding(LLMRun(frame), **args)
    assert outcome.verdict == "inconclusive"  # the live seeds hold (max/median 2), the dead one cannot show it
    assert outcome.ours.endswith("max/median 2.0 (seeds with median > 0; median 0 on seed 2: it collapsed)")
    spiky = stress_frame([[4.0] * 9 + [80.0], [5.0] * 10, collapsed])
    assert large_not_exploding(LLMRun(spiky), **args).verdict == "not reproduced"  # a live seed spikes 20x
