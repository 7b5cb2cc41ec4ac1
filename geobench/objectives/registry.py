"""The objective registry: one name per objective, used verbatim everywhere.

The registry key is the CLI's ``--algo``/``--methods`` value, the config files' name, the
CSV ``variant`` column and the figure legend. Each entry carries the pure loss function,
its hyperparameter defaults (read from the function's signature, optionally overridden
per entry, e.g. ``grpo`` vs ``ppo``), and its geometry, from which the papers' taxonomy
tables are generated.

Validation lives here, not in the loss functions: :meth:`Objective.bind` checks names and
ranges once, so the functions themselves stay branch-free on the hot path.

A *variant* (:func:`variant`) is an objective's loss under another name with some
hyperparameters fixed: the name the experiments' CSVs and legends use (``adpo-listwise-raw``
is ADPO with a softmax target), so that it runs the same from any config, with or without a
hyperparameter table, and has its own taxonomy row.

An objective whose loss needs a statistic of the whole mini-batch (OPO's escort
normalisation, Sec. 4.1) registers a ``prepare`` function: the trainer calls it once on the
whole mini-batch, from quantities fixed during the update, before splitting it into
micro-batches; the loss then reads the result from the batch. What the RL loop does around
the loss (filtering groups, overlong handling, an adaptive temperature) is the entry's
:class:`Recipe`, so the loop reads a declaration, never an objective's name.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from geobench.errors import ConfigError, SettingError, nearest
from geobench.objectives.advantages import ADVANTAGE_MODES, TARGETS
from geobench.objectives.aggregation import AGG_MODES
from geobench.objectives.checks import (
    call_loss,
    check_type,
    require_finite_loss,
    same_source,
    source_file,
)

LossFn = Callable[..., tuple[Tensor, dict[str, Tensor]]]
PrepareFn = Callable[..., Any]  # (batch, **hparams) -> batch with whole-mini-batch fields filled in
FEEDBACK = ("sampled", "pairwise", "listwise")
# A name is a CLI list item, a CSV value and part of a file name: no commas, '=', spaces or slashes.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class Geometry:
    """Where an objective sits in the papers' taxonomies.

    ``sampling`` and ``optimization`` are the columns of OPO Table 2; ``coordinates``,
    ``target`` and ``behavior`` those of ADPO Table 1; ``space``, ``center``, ``metric`` and
    ``trust_region`` those of ADPO Table 3.
    """

    sampling: str
    optimization: str
    coordinates: str
    target: str
    behavior: str = ""
    space: str = ""
    center: str = ""
    metric: str = ""
    trust_region: str = ""


@dataclass(frozen=True)
class Range:
    """A closed or open real interval for a hyperparameter."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Infinite ends are always open (the interval is printed so); NaN is never inside."""
        above = value > self.low if self.low_open or self.low == -math.inf else value >= self.low
        below = value < self.high if self.high_open or self.high == math.inf else value <= self.high
        return above and below

    def __str__(self) -> str:
        left = "(" if self.low_open or self.low == -math.inf else "["
        right = ")" if self.high_open or self.high == math.inf else "]"
        return f"{left}{_fmt(self.low)}, {_fmt(self.high)}{right}"


def _fmt(x: float) -> str:
    return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"


POSITIVE = Range(0.0, low_open=True)
UNIT = Range(0.0, 1.0)
NONNEG = Range(0.0)

# Valid values by hyperparameter name, shared by every objective that takes the name.
BOUNDS: dict[str, Range | tuple[str, ...]] = {
    "alpha": UNIT,
    "mu": POSITIVE,
    "tau": POSITIVE,
    "beta": POSITIVE,
    "beta_r": POSITIVE,
    "temperature": POSITIVE,
    "label_temperature": POSITIVE,
    "clip_low": Range(0.0, 1.0, high_open=True),
    "clip_high": NONNEG,
    "dual_clip": Range(1.0, low_open=True),
    "label_smoothing": Range(0.0, 0.5),
    "agg": AGG_MODES,
    "advantage": ADVANTAGE_MODES,
    "target": TARGETS,
    "drive": ("escort", "advantage", "code", "v5"),
    "escort_norm": ("batch", "group", "zscore"),
    "reward_temperature": POSITIVE,
    "ratio": ("log", "exact"),
    "seq_logratio": ("sum", "mean"),
    "kl_estimator": ("k1", "k3"),
}


