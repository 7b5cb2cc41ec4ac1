"""LLM math RL: tasks, grading, log-probs, the RL loop on a tiny random Qwen3, resume, errors."""

import random
import re

import pandas as pd
import pytest
import torch

from geobench.errors import ConfigError
from geobench.llm import run
from geobench.llm.grading import extract_answer, is_correct, last_boxed, ngram_repetition, reward
from geobench.llm.metrics import METRICS, TIMING_METRICS
from geobench.llm.rollout import HFRollout, SamplingSettings, completion_mask
from geobench.llm.tasks import ArithmeticTask, arithmetic_problem, load_math
from tests.conftest import TINY, cli_error
from tests.conftest import tiny_llm_config as tiny_config


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_arithmetic_answers_are_the_expressions_value(level):
    rng = random.Random(level)
    for _ in range(200):
        problem = arithmetic_problem(rng, level)
        expr = problem.prompt.rstrip("=")
        assert re.fullmatch(r"[0-9+\-*()]+", expr)
        assert int(problem.answer) == eval(expr)  # noqa: S307 - digits and operators only (checked above)


def test_arithmetic_task_is_seeded_and_checks_levels():
    task = ArithmeticTask((1, 3))
    assert task.sample(20, random.Random(5)) == task.sample(20, random.Random(5))
    assert {p.level for p in task.sample(100, random.Random(0))} == {1, 3}
    with pytest.raises(ConfigError, match="among 1,2,3,4"):
        ArithmeticTask((5,))


@pytest.mark.parametrize(
    "completion, gold, correct",
    [
        ("33", "33", True),
        ("34", "33", False),
        ("-3", "-3", True),
        ("so x = \\boxed{\\frac{1}{2}}", "0.5", True),
        ("\\boxed{\\frac{1}{2}}", "\\frac{2}{4}", True),
        ("first 7 then \\boxed{12}", "12", True),
        ("\\boxed{x^2 + 2x + 1}", "(x+1)^2", True),
        ("no answer here", "3", False),
        ("", "3", False),
    ],
)
def test_grader_uses_symbolic_equality(completion, gold, correct):
    assert is_correct(completion, gold) is correct


def test_answer_extraction_takes_the_last_balanced_box():
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{a}{b}} c") == "\\frac{a}{b}"
    assert last_boxed("\\fbox{4}") == "4"
    assert last_boxed("\\boxed{unclosed") is None
    assert extract_answer("12+3=15 and 16") == "16"
    assert extract_answer("nothing") is None


def test_digit_reward_credits_right_digits_from_the_units_and_keeps_correct_apart():
    from geobench.llm.grading import DIGIT_CREDIT, digit_credit

    assert reward("\\boxed{853}", "853", "digits") == 1.0
    assert digit_credit("843", "853") == pytest.approx(2 / 3)
    assert digit_credit("53", "853") == pytest.approx(2 / 3)  # aligned from the units digit
    assert digit_credit("1853", "853") == pytest.approx(3 / 4)  # over the longer of the two
    assert reward("\\boxed{843}", "853", "digits") == pytest.approx(DIGIT_CREDIT * 2 / 3)
    assert reward("no answer", "853", "digits") == 0.0 and reward("\\boxed{x}", "853", "digits") == 0.0
    assert max(reward(f"\\boxed{{{n}}}", "853", "digits") for n in range(1000) if n != 853) <= DIGIT_CREDIT


def test_shaped_reward_penalises_repetition_and_credits_short_wrong_answers():
    assert reward("5", "5", "shaped", 10) == 1.0
    assert reward("a b c d a b c d a b c d a b c d", "5", "shaped", 100) == -0.5
    assert ngram_repetition(list("abcdefgh")) == 0.0
    assert reward("7", "5", "shaped", 10) == pytest.approx(0.1 * 0.9)
    assert reward("7", "5", "correct", 10) == 0.0


