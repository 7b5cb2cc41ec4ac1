"""Claims as data: the evaluator and each rule on hand-made frames, and the claim files' rows against the rules."""

import inspect

import numpy as np
import pandas as pd
import pytest

import geobench.report.reproduction  # noqa: F401  (imports every module that registers a rule)
from geobench.report.claims import COLUMNS, PAPER_DIR, PARAMS, RULES, Outcome, evaluate, read_claims, rule
from geobench.report.llm_report import GUARDS, LLMRun
from geobench.report.mujoco_report import Environment
from geobench.report.toy_figure import Reading

STEPS, SEEDS = 30, 4
DESCRIPTIVE = {
    "claim",
    "artifact",
    "panel",
    "statement",
    "paper",
    "paper_value",
    "unit",
    "source",
    "rule",
    "rule_text",
    "ours_text",
    "guards",
    "horizon",  # read by the LLM guard "horizon", not by a rule
    "skip_task",
    "skip_rule",
}


def judge(name: str, context: object, **params: str) -> Outcome | None:
    return RULES[name](context, **params)


def claim_files() -> list[str]:
    return sorted(path.stem for path in PAPER_DIR.glob("*_claims.csv"))


@pytest.mark.parametrize("stem", claim_files())
def test_every_claim_row_names_a_registered_rule_and_the_parameters_it_takes(stem):
    rows = read_claims(stem)
    assert set(rows.columns) <= DESCRIPTIVE | set(PARAMS), set(rows.columns) - DESCRIPTIVE - set(PARAMS)
    assert rows["claim"].is_unique and (rows["statement"] != "").all() and (rows["rule_text"] != "").all()
    for row in rows.to_dict("records"):
        params = {k: row[k] for k in PARAMS if row.get(k, "")}
        inspect.signature(RULES[row["rule"]]).bind(None, **params)  # a missing or unknown parameter raises
        for name in row.get("guards", "").split():
            assert name in GUARDS


def test_a_threshold_changed_in_the_data_changes_the_verdict_and_the_printed_rule():
    rows = pd.DataFrame(
        {"statement": ["x small"], "paper": ["-"], "rule": ["at_most"], "quantity": ["x"], "threshold": ["1e-6"]}
    ).assign(ours_text="x = {x:.1e}", rule_text="x <= {threshold}")
    held = evaluate(rows, {"x": 5e-7})
    assert list(held.columns) == list(COLUMNS)
    assert held.iloc[0].tolist() == ["x small", "-", "x = 5.0e-07", "reproduced", "x <= 1e-6"]
    refuted = evaluate(rows.assign(threshold="1e-7"), {"x": 5e-7})
    assert refuted.iloc[0][["verdict", "rule"]].tolist() == ["not reproduced", "x <= 1e-7"]


@pytest.mark.parametrize(
    "name, value, threshold, verdict",
    [
        ("at_least", 1.0, "1", "reproduced"),
        ("at_least", 0.99, "1", "not reproduced"),
        ("at_most", 1e-9, "1e-08", "reproduced"),
        ("at_most", 1e-7, "1e-08", "not reproduced"),
        ("abs_at_most", -1e-11, "1e-10", "reproduced"),
        ("abs_at_most", -1e-9, "1e-10", "not reproduced"),
    ],
)
def test_scalar_rules(name, value, threshold, verdict):
    assert judge(name, {"q": value}, quantity="q", threshold=threshold).verdict == verdict


def test_close_to_compares_two_named_scalars():
    assert judge("close_to", {"a": 0.5, "b": 0.5000001}, quantity="a", target="b", threshold="1e-6").verdict == (
        "reproduced"
    )
    assert judge("close_to", {"a": 0.5, "b": 0.6}, quantity="a", target="b", threshold="1e-6").verdict == (
        "not reproduced"
    )


def test_evaluate_skips_a_claim_whose_subject_is_absent_and_prints_why_a_claim_cannot_be_judged(monkeypatch):
    def absent_or_unjudged(context, subject):
        return None if subject == "absent" else Outcome("not run", "inconclusive", rule="needs the scenario")

    monkeypatch.setitem(RULES, "absent_or_unjudged", absent_or_unjudged)
    rows = pd.DataFrame(
        {"artifact": ["A", "B"], "statement": ["s1", "s2"], "paper": ["p", "p"], "subject": ["absent", "here"]}
    ).assign(rule="absent_or_unjudged", rule_text="never printed")
    assert evaluate(rows, None).to_dict("records") == [
        {
            "artifact": "B",
            "claim": "s2",
            "paper": "p",
            "ours": "not run",
            "verdict": "inconclusive",
            "rule": "needs the scenario",
        }
    ]