@dataclass(frozen=True)
class Recipe:
    """What an RL loop does around an objective's loss, declared with the objective so that any
    objective, a plugin's included, can opt in. The LLM loops (``geobench.llm``) read it; each
    part also has a run-wide switch in their settings, named here.

    - ``filter_groups``: drop the groups that carry no group-relative signal (all G rewards, or
      all G correctness values, equal) and sample more until the batch is full (DAPO Eq. 11 and
      Algorithm 1's dynamic sampling; ``dynamic_sampling``, ``filter_metric``, ``max_gen_batches``).
    - ``overlong``: DAPO Sec. 3.4's overlong handling: truncated completions masked out of the
      loss (``overlong_filter``) and Eq. 13's soft punishment added to the rewards
      (``overlong_cache`` tokens).
    - ``adaptive_temperature``: the hyperparameter an adaptive temperature sets every step, or
      None: ``"tau"``, an anchoring temperature (ADPO Eq. 12's guard, or the per-prompt rule of
      the authors' recipe), or ``"temperature"``, an escort temperature (OPO Sec. 9.1's "adaptive
      tau", read as Eq. 12's guard on T or as the OPO authors' rule; ``opo_tau_rule``).
    """

    filter_groups: bool = False
    overlong: bool = False
    adaptive_temperature: str | None = None


@dataclass(frozen=True)
class BoundObjective:
    """An objective with validated hyperparameters: ``loss, metrics = bound(batch)``.

    Every call checks that the loss is a scalar, the first one that it is finite
    (:mod:`geobench.objectives.loss_check`), so no experiment repeats the check."""

    fn: LossFn
    hparams: dict[str, Any]
    prepare_fn: PrepareFn | None = None
    name: str = ""
    # [True] until a call's loss was read finite; a list so that the frozen dataclass can flip it
    _unchecked: list[bool] = field(default_factory=lambda: [True], init=False, repr=False, compare=False)

    def __call__(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        loss, metrics = call_loss(self.name or self.fn.__name__, self.fn, batch, self.hparams)
        self.require_finite(loss)
        return loss, metrics

    def require_finite(self, loss: Tensor) -> None:
        """On the first call that can read it, one line if ``loss`` (or a (S,) stack of them) is not finite."""
        if self._unchecked[0]:
            self._unchecked[0] = not require_finite_loss(self.name or self.fn.__name__, loss)

    @property
    def prepares(self) -> bool:
        """Whether the loss reads a whole-mini-batch statistic that :meth:`prepare` fills in."""
        return self.prepare_fn is not None

    def prepare(self, batch: Any) -> Any:
        """``batch`` with its whole-mini-batch fields (e.g. ``drive``) filled in; itself if none."""
        return batch if self.prepare_fn is None else self.prepare_fn(batch, **self.hparams)

    def for_contexts(self, index: Tensor) -> BoundObjective:
        """The same objective for the contexts at ``index`` (B,) of its batch: per-context (B,)
        tensor hyperparameters (ADPO's per-prompt tau) are sliced with it, the rest kept."""
        per_context = {k: v[index] for k, v in self.hparams.items() if isinstance(v, Tensor) and v.dim() == 1}
        return self if not per_context else dataclasses.replace(self, hparams={**self.hparams, **per_context})


@dataclass(frozen=True)
class Objective:
    """A registered objective: ``bind(**hparams)`` gives a validated ``batch -> (loss, metrics)``."""

    name: str
    fn: LossFn
    geometry: Geometry
    feedback: str
    paper: str
    defaults: dict[str, Any] = field(default_factory=dict)
    prepare: PrepareFn | None = None
    base: str = ""  # a variant's objective ("" for an objective in its own right)
    fixed: dict[str, Any] = field(default_factory=dict)  # a variant's hyperparameters, not to be changed
    recipe: Recipe = Recipe()

    def validate(self, hparams: dict[str, Any]) -> dict[str, Any]:
        """Defaults merged with ``hparams``, after checking every name and range. A variant's fixed
        hyperparameter may be restated (a config that records it), never changed."""
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"{self.name}: unknown hyperparameter {unknown[0]!r}; valid: {valid}")
        for key, value in hparams.items():
            if key in self.fixed and (isinstance(value, Tensor) or value != self.fixed[key]):
                raise ConfigError(
                    f"{self.name}: {key} is fixed at {self.fixed[key]!r} ({self.name} is {self.base} with "
                    f"{_assignments(self.fixed)}); got {value!r}, run {self.base} to choose {key}"
                )
        merged = {**self.defaults, **hparams}
        for key, value in merged.items():
            check_type(self.name, self.fn, key, value, self.defaults[key])
            _check(self.name, key, value, BOUNDS.get(key))
        return merged

    def bind(self, **hparams: Any) -> BoundObjective:
        return BoundObjective(self.fn, self.validate(hparams), self.prepare, self.name)

    def __call__(self, batch: Any, **hparams: Any) -> tuple[Tensor, dict[str, Tensor]]:
        return self.bind(**hparams)(batch)


