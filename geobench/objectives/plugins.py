"""Objectives defined outside the package: entry points and ``--plugin`` modules or files.

A plugin is any module whose import registers objectives with the same ``@objective``
decorator the built-in ones use, so it gets the same metadata checks, hyperparameter
validation and taxonomy row. Two ways in:

- an installed distribution declaring ``[project.entry-points."geobench.objectives"]``
  (``name = "module"``): loaded the first time a name is not found in the registry;
- ``--plugin path/to/file.py`` or ``--plugin package.module`` on the command line.

``--plugin`` specs are also put in ``$GEOBENCH_PLUGINS`` (``os.pathsep``-separated): a sweep's
spawned workers and Ray tasks import geobench afresh, and load them from there on their first
registry miss, so a plugin objective runs under every executor.

Loading is all or nothing per plugin: one that fails to import, or registers bad metadata or
a name that is already taken, is a :class:`ConfigError` naming it, and none of its objectives
stays registered.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib import metadata
from pathlib import Path

from geobench.errors import ConfigError
from geobench.objectives.registry import REGISTRY, on_unknown_name

ENTRY_POINT_GROUP = "geobench.objectives"
ENV_VAR = "GEOBENCH_PLUGINS"
_loaded: dict[str, tuple[str, ...]] = {}  # spec -> the objective names it registered


def load_plugin(spec: str) -> tuple[str, ...]:
    """Import the plugin ``spec`` (a ``.py`` path or a module name) once; the names it registered."""
    spec = _canonical(spec)
    if spec in _loaded:
        return _loaded[spec]
    _loaded[spec] = _register_from(spec, lambda: _import(spec))
    _export(spec)
    return _loaded[spec]


def load_entry_points() -> tuple[str, ...]:
    """Import every installed ``geobench.objectives`` entry point not yet loaded; the names registered."""
    names: list[str] = []
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry point {point.name} = {point.value}"
        if key not in _loaded:
            _loaded[key] = _register_from(key, point.load)
        names += _loaded[key]
    return tuple(names)


def load_plugins() -> tuple[str, ...]:
    """Entry points, then the plugins in ``$GEOBENCH_PLUGINS``: what a fresh worker needs."""
    names = list(load_entry_points())
    for spec in filter(None, os.environ.get(ENV_VAR, "").split(os.pathsep)):
        names += load_plugin(spec)
    return tuple(names)


on_unknown_name(load_plugins)  # the registry's lookup loads the plugins on a miss


def plugin_names() -> dict[str, str]:
    """Objective name -> the plugin that registered it, for every plugin loaded so far."""
    return {name: spec for spec, names in _loaded.items() for name in names}


def _register_from(what: str, load) -> tuple[str, ...]:
    before = set(REGISTRY)
    try:
        load()
    except ConfigError as error:
        _roll_back(before)
        raise ConfigError(f"plugin {what}: {error}") from None
    except ValueError as error:  # the decorator's metadata checks and its clash check
        _roll_back(before)
        raise ConfigError(f"plugin {what}: {error}") from None
    except Exception as error:  # noqa: BLE001 - any import failure is the plugin's, reported in one line
        _roll_back(before)
        raise ConfigError(
            f"plugin {what} failed to import ({type(error).__name__}: {error}); fix it or leave it out"
        ) from None
    return tuple(sorted(set(REGISTRY) - before))


def _roll_back(before: set[str]) -> None:
    for name in set(REGISTRY) - before:
        del REGISTRY[name]


def _canonical(spec: str) -> str:
    """A file spec as an absolute path (workers may run elsewhere); a module name as given."""
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"plugin {spec}: no such file; give a .py file or an importable module name")
        return str(path.resolve())
    return spec


def _import(spec: str) -> None:
    if not spec.endswith(".py"):
        importlib.import_module(spec)
        return
    name = f"geobench_plugin_{Path(spec).stem}"
    module_spec = importlib.util.spec_from_file_location(name, spec)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _export(spec: str) -> None:
    specs = [s for s in os.environ.get(ENV_VAR, "").split(os.pathsep) if s]
    if spec not in specs:
        os.environ[ENV_VAR] = os.pathsep.join([*specs, spec])