def test_completion_mask_stops_after_the_first_eos():
    ids = torch.tensor([[5, 1, 7, 1], [5, 6, 7, 8]])
    mask, truncated = completion_mask(ids, eos_id=1)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert truncated.tolist() == [False, True]


def test_trainer_logprobs_match_unpadded_forward_passes(tiny_model):
    """Left-padded prompts and right-padded completions score like each sequence alone."""
    from geobench.llm.model import load_policy

    policy, tokenizer = load_policy(tiny_model)
    rolled = HFRollout(tokenizer, SamplingSettings(max_new_tokens=5)).generate(policy, ["1+2=", "(3+4)*5-6="], 2, 0)
    batched, entropy = rolled.logprobs(policy, with_entropy=True)
    assert entropy.shape == batched.shape and (entropy >= 0).all()
    for row in range(len(rolled.texts)):
        prompt = rolled.prompt_ids[row][rolled.prompt_mask[row] == 1]
        completion = rolled.completion_ids[row][rolled.completion_mask[row] == 1]
        ids = torch.cat([prompt, completion]).unsqueeze(0)
        with torch.no_grad():
            logits = policy(input_ids=ids).logits[0, len(prompt) - 1 : -1]
        alone = torch.log_softmax(logits.float(), -1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(batched[row, : len(completion)], alone, atol=1e-5)
        assert (batched[row, len(completion) :] == 0).all()


def test_two_rl_steps_of_every_algorithm_write_the_schema(tiny_model, tmp_path):
    path = run(tiny_config(tiny_model), tmp_path / "llm", show_progress=False)
    frame = pd.read_csv(path)
    assert list(frame.columns[:2]) == ["experiment", "variant"]
    assert {"task", "seed", "step", "metric", "value"} <= set(frame.columns)
    assert set(frame["variant"]) == {"grpo", "gspo", "dapo", "opo", "adpo"}
    for algo in ("grpo", "gspo", "opo", "adpo"):
        metrics = set(frame[frame["variant"] == algo]["metric"])
        assert {
            "reward_mean",
            "accuracy",
            "grad_norm",
            "entropy",
            "completion_length",
            "adv_range",
            "response_efficiency",
            "heldout_accuracy",
            "signal_range",
            "completion_length_std",
            "ratio_one_frac",
            "reward_levels",
            "truncated_frac",
        } <= metrics, algo
    timing = pd.read_csv(tmp_path / "llm" / "timing" / "timing.csv")
    assert set(timing["metric"]) == {"update_time_s", "rollout_tokens_per_s"}
    assert set(frame["metric"]) <= set(METRICS) - set(TIMING_METRICS)  # the one declared schema
    assert set(timing["variant"]) == set(frame["variant"]) and not frame["metric"].isin(timing["metric"]).any()
    clip = frame[(frame["metric"] == "clip_frac")]
    assert set(clip["variant"]) >= {"grpo", "gspo"}
    tau = frame[(frame["variant"] == "adpo") & (frame["metric"] == "tau")]["value"]
    assert len(tau) == 2 and tau.between(0.1 - 1e-6, 0.8 + 1e-6).all()  # Eq. 12 stays in [tau_min, tau_max]
    opo_tau = frame[(frame["variant"] == "opo") & (frame["metric"] == "tau")]["value"]
    assert len(opo_tau) == 2 and opo_tau.between(0.2, 1.5).all()  # OPO Sec. 9.1: adaptive tau in [0.2, 1.5]
    assert set(frame[frame["metric"] == "heldout_accuracy"]["step"]) == {0, 1, 2}


def test_same_seed_same_csv(tiny_model, tmp_path):
    config = tiny_config(tiny_model, algos=("grpo", "adpo"))
    first = run(config, tmp_path / "a", show_progress=False).read_bytes()
    assert run(config, tmp_path / "b", show_progress=False).read_bytes() == first


def test_interrupted_sweep_resumes_without_retraining(tiny_model, tmp_path, monkeypatch):
    from geobench.llm import sweep

    config = tiny_config(tiny_model, algos=("grpo", "opo"), steps=1)
    calls = []
    real = sweep.train_cell

    def failing(policy, tokenizer, task, rollout, algo, *args, **kwargs):
        calls.append(algo)
        if algo == "opo":
            raise KeyboardInterrupt
        return real(policy, tokenizer, task, rollout, algo, *args, **kwargs)

    monkeypatch.setattr(sweep, "train_cell", failing)
    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "r", show_progress=False)
    monkeypatch.setattr(sweep, "train_cell", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    frame = pd.read_csv(run(config, tmp_path / "r", show_progress=False))
    assert calls == ["grpo", "opo", "opo"]
    assert set(frame["variant"]) == {"grpo", "opo"}


def test_math_dataset_from_disk_trains_and_grades_boxed_answers(tiny_model, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {
        "problem": ["What is $1+1$?", "Simplify $\\frac{2}{4}$.", "Too easy: $0+0$."],
        "solution": ["It is $\\boxed{2}$.", "We get $\\boxed{\\frac{1}{2}}$.", "$\\boxed{0}$"],
        "level": ["Level 3", "Level 4", "Level 1"],
        "type": ["Algebra"] * 3,
    }
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "math"))
    task = load_math(str(tmp_path / "math"), (3, 4))
    assert [p.answer for p in task.problems] == ["2", "\\frac{1}{2}"]
    assert is_correct(task.completion(task.problems[1]), "0.5")
    config = tiny_config(tiny_model, algos=("opo",), steps=1, dataset=str(tmp_path / "math"), levels=(3, 4))
    frame = pd.read_csv(run(config, tmp_path / "llm", show_progress=False))
    assert set(frame["task"]) == {"math-lighteval"}


