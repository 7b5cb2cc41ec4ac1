"""Issue 21's probes of damaged files, models and teachers (items 14, 15, 17, 19): each is one line naming
the file and what is wrong, exit status 2, before any work, nothing written, nothing committed changed.

Every damaged file is a copy under tmp_path (of the tiny teacher, the tiny model or the committed warm
start), never the checkout's."""

import json
import os
import shutil
import sys

import pytest

from geobench.llm import hub
from geobench.llm import warmstart as warmstarts

pytestmark = pytest.mark.usefixtures("committed_unchanged")

LLM = ("llm", "--algo", "grpo", "--seeds", "1", "--steps", "1", "--no-draw", "--quiet")


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --- train-teacher --config (item 14) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[teachers.Hopper-v5]\nalgo = "ppo"\nsteps = 100\nbogus = 1\n', ["unknown setting 'bogus'"]),
        ('[teachers.Hopper-v5\nalgo = "ppo"\n', ["is not valid TOML"]),
        ('[teachers.Hopper-v5]\nalgo = "ppo"\nsteps = "100"\n', ["steps must be of type int", "'100'"]),
        ('[teachers.Hopper-v5]\nalgo = "ppo"\nsteps = 100\nhyperparams = {n_stepz = 3}\n', ["n_stepz is not", "PPO"]),
        ("[teachers]\nHopper-v5 = 3\n", ["[teachers.Hopper-v5] must be a table"]),
    ],
    ids=["unknown-key", "bad-toml", "string-steps", "unknown-sb3-hyperparam", "not-a-table"],
)
def test_a_bad_teacher_config_is_one_line_naming_it(refused, tmp_path, body, words):
    config = tmp_path / "teachers.toml"
    config.write_text(body)
    out = tmp_path / "teachers"
    line = refused("mujoco", "train-teacher", "--env", "Hopper-v5", "--config", str(config), "--out", str(out))
    assert "teachers.toml" in line and all(w in line for w in words), line
    assert not out.exists()


# --- teacher.json (items 14, 15) ----------------------------------------------------------------------


def _teacher_copy(tiny_teacher, tmp_path):
    root = tmp_path / "teachers"
    shutil.copytree(tiny_teacher, root)
    return root, root / "Hopper-v5" / "teacher.json"


def _distill(refused, root, tmp_path, *extra):
    out = tmp_path / "run"
    args = ("mujoco", "distill", "--env", "Hopper-v5", "--teachers", str(root), "--out", str(out), "--no-draw")
    line = refused(*args, "--steps", "2", "--seeds", "1", "--quiet", *extra)
    assert not out.exists()
    return line


def test_teacher_json_without_its_return_is_named(refused, tiny_teacher, tmp_path):
    root, record = _teacher_copy(tiny_teacher, tmp_path)
    info = json.loads(record.read_text())
    del info["eval_return_mean"]
    record.write_text(json.dumps(info))
    line = _distill(refused, root, tmp_path)
    assert str(record) in line and "has no 'eval_return_mean'" in line and "train-teacher" in line, line


def test_a_truncated_teacher_json_is_blamed_on_teacher_json_not_model_zip(refused, tiny_teacher, tmp_path):
    root, record = _teacher_copy(tiny_teacher, tmp_path)
    _truncate(record)
    line = _distill(refused, root, tmp_path)
    assert str(record) in line and "not valid JSON" in line and "model.zip" not in line, line


def test_distill_on_ray_without_ray_is_refused_before_collecting_states(refused, tiny_teacher, tmp_path, monkeypatch):
    import geobench.distill.sweep as distill_sweep

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed

    def collect(*args, **kwargs):
        raise AssertionError("states were collected before the executor was refused")

    monkeypatch.setattr(distill_sweep, "collect_states", collect)
    line = _distill(refused, tiny_teacher, tmp_path, "--executor", "ray")
    assert "--executor ray needs Ray" in line and "pip install" in line, line


def test_an_overwritten_teacher_folder_has_mkdirs_mode(tiny_teacher, tmp_path):
    from geobench.distill import teacher_training

    root, _ = _teacher_copy(tiny_teacher, tmp_path)
    config = teacher_training.TeacherConfig(
        env="Hopper-v5", algo="ppo", steps=256, eval_episodes=1, hyperparams={"n_steps": 128, "batch_size": 64}
    )
    teacher_training.train_teacher(config, root, show_progress=False, overwrite=True)
    umask = os.umask(0)
    os.umask(umask)
    assert (root / "Hopper-v5").stat().st_mode & 0o777 == 0o777 & ~umask  # 0755 under the usual umask 022
    assert json.loads((root / "Hopper-v5" / "teacher.json").read_text())["steps"] == 256


# --- warm start and model folders (items 14, 15) ------------------------------------------------------


@pytest.fixture
def warmstart_copy(tmp_path, monkeypatch):
    """The committed column-addition warm start copied under tmp_path, and the LLM run pointed at it."""
    root = tmp_path / "warmstart"
    shutil.copytree(warmstarts.WARMSTART_DIR / "column-addition", root / "column-addition")
    monkeypatch.setattr(warmstarts, "WARMSTART_DIR", root)
    return root / "column-addition"


def test_a_truncated_warmstart_json_is_named_not_rebuilt_over(refused, warmstart_copy, tmp_path):
    record = warmstart_copy / "warmstart.json"
    _truncate(record)
    damaged = record.read_bytes()
    line = refused(*LLM, "--dataset", "column-addition", "--out", str(tmp_path / "run"))
    assert str(record) in line and "not valid JSON" in line and "rebuild" in line, line
    assert record.read_bytes() == damaged and not (tmp_path / "run").exists()


