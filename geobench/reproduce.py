"""``make reproduce``: every experiment of a profile in order, then every figure, table and the report.

Each stage is an experiment's own ``run(config)``; the sweeps resume their finished cells,
so rerunning after an interruption picks up where it stopped. Between stages a rule line
says which stage runs, which are left and the elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from geobench.config import experiment_file, load_config
from geobench.executor import ExecutorConfig
from geobench.objectives.opo_authors import AUTHORS_CODE
from geobench.results import profile_folder

# The ADPO bandit ablation: these methods rerun with pi_old as their anchor.
ADPO_BANDIT = ("adpo-listwise-raw", "adpo-listwise-rank", "adpo-pairwise")


@dataclass(frozen=True)
class Stage:
    name: str
    out: str  # run folder under results/
    run: Callable[[str, Path, bool, ExecutorConfig], Path]  # (profile, out, show_progress, executor) -> CSV
    profiles: tuple[str, ...] = ("quick", "paper")
    gpu_profiles: tuple[str, ...] = ()  # profiles in which this stage needs a GPU (skipped without one)


def _toy(profile: str, out: Path, progress: bool, executor: ExecutorConfig) -> Path:
    from geobench import toy

    return toy.run(
        load_config(toy.ToyConfig, experiment_file("opo_fig3"), profile), out, profile=profile, show_progress=progress
    )


def _bandits(overrides: dict[str, Any]) -> Callable[[str, Path, bool, ExecutorConfig], Path]:
    def go(profile: str, out: Path, progress: bool, executor: ExecutorConfig) -> Path:
        from geobench import bandits

        config = load_config(bandits.BanditConfig, experiment_file("adpo_fig2"), profile, overrides)
        return bandits.run(config, out, profile=profile, show_progress=progress, executor=executor)

    return go


def _mujoco(profile: str, out: Path, progress: bool, executor: ExecutorConfig) -> Path:
    from geobench.distill import sweep

    config = load_config(sweep.DistillConfig, experiment_file("adpo_table2"), profile)
    return sweep.run(config, out, profile=profile, show_progress=progress, executor=executor)


# The stress ablation (ours): where collapse can happen, to test "GRPO collapses near step 40"
# (ADPO Fig. 3a) and "OPO's gradients stay large but non-exploding" (OPO Sec. 9) off the main run.
STRESS_ALGOS = ("grpo", "opo", "adpo")
STRESS = {"lr": 1e-3, "steps": 60, "seeds": 3}  # 3.3x the main run's lr; shorter and fewer seeds to fit the budget


def _llm(name: str, algos: tuple[str, ...] | None = None, hparams: dict | None = None, overrides: dict | None = None):
    def go(profile: str, out: Path, progress: bool, executor: ExecutorConfig) -> Path:
        from geobench import llm

        config = load_config(llm.LLMConfig, experiment_file(name), profile, {"algos": algos, **(overrides or {})})
        if hparams:
            merged = {a: {**config.hparams.get(a, {}), **hparams.get(a, {})} for a in {*config.hparams, *hparams}}
            config = replace(config, hparams=merged)
        return llm.run(config, out, profile=profile, show_progress=progress, executor=executor)

    return go


STAGES = (
    Stage("OPO Fig. 3: toy saturation", "toy-saturation", _toy),
    Stage("ADPO Fig. 2: bandits + scaling", "bandits", _bandits({"scaling": True})),
    Stage(
        "ADPO Fig. 2 ablation: on-policy anchor",
        "bandits-onpolicy-anchor",
        _bandits({"methods": ADPO_BANDIT, "anchors": {m: "old" for m in ADPO_BANDIT}}),
    ),
    Stage("ADPO Table 2: MuJoCo distillation", "mujoco", _mujoco),
    Stage("OPO Table 1 / Figs. 4-7 (+ ADPO Fig. 3 quick): LLM RL", "llm", _llm("opo_table1"), gpu_profiles=("paper",)),
    Stage(
        "OPO in App. A.3's form: LLM RL without the pi_ref escort factor",
        "llm-opo-escort-no-ref",
        _llm("opo_table1", ("opo",), {"opo": {"escort_ref": False}}),
        ("quick",),
    ),
    Stage(
        "OPO as the authors' verl fork computes it, with their configuration: LLM RL",
        "llm-opo-code",
        _llm("opo_table1", ("opo",), {"opo": dict(AUTHORS_CODE)}),
        ("quick",),
    ),
    Stage(
        "LLM stress ablation: 3.3x learning rate",
        "llm-stress",
        _llm("opo_table1", STRESS_ALGOS, overrides=STRESS),
        ("quick",),
    ),
    Stage("ADPO Fig. 3 / Table 4: LLM RL (paper settings)", "llm-adpo", _llm("adpo_fig3"), ("paper",), ("paper",)),
)


def reproduce(
    profile: str,
    results: Path,
    figures: Path,
    show_progress: bool = True,
    executor: ExecutorConfig = ExecutorConfig(),
) -> Path:
    """Run every stage of ``profile``, then draw everything and write ``results/REPORT.md``."""
    from geobench.report import build_all, write_report

    console = Console(stderr=True)
    stages = [s for s in STAGES if profile in s.profiles]
    start = time.time()
    for i, stage in enumerate(stages, 1):
        left = ", ".join(s.out for s in stages[i:]) or "figures and report"
        console.rule(
            f"[bold][{i}/{len(stages)}] {stage.name}[/] | elapsed {_clock(time.time() - start)} | then: {left}"
        )
        if profile in stage.gpu_profiles and not _has_gpu():
            console.print(f"[yellow]skipped {stage.out}[/]: the {profile} profile of this stage needs a CUDA GPU")
            continue
        csv = stage.run(profile, results / profile_folder(stage.out, profile), show_progress, executor)
        console.print(f"wrote {csv}")
    console.rule(f"[bold]figures and report[/] | elapsed {_clock(time.time() - start)}")
    written, skipped = build_all(results, figures)
    for name, why in skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {why}")
    report = write_report(results, figures)
    console.rule(f"[bold]done[/] in {_clock(time.time() - start)}: {len(written)} figures/tables, {report}")
    return report


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{secs:02d}"