def test_missing_dataset_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="absent.jsonl not found; check --dataset"):  # a file, not the network
        load_math(str(tmp_path / "absent.jsonl"), (3,))


def test_vllm_rollout_without_vllm_says_how_to_install(tiny_model, tmp_path):
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed: the GPU path is exercised elsewhere")
    message = cli_error("llm", "--model", tiny_model, "--rollout", "vllm", "--out", str(tmp_path / "x"), "--no-draw")
    assert "pip install 'geobench[vllm]'" in message


@pytest.mark.parametrize(
    "args, message",
    [
        (["--algo", "ppo2"], "unknown algorithm 'ppo2' for geobench llm; valid: grpo, gspo, dapo, opo, adpo"),
        (["--rollout", "sglang"], "unknown rollout backend 'sglang'"),
        (["--model", "/nonexistent/ckpt"], "cannot load model '/nonexistent/ckpt'"),
        (["--reward", "length"], "unknown reward 'length'"),
    ],
)
def test_llm_bad_input_is_one_line(tmp_path, args, message):
    assert message in cli_error("llm", *args, "--out", str(tmp_path / "x"), "--no-draw", "--quiet")


def test_warm_start_is_cached_and_rebuilt_when_settings_change(tmp_path):
    from geobench.llm.warmstart import WarmStartConfig, ensure_warmstart

    config = WarmStartConfig(shape=TINY, max_steps=2, eval_every=1, eval_prompts=4, batch=4)
    folder = ensure_warmstart(config, tmp_path / "ws", show_progress=False)
    stamp = (folder / "warmstart.json").stat().st_mtime_ns
    ensure_warmstart(config, folder, show_progress=False)
    assert (folder / "warmstart.json").stat().st_mtime_ns == stamp
    ensure_warmstart(WarmStartConfig(shape=TINY, max_steps=1, eval_every=1, eval_prompts=4, batch=4), folder, False)
    assert (folder / "warmstart.json").stat().st_mtime_ns != stamp
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()