def _check(objective: str, key: str, value: Any, bound: Range | tuple[str, ...] | None) -> None:
    if bound is None or value is None:
        return
    if isinstance(bound, tuple):
        if value not in bound:
            raise ConfigError(f"{objective}: {key} must be one of {', '.join(bound)}; got {value!r}")
        return
    if isinstance(value, Tensor):
        ok = bool(((value > bound.low) if bound.low_open else (value >= bound.low)).all()) and bool(
            ((value < bound.high) if bound.high_open else (value <= bound.high)).all()
        )
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ok = bound.contains(float(value))
    else:
        raise ConfigError(f"{objective}: {key} must be a number in {bound}; got {value!r}")
    if not ok:
        raise ConfigError(f"{objective}: {key} must be in {bound}; got {value!r}")


REGISTRY: dict[str, Objective] = {}


def objective(
    name: str,
    *,
    geometry: Geometry,
    feedback: str,
    paper: str,
    prepare: PrepareFn | None = None,
    recipe: Recipe = Recipe(),
    **overrides: Any,
) -> Callable[[LossFn], LossFn]:
    """Register ``fn`` under ``name``; stack the decorator to register variants.

    ``overrides`` replace the defaults of ``fn``'s keyword-only hyperparameters for this
    entry only (``ppo`` and ``grpo`` share one function and differ in their advantage).
    ``prepare(batch, **hparams)`` is the objective's whole-mini-batch step and ``recipe`` what
    an RL loop does around the loss (see above); both are this entry's only.
    """
    if feedback not in FEEDBACK:
        raise ValueError(f"{name}: feedback must be one of {', '.join(FEEDBACK)}; got {feedback!r}")
    if not isinstance(geometry, Geometry):
        raise ValueError(f"{name}: geometry must be a geobench.objectives.Geometry; got {type(geometry).__name__}")
    if not isinstance(paper, str) or not paper.strip():
        raise ValueError(f"{name}: paper must name the source of the objective (a paper, equation or URL)")
    if not isinstance(recipe, Recipe):
        raise ValueError(f"{name}: recipe must be a geobench.objectives.Recipe; got {type(recipe).__name__}")

    def decorate(fn: LossFn) -> LossFn:
        params = inspect.signature(fn).parameters.values()
        defaults = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        missing = [k for k, v in defaults.items() if v is inspect.Parameter.empty and k not in overrides]
        if missing:
            raise ValueError(
                f"{name}: hyperparameter {missing[0]!r} of {fn.__name__} has no default; give it one "
                f"(def {fn.__name__}(batch, *, {missing[0]}=...)), so that a run without it is defined"
            )
        bad = set(overrides) - set(defaults)
        if bad:
            raise TypeError(f"{name}: overrides {sorted(bad)} are not hyperparameters of {fn.__name__}")
        adapted = recipe.adaptive_temperature
        if adapted is not None and adapted not in defaults:
            raise ValueError(f"{name}: the recipe adapts {adapted!r}, which is not a hyperparameter of {fn.__name__}")
        entry = Objective(name, fn, geometry, feedback, paper, {**defaults, **overrides}, prepare, recipe=recipe)
        for key, value in entry.defaults.items():
            _check(name, key, value, BOUNDS.get(key))
        _register(entry)
        return fn

    return decorate


