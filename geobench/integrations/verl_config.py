"""The verl runs of the papers: hydra overrides per run and algorithm, and the data they train on.

``experiments/verl/<run>.toml`` lists the overrides every algorithm of a paper run shares
(``common``) and each algorithm's own (``[algos]``), each quoted from the paper or marked as
ours. Nothing here imports verl: the command is built on any machine, run on a GPU one.
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pandas as pd

from geobench.config import EXPERIMENTS_DIR
from geobench.errors import ConfigError
from geobench.llm.tasks import load_math
from geobench.results import atomic_write_bytes

VERL_DIR = EXPERIMENTS_DIR / "verl"
REWARD_FILE = Path(__file__).resolve().parent / "verl_reward.py"


def runs() -> list[str]:
    return sorted(p.stem for p in VERL_DIR.glob("*.toml"))


def _spec(run: str) -> dict:
    # Membership, not the file's existence: the name also becomes a data folder, and '../verl/x' must not.
    if run not in runs():
        raise ConfigError(f"no verl run {run!r}; valid: {', '.join(runs()) or 'none'}")
    return tomllib.loads((VERL_DIR / f"{run}.toml").read_text())


def data_folder(run: str, data_dir: str | Path) -> Path:
    """Where the parquet of a paper run lives: its own folder under ``data_dir``."""
    _spec(run)
    return Path(data_dir).expanduser() / run


def algos_of(run: str) -> list[str]:
    return list(_spec(run).get("algos", {}))


def overrides(run: str, algo: str, data_dir: str | Path = "~/data/geobench") -> list[str]:
    """The hydra overrides of ``verl.trainer.main_ppo`` for one algorithm of a paper run."""
    spec = _spec(run)
    algos = spec.get("algos", {})
    if algo not in algos:
        raise ConfigError(f"{run} has no algorithm {algo!r} for verl; valid: {', '.join(algos)}")
    data = data_folder(run, data_dir)
    files = [f"data.train_files={data / 'train.parquet'}", f"data.val_files={data / 'test.parquet'}"]
    reward = [f"reward.custom_reward_function.path={REWARD_FILE}", "reward.custom_reward_function.name=compute_score"]
    return [*files, *reward, *spec["common"], *algos[algo], f"trainer.experiment_name={run}-{algo}"]


def command(run: str, algo: str, data_dir: str | Path = "~/data/geobench") -> str:
    return shlex.join(["python3", "-m", "verl.trainer.main_ppo", *overrides(run, algo, data_dir)])


def export_data(dataset: str, levels: tuple[int, ...], out: Path, test_fraction: float = 0.05) -> list[Path]:
    """MATH problems as verl's RL parquet (chat prompt, data_source, reward_model.ground_truth)."""
    task = load_math(dataset, levels)
    rows = [
        {
            "data_source": "geobench/math",
            "prompt": [{"role": "user", "content": p.prompt}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": p.answer},
            "extra_info": {"index": i, "level": p.level},
        }
        for i, p in enumerate(task.problems)
    ]
    cut = max(1, int(len(rows) * test_fraction)) if len(rows) > 1 else 0
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "train.parquet", out / "test.parquet"]
    for path, part in zip(paths, (rows[cut:] or rows, rows[:cut] or rows), strict=True):
        atomic_write_bytes(path, pd.DataFrame(part).to_parquet())  # bytes in memory, then one rename
    return paths