def test_two_rules_cannot_share_a_name():
    with pytest.raises(ValueError, match="two claim rules"):
        rule("highest")(lambda context: None)


def test_evaluate_reads_rows_as_pandas_reads_them_by_default(tmp_path):
    """A claims CSV read with ``pd.read_csv``'s defaults (numbers as floats, blanks as NaN) judges the same."""
    path = tmp_path / "claims.csv"
    read_claims("opo_fig1_claims").to_csv(path, index=False)
    scalars = {"max_err": 1e-16, "iterations": 60.0, "mean_v": 1e-17, "rate": 0.5, "contraction": 0.5, "eta_mu": 0.5}
    as_text = evaluate(read_claims("opo_fig1_claims"), scalars)
    as_numbers = evaluate(pd.read_csv(path), scalars)
    assert (as_text["verdict"] == "reproduced").all()
    assert as_numbers.drop(columns="rule").equals(as_text.drop(columns="rule"))
    assert as_text["rule"].iloc[2].endswith("<= 1e-6") and as_numbers["rule"].iloc[2].endswith("<= 1e-06")


# The LLM rules on a hand-made metrics.csv: curves[variant][metric](step, seed) -> value.


def metrics(curves: dict) -> pd.DataFrame:
    rows = [
        {"variant": variant, "seed": seed, "step": step, "metric": metric, "value": float(fn(step, seed))}
        for variant, by_metric in curves.items()
        for metric, fn in by_metric.items()
        for seed in range(SEEDS)
        for step in range(1, STEPS + 1)
    ]
    return pd.DataFrame(rows)


def flat(level: float):
    return lambda step, seed: level + 0.01 * seed


def test_highest_and_lowest_flip_with_the_numbers():
    good = LLMRun(metrics({"opo": {"reward_mean": flat(0.8)}, "grpo": {"reward_mean": flat(0.5)}}))
    bad = LLMRun(metrics({"opo": {"reward_mean": flat(0.3)}, "grpo": {"reward_mean": flat(0.5)}}))
    args = dict(subject="opo", metric="reward_mean", statistic="final", threshold="0")
    assert judge("highest", good, **args).verdict == "reproduced"
    assert judge("highest", good, **args).ours.endswith("vs GRPO")
    assert judge("highest", bad, **args).verdict == "not reproduced"
    assert judge("lowest", bad, **args).verdict == "reproduced" and judge("lowest", good, **args).verdict == (
        "not reproduced"
    )
    assert judge("highest", good, **{**args, "subject": "dapo"}) is None  # not in the run: no row


def test_ratio_above_is_held_to_the_rows_threshold():
    run = LLMRun(metrics({"opo": {"response_efficiency": flat(6.0)}, "grpo": {"response_efficiency": flat(1.0)}}))
    args = dict(subject="opo", versus="grpo", metric="response_efficiency", statistic="mean")
    assert judge("ratio_above", run, **args, threshold="2.5").verdict == "reproduced"
    assert judge("ratio_above", run, **args, threshold="10").verdict == "not reproduced"


def test_collapses_needs_the_final_reward_below_half_the_peak():
    falls = LLMRun(metrics({"grpo": {"reward_mean": lambda step, seed: 0.5 if step <= 10 else 0.05 + 0.01 * seed}}))
    holds = LLMRun(metrics({"grpo": {"reward_mean": flat(0.5)}}))
    assert judge("collapses", falls, subject="grpo", metric="reward_mean", threshold="0").verdict == "reproduced"
    assert judge("collapses", holds, subject="grpo", metric="reward_mean", threshold="0").verdict == "not reproduced"


@pytest.mark.parametrize("growth, verdict", [(0.0, "reproduced"), (3.0, "not reproduced")])
def test_stays_within_a_band(growth, verdict):
    run = LLMRun(metrics({"adpo": {"completion_length": lambda step, seed: 20 * (1 + growth * step / STEPS) + seed}}))
    outcome = judge("stays_within", run, subject="adpo", metric="completion_length", lower="0.8", upper="1.25")
    assert outcome.verdict == verdict and outcome.ours.startswith("final / first 20 steps")


