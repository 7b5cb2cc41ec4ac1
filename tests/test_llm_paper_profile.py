"""Issue 25: the paper profile's reward, prompts, data passes and held-out split, and one run of it end to end.

The end-to-end test runs ``geobench llm --profile paper`` on the shipped MATH-format fixture
(tests/data/math_fixture.jsonl: 44 train and 10 test rows, Levels 3 and 4) with the random Qwen3-1.7B
architecture divided by 64 and the batch scaled down by the CLI's flags, every other paper setting
as the profile has it (about 20 s on one CPU thread).
"""

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from geobench.config import load_config
from geobench.errors import ConfigError
from geobench.llm.data import eval_task, held_out_problems, pass_order, run_steps, training_problems
from geobench.llm.grading import good_accuracy, ngram_repetition, reward
from geobench.llm.paper_shapes import random_policy
from geobench.llm.prompts import prompt_text, prompted
from geobench.llm.settings import LLMConfig
from geobench.llm.tasks import load_math, make_task
from tests.conftest import tiny_llm_config

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "math_fixture.jsonl"


def test_good_accuracy_takes_the_authors_closed_form_values():
    assert reward("so x = \\boxed{5}", "5", "good-accuracy") == 1.0
    short = "the answer is 6"  # 4 words, one 4-gram: no repetition
    assert reward(short, "5", "good-accuracy") == pytest.approx(len(short) / 2000)
    long = " ".join(f"w{i}" for i in range(400))  # 1,889 characters, every 4-gram distinct
    assert good_accuracy(long, correct=False) == pytest.approx(min(len(long) / 2000, 0.1)) == pytest.approx(0.1)
    repetitive = "go on and on " * 10
    assert ngram_repetition(repetitive.split()) > 0.3 and good_accuracy(repetitive, correct=False) == -0.5
    mild = " ".join([f"w{i}" for i in range(10)] + ["w0", "w1", "w2", "w3"])  # 11 4-grams, 10 distinct
    assert good_accuracy(mild, correct=False) == pytest.approx(len(mild) / 2000 - 0.25 / 11)
    assert good_accuracy("WRONG", correct=False) == pytest.approx(5 / 2000)  # under 4 words: length only


def test_the_loop_and_trl_tokenize_the_same_chat_prompt():
    from trl import GRPOTrainer

    from geobench.llm.trl_engine import prompt_dataset

    _, tokenizer = random_policy("random:qwen3-1.7b/64", "float32")
    config = tiny_llm_config("random:qwen3-1.7b/64", prompt_format="chat", enable_thinking=False)
    problems = load_math(str(FIXTURE), (3,)).problems[:3]
    loop = [p.prompt for p in prompted(problems, tokenizer, **config.prompt_settings())]
    trl = list(prompt_dataset(problems, tokenizer, config)["prompt"])
    assert loop == trl and loop[0].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    loop_ids = tokenizer(loop)["input_ids"]  # as the rollouts tokenize them (geobench.llm.rollout)
    trl_ids = GRPOTrainer._tokenize_prompts(SimpleNamespace(processing_class=tokenizer), trl)[0]
    messages = [[{"role": "user", "content": p.prompt}] for p in problems]
    template = [
        tokenizer.apply_chat_template(m, add_generation_prompt=True, enable_thinking=False)["input_ids"]
        for m in messages
    ]
    assert loop_ids == trl_ids == template
    assert prompt_text(tokenizer, "1+1=", "raw", True) == "1+1="


def test_chat_prompts_without_a_chat_template_are_one_line(tiny_model):
    with pytest.raises(ConfigError, match="chat template"):
        LLMConfig(prompt_format="chat")  # the tiny warm start
    from geobench.llm.sweep import _check_model

    with pytest.raises(ConfigError, match="has none"):
        _check_model(tiny_model, "chat")


