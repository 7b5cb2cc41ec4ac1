"""Shared fixtures: a ragged random group batch, running the CLI for its error line, and a guard that a
probe leaves the committed artifacts as they were."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geobench.objectives import REGISTRY, GroupBatch, load_plugin, make_objective, plugins


def random_batch(b: int = 3, g: int = 4, t: int = 6, seed: int = 0, spread: float = 0.3) -> GroupBatch:
    """Log-probs with ragged masks (every sequence keeps >= 1 token), old/ref perturbed."""
    gen = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(b, g, t, generator=gen) * 3).requires_grad_(True)
    lengths = torch.randint(1, t + 1, (b, g), generator=gen)
    mask = (torch.arange(t) < lengths.unsqueeze(-1)).float()
    old = logp.detach() + spread * torch.randn(b, g, t, generator=gen)
    ref = logp.detach() + spread * torch.randn(b, g, t, generator=gen)
    rewards = torch.randint(0, 3, (b, g), generator=gen).float()
    return GroupBatch(logp=logp, mask=mask, rewards=rewards, old_logp=old, ref_logp=ref)


@pytest.fixture
def batch() -> GroupBatch:
    return random_batch()


def cli_error(*args: str) -> str:
    """Run ``python -m geobench *args``; assert it fails with exit 2 and exactly one line, returned."""
    proc = subprocess.run([sys.executable, "-m", "geobench", *args], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("geobench: error: "), proc.stderr
    return lines[0]


@pytest.fixture
def refused(monkeypatch, capsys):
    """``refused(*args)`` runs ``geobench *args`` in this process (no interpreter start, so a probe that is
    refused before any work takes milliseconds); asserts exit status 2 and one line on stderr, returned."""
    from geobench.cli.main import main

    def run(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", ["geobench", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert exited.value.code == 2, err
        assert len(lines) == 1 and lines[0].startswith("geobench: error: "), err
        return lines[0]

    return run


_REPO = Path(__file__).resolve().parents[1]
_COMMITTED = ("figures", "experiments", "results")


def _snapshot() -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every file under the committed folders, by path: a write, a rewrite with the
    same bytes, a new file or a removed one all change it."""
    found = {}
    for root in _COMMITTED:
        for folder, _, names in os.walk(_REPO / root):
            for name in names:
                stat = os.stat(Path(folder) / name)
                found[os.path.relpath(Path(folder) / name, _REPO)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture
def committed_unchanged():
    """Fails the test if it wrote, touched, added or removed anything under figures/, experiments/ or
    results/ of the checkout: a refused or scratch run must leave the committed artifacts alone."""
    before = _snapshot()
    yield
    after = _snapshot()
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"the test changed committed files: {changed[:10]}"


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    """A Hopper-v5 PPO teacher trained for 512 steps: real files, seconds to make."""
    from geobench.distill import teacher_training

    root = tmp_path_factory.mktemp("teachers")
    config = teacher_training.TeacherConfig(
        env="Hopper-v5",
        algo="ppo",
        steps=512,
        normalize=True,
        eval_episodes=2,
        hyperparams={"n_steps": 256, "batch_size": 64, "n_epochs": 1},
    )
    info = teacher_training.train_teacher(config, root, show_progress=False)
    assert {"eval_return_mean", "train_wall_time_s", "versions"} <= set(info)
    assert (root / "Hopper-v5" / "training_log.csv").exists() and (root / "Hopper-v5" / "vecnormalize.pkl").exists()
    return root


@pytest.fixture
def tiny_distill(tiny_teacher):
    """A distillation config that runs in seconds on the tiny teacher (6 steps, 2 seeds)."""
    from geobench.distill.sweep import DistillConfig

    return DistillConfig(
        envs=("Hopper-v5",),
        seeds=2,
        steps=6,
        eval_every=3,
        train_states=200,
        eval_states=50,
        eval_episodes=2,
        collect_envs=2,
        teachers_dir=str(tiny_teacher),
    )


def _tiny_shape():
    from geobench.llm.model import TinyQwen3

    return TinyQwen3(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, max_positions=96)


TINY = _tiny_shape()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A random tiny Qwen3 with the project's tokenizer, saved like a checkpoint."""
    from geobench.llm.model import save_policy, tiny_qwen3
    from geobench.llm.tokenizer import char_tokenizer

    folder = tmp_path_factory.mktemp("tiny-qwen3")
    tokenizer = char_tokenizer()
    save_policy(tiny_qwen3(tokenizer, TINY, seed=0), tokenizer, folder)
    return str(folder)


def tiny_llm_config(model: str, **overrides):
    """Two RL steps of every algorithm on 2 prompts x 3 samples: seconds on a CPU."""
    from geobench.llm import LLMConfig

    base = dict(
        model=model,
        seeds=1,
        steps=2,
        prompts_per_step=2,
        group=3,
        max_new_tokens=4,
        eval_every=1,
        eval_prompts=4,
        minibatches=2,
    )
    return LLMConfig(**{**base, **overrides})


CISPO = Path(__file__).resolve().parents[1] / "examples" / "cispo" / "geobench_cispo.py"


@pytest.fixture
def register_plugin(monkeypatch):
    """``register_plugin(path)`` loads a plugin for one test; the registry, the plugin cache and
    ``$GEOBENCH_PLUGINS`` are restored after it."""
    before = set(REGISTRY)
    monkeypatch.setattr(plugins, "_loaded", {})
    monkeypatch.setenv("GEOBENCH_PLUGINS", "")
    yield lambda path: load_plugin(str(path))
    for name in set(REGISTRY) - before:
        del REGISTRY[name]


@pytest.fixture
def cispo(register_plugin):
    """CISPO (the worked example) registered for one test."""
    register_plugin(CISPO)
    return make_objective("cispo")