def test_large_not_exploding_fails_on_a_spike():
    calm = {"opo": {"grad_norm": flat(2.0)}, "grpo": {"grad_norm": flat(1.0)}}
    spiky = {**calm, "opo": {"grad_norm": lambda step, seed: 100.0 if step == 3 else 2.0 + 0.01 * seed}}
    args = dict(subject="opo", versus="grpo", metric="grad_norm", statistic="final", threshold="10")
    assert judge("large_not_exploding", LLMRun(metrics(calm)), **args).verdict == "reproduced"
    assert judge("large_not_exploding", LLMRun(metrics(spiky)), **args).verdict == "not reproduced"


def test_the_collapse_guard_voids_a_reproduced_verdict_and_says_why():
    frame = metrics(
        {
            "opo": {"grad_norm": flat(5.0), "reward_mean": lambda step, seed: 0.5 if step <= 10 else 0.01},
            "grpo": {"grad_norm": flat(1.0), "reward_mean": flat(0.5)},
        }
    )
    rows = read_claims("llm_claims").set_index("claim").loc[["opo_largest_grad"]].reset_index()
    row = evaluate(rows.assign(guards="collapsed"), LLMRun(frame), GUARDS).iloc[0]
    assert row["verdict"] == "inconclusive" and row["rule"].endswith(
        "; OPO COLLAPSED in this run, so its numbers cannot support the claim"
    )
    assert evaluate(rows.assign(guards=""), LLMRun(frame), GUARDS).iloc[0]["verdict"] == "reproduced"


# OPO Fig. 3's rules on a hand-made saturation.csv of one reading.


def saturation(**curves) -> Reading:
    z = np.linspace(0.0, 10.0, 41)
    p = 1 / (1 + np.exp(-z))
    rows = [
        pd.DataFrame({"variant": variant, "p": p, "z": z, "metric": "grad_abs", "value": fn(p, z)})
        for variant, fn in curves.items()
    ]
    return Reading(pd.concat(rows, ignore_index=True).assign(coordinates="exact"), "exact")


def test_toy_rules_flip_with_the_curves():
    good = saturation(opo=lambda p, z: 1 + 20 * (p - 0.5), grpo=lambda p, z: 0 * p, dpo=lambda p, z: np.exp(-z))
    bad = saturation(opo=lambda p, z: 1 - p, grpo=lambda p, z: 0 * p + 1e-3, dpo=lambda p, z: np.exp(-2 * z))
    for run, verdict in ((good, "reproduced"), (bad, "not reproduced")):
        assert judge("grows_past", run, subject="opo", p_from="0.9", threshold="1").verdict == verdict
        assert judge("vanishes", run, subject="grpo dapo", p_from="0.9", threshold="1e-12").verdict == verdict
        slope = judge("log_slope_within", run, subject="dpo", z_from="3", z_to="9", lower="-1.2", upper="-0.8")
        assert slope.verdict == verdict and slope.fields == {"reading": "exact"}
    assert judge("vanishes", good, subject="gspo", p_from="0.9", threshold="1e-12") is None


# ADPO Table 2's rules on hand-made final values.


@pytest.mark.parametrize("student_kl, verdict", [(1.0, "reproduced"), (5.0, "not reproduced")])
def test_fold_reduction_and_gain_over(student_kl, verdict):
    rows = []
    for seed in range(SEEDS):
        for variant, ret, kl in (
            ("kd", 0.0, 10.0),
            ("adpo-self-anchor", 100.0 if verdict == "reproduced" else -100.0, student_kl),
        ):
            rows += [
                {"env": "Hopper-v5", "variant": variant, "seed": seed, "metric": "return", "value": ret + seed},
                {"env": "Hopper-v5", "variant": variant, "seed": seed, "metric": "kl", "value": kl + 0.01 * seed},
            ]
    run = Environment(pd.DataFrame(rows), "Hopper-v5")
    args = dict(subject="adpo-self-anchor", versus="kd")
    assert judge("fold_reduction", run, **args, metric="kl", threshold="4").verdict == verdict
    assert judge("gain_over", run, **args, metric="return", threshold="0").verdict == verdict
