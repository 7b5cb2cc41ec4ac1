"""The experiment catalog: each experiment geobench runs, named once, as data.

An entry holds what the command line, ``make reproduce`` and the battery need to run an
experiment and draw it: its name (the CLI command, the results folder ``results/<name>[-paper]``
and the CSV's ``experiment`` column), the TOML file of its profiles, its config class and run
function, the report function that draws one of its run folders, and what the battery needs to
put an objective through it. Classes and functions are named ``module:attribute`` and imported
when used, so importing the catalog imports no experiment.

Every experiment's run function has one signature:
``run(config, out, *, profile, show_progress, executor, rerun) -> Path`` (its merged CSV), and its
``run_inputs(config)`` names the inputs its cells read besides the config (:mod:`geobench.identity`),
from which a finished run is known to be the one this code would write (:meth:`Experiment.reusable`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geobench.config import experiment_file, load_config
from geobench.errors import BadLoss

if TYPE_CHECKING:
    from geobench.executor import ExecutorConfig


@dataclass(frozen=True)
class Experiment:
    """One experiment of the catalog."""

    name: str
    artifact: str  # experiments/<artifact>.toml, its profiles
    title: str  # the heading of its section in a battery card
    config: str  # its frozen config dataclass, "module:Class"
    runner: str  # its run function, "module:function"
    draw: str  # "module:function" drawing one run folder: (run_folder, figures) -> written paths
    methods_field: str  # the config setting listing the methods it compares
    feedback: tuple[str, ...]  # the feedback an objective must declare to run in it
    why_not: str = ""  # a battery card's sentence for an objective whose feedback it cannot give
    inputs: str = ""  # "module:function": config -> the union of its cells' inputs (name -> digest)

    @property
    def config_class(self) -> type:
        return _attribute(self.config)

    def load(self, profile: str, overrides: dict[str, Any] | None = None, path: Path | None = None) -> Any:
        """Its config: ``profile`` of ``path`` (default: its own TOML file) with ``overrides`` merged in."""
        return load_config(self.config_class, path or experiment_file(self.artifact), profile, overrides)

    def run(
        self,
        config: Any,
        out: Path,
        *,
        profile: str = "custom",
        show_progress: bool = True,
        executor: ExecutorConfig | None = None,
        rerun: bool = False,
    ) -> Path:
        """Run (or resume) ``config`` into the folder ``out``; returns the merged CSV. ``rerun``
        recomputes every cell instead of reusing the finished ones. An objective's bad loss
        (:class:`~geobench.errors.BadLoss`) is one line naming this experiment."""
        pool = {} if executor is None else {"executor": executor}
        try:
            return _attribute(self.runner)(
                config, out, profile=profile, show_progress=show_progress, rerun=rerun, **pool
            )
        except BadLoss as error:
            raise BadLoss(f"{self.name}: {error}") from None

    def identity(self, config: Any) -> str:
        """The identity a finished run of ``config`` records in its ``run.json`` at this code and with
        the inputs on disk now: its config hash and the union of its cells' inputs."""
        from geobench.identity import run_identity
        from geobench.results import config_hash  # pandas: imported when used, not with the catalog

        return run_identity(config_hash(config), _attribute(self.inputs)(config) if self.inputs else {})

    def reusable(self, run_folder: Path, config: Any) -> bool:
        """Whether the finished run in ``run_folder`` is the one ``config`` would write now: same
        identity, so no input (an objective's code, a teacher, a model, a dataset, a package
        version) changed since it ran. The battery's baselines reuse a committed run only then."""
        from geobench.results import config_hash, read_meta

        meta = read_meta(run_folder) or {}
        return meta.get("config_hash") == config_hash(config) and meta.get("identity") == self.identity(config)

    def draw_run(self, run_folder: Path, figures: Path) -> list[Path]:
        """Its figures and tables from one run folder."""
        return _attribute(self.draw)(run_folder, figures)


def _attribute(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


TOY = Experiment(
    name="toy-saturation",
    artifact="opo_fig3",
    title="Toy saturation (OPO Fig. 3)",
    config="geobench.toy:ToyConfig",
    runner="geobench.toy:run",
    inputs="geobench.toy:run_inputs",
    draw="geobench.report:draw_toy",
    methods_field="objectives",
    feedback=("sampled", "pairwise", "listwise"),
)
BANDITS = Experiment(
    name="bandits",
    artifact="adpo_fig2",
    title="Noisy bandits and model scaling (ADPO Fig. 2)",
    config="geobench.bandits.sweep:BanditConfig",
    runner="geobench.bandits.sweep:run",
    inputs="geobench.bandits.sweep:run_inputs",
    draw="geobench.report:draw_bandits",
    methods_field="methods",
    feedback=("sampled", "pairwise", "listwise"),
)
MUJOCO = Experiment(
    name="mujoco",
    artifact="adpo_table2",
    title="MuJoCo distillation (ADPO Table 2)",
    config="geobench.distill.sweep:DistillConfig",
    runner="geobench.distill.sweep:run",
    inputs="geobench.distill.sweep:run_inputs",
    draw="geobench.report:draw_mujoco",
    methods_field="methods",
    feedback=("listwise",),
    why_not="the teacher scores every candidate action, which is listwise feedback",
)
LLM = Experiment(
    name="llm",
    artifact="opo_table1",
    title="LLM math RL, quick regime (OPO Table 1, ADPO Fig. 3)",
    config="geobench.llm.settings:LLMConfig",
    runner="geobench.llm.sweep:run",
    inputs="geobench.llm.sweep:run_inputs",
    draw="geobench.report:draw_llm",
    methods_field="algos",
    feedback=("sampled", "listwise"),
    why_not="the verifier gives one reward per sampled completion, which is sampled or listwise feedback",
)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (TOY, BANDITS, MUJOCO, LLM)}
# A measurement, not an experiment an objective is put through: ``make reproduce`` runs it as a
# stage and the LLM report judges ADPO Table 4's timing claim on it; the CLI and battery do not list it.
UPDATE_TIME = Experiment(
    name="llm-update-time",
    artifact="adpo_table4",
    title="Actor update time, interleaved (ADPO Table 4)",
    config="geobench.llm.update_timing:UpdateTimingConfig",
    runner="geobench.llm.update_timing:run",
    draw="geobench.llm.update_timing:draw",
    methods_field="algos",
    feedback=(),
)