def test_a_truncated_warmstart_model_is_one_line_before_the_cells(refused, warmstart_copy, tmp_path):
    weights = warmstart_copy / "model.safetensors"
    _truncate(weights)
    line = refused(*LLM, "--algo", "grpo,opo", "--dataset", "column-addition", "--out", str(tmp_path / "run"))
    assert str(weights) in line and "damaged" in line and "warm start" in line, line
    assert "cells failed" not in line and not (tmp_path / "run").exists()


def test_a_truncated_model_folder_is_one_line_before_the_cells(refused, tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    _truncate(model / "model.safetensors")
    line = refused(*LLM, "--algo", "grpo,opo", "--model", str(model), "--out", str(tmp_path / "run"))
    assert str(model / "model.safetensors") in line and "damaged" in line and "--model" in line, line
    assert "cells failed" not in line and not (tmp_path / "run").exists()


# --- --dataset files (items 14, 15) -------------------------------------------------------------------


def _rows(**row) -> str:
    return "".join(
        json.dumps({"problem": "1+1", "solution": "so \\boxed{2}", "level": "Level 1", **row}) + "\n" for _ in range(3)
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            _rows().encode() + b'{"problem": "\xff", "solution": "x", "level": "Level 1"}\n',
            ["not UTF-8", "0xff", "line 4"],
        ),
        # MATH-500 writes its levels as integers, which load (tests/test_llm_paper_profile.py); a float does not
        (_rows(level=1.5).encode(), ["level 1.5 (float)", '"Level N"']),
        (_rows(solution="it is 2").encode(), ["\\boxed{...}", "none of the 3 solutions"]),
        (_rows(level="Level 5").encode(), ["no problems at levels 1", "Level 5", "--levels"]),
    ],
    ids=["non-utf8-byte", "float-levels", "no-boxed", "other-levels"],
)
def test_a_bad_dataset_file_says_what_is_wrong(refused, tiny_model, tmp_path, content, words):
    data = tmp_path / "d.jsonl"
    data.write_bytes(content)
    line = refused(*LLM, "--dataset", str(data), "--levels", "1", "--model", tiny_model, "--out", str(tmp_path / "r"))
    assert str(data) in line and all(w in line for w in words), line
    assert not (tmp_path / "r").exists()


# --- the hub without network (item 15) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named", "how"),
    [
        (("--dataset", "column-addition", "--model", "Qwen/Qwen3-1.7B"), "Qwen/Qwen3-1.7B", "--local-dir"),
        (("--dataset", "math-lighteval"), "DigitalLearningGmbH/MATH-lighteval", "save_to_disk"),
    ],
    ids=["model", "dataset"],
)
def test_an_unreachable_hub_is_said_at_once(refused, monkeypatch, tmp_path, args, named, how):
    monkeypatch.setattr(hub, "_reachable", lambda endpoint: False)
    line = refused(*LLM, *args, "--out", str(tmp_path / "r"))
    assert named in line and "unreachable" in line and how in line and "HF_HUB_OFFLINE=1" in line, line


def test_offline_mode_without_the_model_in_the_cache_says_so(refused, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    name = "geobench-probe/no-such-model"
    line = refused(*LLM, "--dataset", "column-addition", "--model", name, "--out", str(tmp_path / "r"))
    assert name in line and "HF_HUB_OFFLINE is set" in line and "not in the local cache" in line, line


# --- a paper-size model on a CPU (item 17) ---------------------------------------------------------------


def test_the_training_memory_estimate_counts_weights_gradients_and_adamw():
    from geobench.llm.model import parameter_count, training_bytes

    parameters = parameter_count("random:qwen3-1.7b")  # on the meta device: nothing allocated
    assert 1.70e9 < parameters < 1.75e9  # Qwen3-1.7B, tied embeddings counted once
    assert training_bytes(parameters, "float32")[0] == parameters * 16  # 4 copies x 4 bytes: ~27.5 GB
    assert training_bytes(parameters, "bfloat16")[0] == parameters * 8
    assert training_bytes(parameters, "bfloat16", snapshot=True)[0] == parameters * 14


def test_a_model_too_large_for_the_machine_is_refused_with_its_estimate(refused, monkeypatch, tmp_path):
    import geobench.executor as executor

    monkeypatch.setattr(executor, "available_memory", lambda: 8 * 10**9)
    monkeypatch.setattr("geobench.llm.sweep._device", lambda: "cpu")
    args = (*LLM, "--dataset", "column-addition", "--model", "random:qwen3-1.7b", "--out", str(tmp_path / "r"))
    line = refused(*args)
    assert "27.5 GB" in line and "8.0 GB available" in line and "--allow-oversize" in line, line
    assert not (tmp_path / "r").exists()


def test_the_memory_check_counts_parallel_cells_and_yields_to_allow_oversize(monkeypatch):
    import geobench.executor as executor
    from geobench.executor import ExecutorConfig, check_memory

    monkeypatch.setattr(executor, "available_memory", lambda: 1000)
    with pytest.raises(executor.ConfigError, match="--allow-oversize"):
        check_memory(ExecutorConfig(), 10**6, 2, "a tiny model")
    check_memory(ExecutorConfig(allow_oversize=True), 10**6, 2, "a tiny model")
    check_memory(ExecutorConfig(), 500, 2, "a tiny model")  # fits: no refusal
    with pytest.raises(executor.ConfigError, match="2 cells at once"):
        check_memory(ExecutorConfig("processes", workers=4), 600, 2, "a tiny model")
