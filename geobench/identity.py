"""A cell's identity: digests of everything besides its config that determines its rows.

A run folder reuses a finished cell only while the cell's *inputs* are what they were when it
was written (:class:`geobench.results.RunDir`). An input is a name and a digest, e.g.
``"objective grpo" -> sha256 of the code that runs for grpo``; this module computes them, as
pure functions of the files on disk and of the values given, and imports nothing of geobench, so
that every layer may use it:

- :func:`objective_digest`: the source of an objective's loss (and ``prepare``) module and of every
  module it imports from geobench or from its own plugin package, read with ``ast`` (no import),
  plus its registered defaults, fixed hyperparameters, feedback and :class:`Recipe`;
- :func:`file_digest`: a file's bytes, or a folder's sorted relative paths and bytes, hashed once
  per process while its size and mtime stay (a multi-GB checkpoint is read once);
- :func:`package_inputs`: the versions of the packages whose numerics the rows depend on;
- :func:`run_identity`: one run's identity from its config hash and the union of its cells' inputs.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent
_CHUNK = 1 << 20
# Versions that change a cell's numbers for the same seed: torch's kernels and random streams
# (every experiment's training and sampling) and numpy's generators and reductions (the bandit
# environment, the states and returns of MuJoCo, the task samplers). Experiments add their own
# (gymnasium and mujoco step the returns, transformers builds the LLM).
RESULT_PACKAGES = ("torch", "numpy")

_file_cache: dict[tuple[str, int, int], str] = {}
_imports_cache: dict[tuple[str, int, int], tuple[tuple[str, tuple[str, ...]], ...]] = {}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_cache:
        _file_cache[key] = _sha256_file(path)
    return _file_cache[key]


def file_digest(path: Path | str) -> str:
    """sha256 of a file's bytes, or of a folder's files (sorted relative paths and their digests;
    hidden files such as ``.lock`` left out); ``"absent"`` for a path that does not exist."""
    path = Path(path)
    if path.is_file():
        return _cached_file(path)
    if not path.is_dir():
        return "absent"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts):
            continue
        digest.update(f"{relative}\0{_cached_file(file)}\n".encode())
    return digest.hexdigest()


def _source_file(module: str, roots: Mapping[str, Path]) -> Path | None:
    """The file of ``module`` under one of ``roots`` (top-level package -> its folder), or None."""
    top, *rest = module.split(".")
    if top not in roots:
        return None
    base = roots[top].joinpath(*rest)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(module, names)`` of every import in ``path``'s code, any depth, relative ones resolved
    against ``module`` (``names`` empty for ``import x``)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _imports_cache:
        return _imports_cache[key]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append((base, tuple(alias.name for alias in node.names)))
    _imports_cache[key] = tuple(found)
    return _imports_cache[key]


def _closure(start: Mapping[str, Path], roots: Mapping[str, Path]) -> dict[str, Path]:
    """Module name -> file for the modules of ``start`` and everything they import under ``roots``,
    transitively.

    ``from pkg import name`` follows the submodule ``pkg.name`` when there is one, else the import in
    ``pkg``'s face that binds ``name`` (a face only hands names on, so following the face itself would
    take in every sibling); a name the face defines or hands on lazily takes in the face."""
    seen: dict[str, Path] = {}
    todo = list(start.items())
    while todo:
        name, path = todo.pop()
        if name in seen or path is None:
            continue
        seen[name] = path
        for base, names in _imports(path, name):
            targets = [base] if not names else [_target(base, item, roots) for item in names]
            todo += [(t, _source_file(t, roots)) for t in targets]
    return seen


def _target(base: str, item: str, roots: Mapping[str, Path]) -> str:
    sub = f"{base}.{item}"
    return sub if _source_file(sub, roots) else _binding(base, item, roots)


def _binding(package: str, name: str, roots: Mapping[str, Path]) -> str:
    """The module whose import binds ``name`` in ``package``'s face, else the face itself."""
    face = _source_file(package, roots)
    if face is None or face.name != "__init__.py":
        return package
    for base, names in _imports(face, package):
        if name in names:
            return f"{base}.{name}" if _source_file(f"{base}.{name}", roots) else base
    return package


def _module_roots(modules: Iterable[str]) -> dict[str, Path]:
    """geobench's folder, and the folder of each (plugin) top-level package among ``modules``."""
    roots = {"geobench": _PACKAGE}
    for name in modules:
        top = name.split(".")[0]
        paths = getattr(sys.modules.get(top), "__path__", None)
        if top != "geobench" and paths:
            roots[top] = Path(list(paths)[0])
    return roots


def objective_sources(entry: Any) -> dict[str, Path]:
    """Module name -> source file of the code that runs for a registry entry
    (:class:`geobench.objectives.Objective`): the module of its loss function and of its ``prepare``
    function (a ``--plugin`` file is its own module), and every module they import from geobench or
    from the plugin's own package, transitively."""
    functions = [f for f in (entry.fn, entry.prepare) if f is not None]
    roots = _module_roots(f.__module__ for f in functions)
    start: dict[str, Path] = {}
    for fn in functions:
        path = _source_file(fn.__module__, roots)
        if path is None:  # a --plugin file: its own module, under no package folder
            path = Path(getattr(sys.modules.get(fn.__module__), "__file__", "") or "")
        if path.is_file():
            start[fn.__module__] = path
    return _closure(start, roots)


def objective_digest(entry: Any) -> str:
    """sha256 of the code that runs for a registry entry (:func:`objective_sources`) and of its
    registered settings: defaults, fixed hyperparameters, feedback and recipe. An edit anywhere in
    that code changes the digest; an edit to a module it never imports does not."""
    files = objective_sources(entry)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{_cached_file(files[name])}\n".encode())
    settings = {
        "defaults": entry.defaults,
        "fixed": entry.fixed,
        "feedback": entry.feedback,
        "recipe": dataclasses.asdict(entry.recipe),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def objective_inputs(entries: Iterable[Any]) -> dict[str, str]:
    """``"objective NAME" -> objective_digest`` of each registry entry."""
    return {f"objective {entry.name}": objective_digest(entry) for entry in entries}


def package_inputs(names: Iterable[str] = RESULT_PACKAGES) -> dict[str, str]:
    """``"package NAME" -> version`` of each installed package among ``names``."""
    found = {}
    for name in names:
        try:
            found[f"package {name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_identity(config_hash: str, inputs: Mapping[str, str]) -> str:
    """16 hex digits naming a run: its config hash and the union of its cells' inputs."""
    blob = json.dumps({"config_hash": config_hash, "inputs": dict(inputs)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_inputs(stored: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Phrases naming each input that differs between ``stored`` and ``current``, sorted."""
    phrases = []
    for name in sorted(set(stored) | set(current)):
        if name not in stored:
            phrases.append(f"{name} is new")
        elif name not in current:
            phrases.append(f"{name} is no longer read")
        elif stored[name] != current[name]:
            phrases.append(f"{name} changed")
    return phrases


def path_input(value: str) -> str:
    """A model or dataset named by ``value``: the content digest of a local file or folder, else the
    name itself (a built-in task, a ``random:`` architecture, a hub id)."""
    path = Path(value).expanduser()
    return file_digest(path) if path.exists() else f"name {value}"


__all__ = [
    "RESULT_PACKAGES",
    "changed_inputs",
    "file_digest",
    "objective_digest",
    "objective_inputs",
    "objective_sources",
    "package_inputs",
    "path_input",
    "run_identity",
]