def variant(name: str, base: str, *, paper: str, geometry: Geometry | None = None, **fixed: Any) -> Objective:
    """Register ``name``: the registered objective ``base`` with the hyperparameters ``fixed``.

    The variant has ``base``'s loss, feedback, ``prepare`` and ``recipe``, its own name, source
    and (if given) geometry; its other hyperparameters keep ``base``'s defaults and stay settable.
    """
    parent = REGISTRY.get(base)
    if parent is None:
        raise ValueError(f"{name}: no objective {base!r} to be a variant of; register it first")
    bad = sorted(set(fixed) - set(parent.defaults))
    if bad:
        raise TypeError(f"{name}: {bad} are not hyperparameters of {base}")
    for key, value in fixed.items():
        _check(name, key, value, BOUNDS.get(key))
    entry = dataclasses.replace(
        parent,
        name=name,
        paper=paper,
        geometry=geometry or parent.geometry,
        defaults={**parent.defaults, **fixed},
        base=parent.base or base,
        fixed={**parent.fixed, **fixed},
    )
    _register(entry)
    return entry


def _register(entry: Objective) -> None:
    """Register ``entry``; the same objective from the same source again (an installed plugin's entry
    point, then its file by ``--plugin``) is a no-op, another objective under a taken name an error."""
    name = entry.name
    if not NAME.fullmatch(name):
        raise ValueError(f"objective name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    old = REGISTRY.get(name)
    if old is not None and _same_objective(old, entry):
        return
    if old is not None:
        raise ValueError(
            f"objective {name!r} is already registered ({old.paper}; {source_file(old.fn)}) with other code; "
            "choose another name"
        )
    REGISTRY[name] = entry


def _same_objective(old: Objective, new: Objective) -> bool:
    """The same entry with functions of the same source text (a module imported twice under two names)."""
    same = [same_source(old.fn, new.fn), same_source(old.prepare, new.prepare)]
    return all(same) and dataclasses.replace(new, fn=old.fn, prepare=old.prepare) == old


def check_tables(tables: Mapping[str, Any], table: str = "hparams.{}") -> None:
    """Every table of a hyperparameter mapping names a registered objective: ``[quick.hparams.gpro]``
    is a typo, never silently ignored (``table`` formats the name where the error says it). A table
    for a registered objective the run does not select is allowed: a config file states its tables
    once for all its methods, and ``--methods`` may narrow the run."""
    for name in tables:
        if find_objective(name) is None:
            near = nearest(name, REGISTRY)
            hint = f"did you mean {table.format(near)}? " if near else ""
            raise SettingError(
                f"{table.format(name)}: no objective {name!r} is registered; {hint}valid: {', '.join(sorted(REGISTRY))}"
            )


def _assignments(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


# Called in order when a name is not registered; each may register more objectives. The plugin
# loader adds itself (geobench.objectives.plugins, which the package imports whenever the registry
# is), so the registry imports nothing above it.
_MISS_LOADERS: list[Callable[[], object]] = []


def on_unknown_name(loader: Callable[[], object]) -> None:
    """Call ``loader()`` whenever a looked-up name is not registered, before giving up on it."""
    if loader not in _MISS_LOADERS:
        _MISS_LOADERS.append(loader)


def find_objective(name: str) -> Objective | None:
    """The registered objective ``name``, or None if nothing registers it.

    A name not yet registered runs the loaders first (the plugins' entry points and
    ``$GEOBENCH_PLUGINS``): that is how a spawned worker or a Ray task finds a plugin objective the
    driver loaded. A plugin that fails to load is its own one-line error, never taken for an
    unknown name.
    """
    if name not in REGISTRY:
        for load in _MISS_LOADERS:
            load()
    return REGISTRY.get(name)


def get_objective(name: str) -> Objective:
    """The registered objective ``name``, or a one-line error listing the valid names."""
    entry = find_objective(name)
    if entry is None:
        raise ConfigError(f"unknown algorithm {name!r}; valid: {', '.join(sorted(REGISTRY))}")
    return entry


def make_objective(name: str, **hparams: Any) -> BoundObjective:
    """Look up ``name`` and bind validated hyperparameters: the usual entry point."""
    return get_objective(name).bind(**hparams)