@pytest.mark.parametrize("algo", ["grpo", "gspo", "opo"])
def test_single_on_policy_pass_equals_the_update_with_precomputed_old_logprobs(tiny_model, algo):
    """The shortcut that skips pi_old's separate forward pass changes nothing but the work done."""
    import copy

    from geobench.llm.model import load_policy
    from geobench.llm.settings import LLMConfig
    from geobench.llm.train import _scheduler, _update
    from geobench.objectives import make_objective

    policy, tokenizer = load_policy(tiny_model)
    rolled = HFRollout(tokenizer, SamplingSettings(max_new_tokens=4)).generate(policy, ["1+2=", "3*4+5="], 3, 0)
    rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    settings = LLMConfig(steps=1, lr=1e-2)
    results = []
    for precompute in (True, False):
        model = copy.deepcopy(policy)
        old = None
        if precompute:
            with torch.no_grad():
                old, _ = rolled.logprobs(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
        metrics = _update(
            model,
            optimizer,
            _scheduler(optimizer, settings),
            make_objective(algo),
            rolled,
            rewards,
            old,
            settings,
            torch.Generator().manual_seed(0),
        )
        results.append((metrics, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (with_old, params_a), (single, params_b) = results
    assert with_old["loss"] == pytest.approx(single["loss"], abs=1e-6)
    assert torch.allclose(params_a, params_b, atol=1e-6)
    assert "entropy" in single and single["entropy"] > 0


def test_trl_engine_runs_two_steps_of_every_algorithm_in_geobenchs_schema(tiny_model, tmp_path):
    pytest.importorskip("trl")
    config = tiny_config(tiny_model, engine="trl")
    frame = pd.read_csv(run(config, tmp_path / "trl", show_progress=False))
    assert set(frame["variant"]) == {"grpo", "gspo", "dapo", "opo", "adpo"}
    for algo in ("grpo", "gspo", "opo", "adpo"):
        part = frame[frame["variant"] == algo]
        assert {"reward_mean", "grad_norm", "entropy", "completion_length", "loss", "heldout_accuracy"} <= set(
            part["metric"]
        ), algo
        assert set(part[part["metric"] == "reward_mean"]["step"]) == {1, 2}
    assert set(frame[(frame["variant"] == "adpo")]["metric"]) >= {"tau"}
    assert set(frame["metric"]) <= set(METRICS)  # the same schema as geobench's own loop


def test_trl_groups_stay_whole_when_a_generation_batch_is_split():
    from geobench.llm.trl_engine import group_chunks

    batch = {"ids": torch.arange(12), "text": [str(i) for i in range(12)], "scalar": torch.tensor(1.0)}
    chunks = group_chunks(batch, group=3, chunks=2, gen=torch.Generator().manual_seed(0))
    assert len(chunks) == 2
    for chunk in chunks:
        ids = chunk["ids"].view(-1, 3)
        assert (ids[:, 0] % 3 == 0).all() and (ids - ids[:, :1] == torch.arange(3)).all()  # whole, in order
        assert chunk["text"] == [str(i) for i in chunk["ids"].tolist()] and chunk["scalar"] == 1.0
    assert sorted(torch.cat([c["ids"] for c in chunks]).tolist()) == list(range(12))
    with pytest.raises(ValueError, match="whole groups"):
        group_chunks(batch, group=5, chunks=1, gen=torch.Generator())


def test_the_llm_and_bandits_packages_hand_names_on_without_importing_their_sweeps():
    import subprocess
    import sys

    code = (
        "import sys\nimport geobench.llm, geobench.bandits.env\n"
        "print(sorted(m for m in sys.modules if m.endswith('.sweep') or m == 'geobench.executor'))\n"
        "from geobench.bandits import BanditConfig, run\nfrom geobench.llm import ALGOS, LLMConfig\n"
        "print(BanditConfig.__module__, run.__module__, LLMConfig.__module__, ALGOS[0])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    homes = "geobench.bandits.sweep geobench.bandits.sweep geobench.llm.settings grpo"
    assert proc.stdout.splitlines() == ["[]", homes]
