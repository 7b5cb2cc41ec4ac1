"""The verl runs of the papers: hydra overrides per run and algorithm, and the data they train on.

``experiments/verl/<run>.toml`` names the LLM experiment and profile the run is (``llm``,
``profile``: the same resolved :class:`~geobench.llm.settings.LLMConfig` ``geobench llm`` runs),
the GPUs, and the overrides only verl has (``machine``: vLLM, parallelism, logging). Every
setting the loop also has is generated from that config (:mod:`geobench.integrations.verl_fields`),
so the two paths cannot drift apart. Nothing here imports verl: the command is built on any
machine, run on a GPU one.
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pandas as pd

from geobench.config import EXPERIMENTS_DIR, load_config
from geobench.errors import ConfigError
from geobench.integrations.verl_fields import departures, generated
from geobench.llm.settings import LLMConfig
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


def llm_config(run: str) -> LLMConfig:
    """The resolved LLMConfig of the run: the same one ``geobench llm --profile <profile>`` runs."""
    spec = _spec(run)
    return load_config(LLMConfig, EXPERIMENTS_DIR / f"{spec['llm']}.toml", spec["profile"])


def algos_of(run: str) -> list[str]:
    return list(llm_config(run).algos)


def overrides(run: str, algo: str, data_dir: str | Path = "~/data/geobench", gpus: int | None = None) -> list[str]:
    """The hydra overrides of ``verl.trainer.main_ppo`` for one algorithm of a paper run on ``gpus``
    GPUs (the run's ``n_gpus`` by default: the per-GPU micro-batch of a mini-batch statistic depends on it)."""
    spec = _spec(run)
    data = data_folder(run, data_dir)
    files = [f"data.train_files={data / 'train.parquet'}", f"data.val_files={data / 'test.parquet'}"]
    reward = [f"reward.custom_reward_function.path={REWARD_FILE}", "reward.custom_reward_function.name=compute_score"]
    gpus = int(spec["n_gpus"]) if gpus is None else gpus
    if gpus < 1:
        raise ConfigError(f"--gpus must be >= 1; got {gpus}")
    own = generated(llm_config(run), algo, gpus)
    machine = [*spec["machine"], f"trainer.n_gpus_per_node={gpus}"]
    return [*files, *reward, *own, *machine, f"trainer.experiment_name={run}-{algo}"]


def command(run: str, algo: str, data_dir: str | Path = "~/data/geobench", gpus: int | None = None) -> str:
    return shlex.join(["python3", "-m", "verl.trainer.main_ppo", *overrides(run, algo, data_dir, gpus)])


def departures_of(run: str, algo: str) -> list[str]:
    """Each setting the verl run keeps fixed where the loop adapts it (the CLI prints them on stderr)."""
    return departures(llm_config(run), algo)


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
