"""Objectives from outside the package: the worked example, entry points, --plugin, and bad plugins."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geobench import bandits
from geobench.config import experiment_file, load_config
from geobench.executor import ExecutorConfig
from geobench.objectives import REGISTRY, GroupBatch, load_plugin, make_objective
from tests.conftest import CISPO, cli_error

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a registry no other test has touched)."""
    environ = {k: v for k, v in os.environ.items() if k != "GEOBENCH_PLUGINS"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, "OMP_NUM_THREADS": "1", **env},
    )


def test_the_worked_example_registers_through_its_entry_point(tmp_path):
    # What `pip install -e examples/cispo` leaves behind, minus the build: a dist-info that
    # importlib.metadata finds on the path, declaring the entry point of examples/cispo/pyproject.toml.
    dist = tmp_path / "geobench_cispo-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: geobench-cispo\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text('[geobench.objectives]\ncispo = "geobench_cispo"\n'.replace('"', ""))
    path = os.pathsep.join([str(tmp_path), str(CISPO.parent), os.environ.get("PYTHONPATH", "")])
    proc = _python(
        "from geobench.objectives import REGISTRY, get_objective\n"
        "assert 'cispo' not in REGISTRY\n"
        "entry = get_objective('cispo')\n"  # a registry miss loads the entry points
        "print(entry.feedback, entry.defaults['clip_high'])",
        PYTHONPATH=path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["sampled", "0.28"]


def test_the_worked_example_registers_through_the_plugin_option():
    proc = subprocess.run(
        [sys.executable, "-m", "geobench", "objectives", "--plugin", str(CISPO)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "cispo" in proc.stdout


@pytest.mark.parametrize(
    "plugin, message",
    [
        ("bad_feedback.py", "bad-feedback: feedback must be one of sampled, pairwise, listwise; got 'online'"),
        ("clash.py", "objective 'grpo' is already registered"),
        ("broken_import.py", "failed to import (ModuleNotFoundError: No module named 'geobench_no_such_module')"),
        ("no_such_file.py", "no such file; give a .py file or an importable module name"),
    ],
)
def test_a_bad_plugin_is_refused_in_one_line(plugin, message):
    line = cli_error("objectives", "--plugin", str(PLUGINS / plugin))
    assert line.startswith(f"geobench: error: plugin {PLUGINS / plugin}") and message in line


def test_a_refused_plugin_leaves_none_of_its_objectives_registered():
    with pytest.raises(ValueError, match="already registered"):
        load_plugin(str(PLUGINS / "clash.py"))
    assert "fresh-name" not in REGISTRY
    assert REGISTRY["grpo"].paper.startswith("Shao et al.")


def test_a_broken_plugin_is_named_not_taken_for_an_unknown_name():
    broken = PLUGINS / "broken_import.py"
    proc = _python("from geobench.bandits.train import get_method\nget_method('nosuch')", GEOBENCH_PLUGINS=str(broken))
    assert f"plugin {broken} failed to import (ModuleNotFoundError" in proc.stderr
    assert "unknown bandit method" not in proc.stderr


def test_a_plugin_file_is_exported_to_workers():
    proc = _python(
        f"from geobench.objectives import load_plugin\nimport os\nload_plugin({str(CISPO)!r})\n"
        "print(os.environ['GEOBENCH_PLUGINS'])"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(CISPO)


def test_cispo_gradient_is_the_clipped_weight_times_the_advantage_on_every_token(cispo):
    """d loss / d logp_t = -min(r_t, 1 + eps_high) A / N: nonzero where GRPO's clip zeroes it."""
    torch.manual_seed(0)
    old = torch.randn(3, 4, 5, dtype=torch.float64)
    logp = (old + torch.tensor([-0.5, 0.0, 0.1, 0.6], dtype=torch.float64).view(1, 4, 1)).requires_grad_(True)
    rewards = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    batch = GroupBatch(logp, torch.ones_like(logp), rewards, old_logp=old)
    (grad,) = torch.autograd.grad(cispo(batch)[0], logp)
    adv = batch.advantage("zscore").unsqueeze(-1)
    weight = (logp - old).exp().clamp(max=1.28).detach()
    torch.testing.assert_close(grad, -weight * adv / logp.numel())
    (grpo_grad,) = torch.autograd.grad(make_objective("grpo")(batch)[0], logp)
    clipped = ((logp - old).exp() > 1.2) & (adv > 0)
    assert (grpo_grad[clipped] == 0).all() and (grad[clipped] != 0).all()
    inside = ((logp - old).exp() - 1).abs() < 0.2
    torch.testing.assert_close(grad[inside], grpo_grad[inside])  # r grad log pi = grad r inside the window


def test_an_objective_outside_a_table_runs_with_its_feedbacks_anchor(cispo):
    from geobench.bandits.train import Method, get_method
    from geobench.distill.sweep import DistillConfig
    from geobench.errors import ConfigError

    assert get_method("cispo") == Method("cispo", "sampled", "old")
    assert get_method("sft") == Method("sft", "listwise", "reference")
    with pytest.raises(ConfigError, match="'cispo';.* or a listwise objective"):
        DistillConfig(methods=("cispo",))  # the teacher scores every candidate: listwise feedback only
    assert DistillConfig(methods=("sft",)).methods == ("sft",)


def test_a_plugin_objective_runs_in_spawned_workers(cispo, tmp_path):
    config = load_config(bandits.BanditConfig, experiment_file("adpo_fig2"), "quick")
    config = dataclasses.replace(
        config, noises=("cauchy",), levels=("light", "heavy"), methods=("cispo",), hidden=(16,), seeds=2, steps=3,
        eval_every=3, eval_contexts=64,
    )  # fmt: skip
    csv = bandits.run(config, tmp_path, show_progress=False, executor=ExecutorConfig("processes", workers=2))
    assert csv.exists() and "cispo" in csv.read_text()