def test_data_epochs_show_each_prompt_exactly_n_times_in_a_seeded_order():
    task = load_math(str(FIXTURE), (3,))
    n = len(task.problems)
    assert n == 40
    order = pass_order(n, 3, seed=7)
    assert Counter(order) == {i: 3 for i in range(n)} and order == pass_order(n, 3, seed=7) != pass_order(n, 3, 8)
    assert all(sorted(order[e * n : (e + 1) * n]) == list(range(n)) for e in range(3))  # each pass without replacement
    steps = run_steps(10_000, task, 3, prompts_per_step=7)
    assert steps == math.ceil(3 * 40 / 7) and run_steps(5, task, 3, 7) == 5
    stream = training_problems(task, 3, seed=7)
    seen = Counter(p.prompt for _ in range(steps) for p in stream.sample(7))
    assert set(seen.values()) == {3} and len(seen) == n
    with pytest.raises(ConfigError, match="endless"):
        training_problems(make_task("column-addition", (1,)), 2, 0)


def test_held_out_problems_are_the_test_split_never_a_training_prompt():
    task = load_math(str(FIXTURE), (3, 4))
    held = eval_task(task, str(FIXTURE), (3, 4), "test")
    problems = held_out_problems(task, held, 200, seed=0)
    assert len(problems) == 10 == len({p.prompt for p in problems})
    assert not {p.prompt for p in problems} & {p.prompt for p in task.problems}
    assert eval_task(task, str(FIXTURE), (3, 4), "") is task  # "": the earlier runs' draw, never a paper profile's
    with pytest.raises(ConfigError, match="fixed dataset"):
        eval_task(make_task("column-addition", (1,)), "column-addition", (1,), "test")


def test_the_new_fields_default_to_every_earlier_run():
    quick = load_config(LLMConfig, ROOT / "experiments" / "opo_table1.toml", "quick")
    assert (quick.prompt_format, quick.data_epochs, quick.eval_split) == ("raw", 0, "")
    paper = load_config(LLMConfig, ROOT / "experiments" / "opo_table1.toml", "paper")
    assert (paper.reward, paper.prompt_format, paper.data_epochs, paper.eval_split) == (
        "good-accuracy",
        "chat",
        4,
        "test",
    )


def test_the_paper_profile_runs_end_to_end_on_a_cpu(tmp_path):
    out, figures = tmp_path / "run", tmp_path / "figures"
    command = [
        *("llm", "--profile", "paper", "--model", "random:qwen3-1.7b/64", "--dataset", str(FIXTURE)),
        *("--steps", "2", "--seeds", "1", "--algo", "grpo", "--prompts", "2", "--group", "2"),
        *("--max-new-tokens", "8", "--rollout", "hf", "--out", str(out), "--figures", str(figures)),
        *("--quiet", "--threads", "1"),
    ]
    done = subprocess.run([sys.executable, "-m", "geobench", *command], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((out / "run.json").read_text())["config"]
    assert {k: config[k] for k in ("prompts_per_step", "group", "max_new_tokens", "steps")} == {
        "prompts_per_step": 2,
        "group": 2,
        "max_new_tokens": 8,
        "steps": 2,
    }
    assert (config["reward"], config["prompt_format"], config["data_epochs"], config["eval_split"]) == (
        "good-accuracy",
        "chat",
        4,
        "test",
    )
    assert config["lr"] == 2e-6 and config["levels"] == [3]  # the rest is the paper profile's
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(metrics["step"].unique()) == [0, 1, 2] and set(metrics["variant"]) == {"grpo"}
    assert {"heldout_accuracy", "reward_mean", "grad_norm", "accuracy"} <= set(metrics["metric"])
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["prompt"].startswith("<|im_start|>user\n") for s in samples)
    train = {p.prompt for p in load_math(str(FIXTURE), (3,)).problems}
    assert all(s["prompt"].split("\n", 1)[1].rsplit("<|im_end|>", 1)[0] in train for s in samples)
    assert (figures / "opo_table1.md").exists() and (figures / "opo_fig4.png").exists()
