"""Experiment configs: frozen dataclasses filled from ``experiments/<artifact>.toml`` profiles.

Each TOML file has one table per profile (``[quick]``, ``[paper]``); every value in it is
quoted next to the sentence of the paper it comes from, or marked as our choice with its
reason. A profile may state only how it differs from another table of the same file::

    [paper]
    inherits = "quick"     # or a shared table, e.g. [base], that is no profile itself
    steps = 1000

The profile is then the inherited table (itself resolved the same way) with the profile's own
values merged in: a nested table (``[paper.hparams.opo]``) changes only the keys it gives, any
other value replaces the inherited one. The resolved config, complete, is what a run records
in ``run.json``. Command-line options and ``--set`` merge into the profile the same way.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from geobench.errors import ConfigError, SettingError, nearest

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"
PROFILES = ("quick", "paper")
INHERITS = "inherits"

C = TypeVar("C")


def experiment_file(name: str) -> Path:
    """``experiments/<name>.toml`` of this checkout, or a one-line error saying how to get it."""
    path = EXPERIMENTS_DIR / f"{name}.toml"
    if not path.exists():
        raise ConfigError(
            f"config {path} not found; run geobench from a source checkout (pip install -e .) or pass --config PATH"
        )
    return path


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of the TOML file at ``path``, or a one-line error naming what is wrong with it."""
    if not path.is_file():
        raise ConfigError(f"config file {path} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def read_profile(path: Path, profile: str) -> dict[str, Any]:
    """The ``profile`` table of the TOML file at ``path`` with everything it inherits merged in."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    data = read_toml(path)
    if profile not in data:
        raise ConfigError(f"{path.name} has no [{profile}] profile; it has: {', '.join(data) or 'none'}")
    return _resolve(data, profile, path.name, ())


def _resolve(data: Mapping[str, Any], name: str, file: str, chain: tuple[str, ...]) -> dict[str, Any]:
    table = data[name]
    own = {k: v for k, v in table.items() if k != INHERITS}
    parent = table.get(INHERITS)
    if parent is None:
        return own
    if not isinstance(parent, str) or not isinstance(data.get(parent), dict):
        tables = ", ".join(t for t, v in data.items() if isinstance(v, dict) and t != name)
        raise ConfigError(f"{file} [{name}]: inherits = {parent!r} names no table of the file; it has: {tables}")
    if parent in (*chain, name):
        raise ConfigError(f"{file}: tables inherit in a circle ({' -> '.join((*chain, name, parent))})")
    return merge(_resolve(data, parent, file, (*chain, name)), own)


def merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied: tables merge key by key, recursively; any other value replaces.

    Keys keep ``base``'s order, new ones follow, so a resolved profile lists its settings as the
    table it inherits from does.
    """
    merged = dict(base)
    for key, value in changes.items():
        old = merged.get(key)
        merged[key] = merge(old, value) if isinstance(value, Mapping) and isinstance(old, Mapping) else value
    return merged


def load_config(cls: type[C], path: Path, profile: str, overrides: Mapping[str, Any] | None = None) -> C:
    """Build ``cls`` from the ``profile`` table of the TOML file at ``path`` (inheritance resolved).

    ``overrides`` whose value is None are ignored (an option the user did not give); the others
    merge into the profile as a profile merges into what it inherits (a table changes only the
    keys it gives).
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return build(cls, merge(read_profile(path, profile), given), f"{path.name} [{profile}]")


def build(cls: type[C], values: Mapping[str, Any], where: str) -> C:
    """``cls(**values)`` after checking every key and type, nested tables included, each error one line
    that starts with ``where``. Lists become tuples where the field is a tuple, so configs stay immutable."""
    checked = _fields(where, "", values, cls)
    try:
        return cls(**checked)
    except SettingError as error:  # a setting's own check (``hparams.gpro``): say which file and table
        raise ConfigError(f"{where}: {error}") from None


def _fields(where: str, prefix: str, values: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """``values`` checked key by key against the fields of the dataclass ``cls`` (``prefix`` names the
    table they sit in): an unknown key names the nearest field, a value of the wrong type its type."""
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        near = nearest(unknown[0], fields)
        hint = f"did you mean {near!r}? " if near else ""
        table = f" in {prefix.rstrip('.')}" if prefix else ""
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}{table}; {hint}valid: {', '.join(fields)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    return {key: _checked(where, f"{prefix}{key}", value, hints[key]) for key, value in values.items()}


_SCALARS = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def _checked(where: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` if it has the type ``hint`` says, recursively through tables (``Mapping[str, ...]``) and
    tuples; a setting of the wrong type (``steps = "ten"``, ``hparams.opo = 3``) is one line, not a
    traceback later. A table that a dataclass reads is declared ``Annotated[Mapping[...], TheClass]`` and
    checked against its fields (it stays a table, so ``run.json`` and the config hash are unchanged);
    the keys of another nested table are its owner's to check (``hparams`` by the registry)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:  # Annotated[Mapping[str, float], NoiseLevel]: a table a dataclass reads
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a table (name = value, ...); got {value!r}")
        return _fields(where, f"{key}.", value, args[1])
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a table (name = value, ...); got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {k: _checked(where, f"{key}.{k}", v, inner) for k, v in value.items()} if inner is not Any else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list; got {value!r}")
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
        return tuple(_checked(where, f"{key}[{i}]", v, item) for i, v in enumerate(value))
    accepted = _SCALARS.get(hint)
    if accepted is not None and (not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool))):
        raise ConfigError(f"{where}: {key} must be of type {hint.__name__}; got {value!r}")
    return value


def parse_list(text: str | None) -> tuple[str, ...] | None:
    """'a,b, c' -> ('a', 'b', 'c'); None stays None (option not given)."""
    if text is None:
        return None
    return tuple(item.strip() for item in text.split(",") if item.strip())


# A config field added after committed runs were made: ``field(default=..., metadata=HASH_NEUTRAL)``.
# At its default it is left out of the config's JSON (geobench.results.config_dict), so the hash and
# run.json of every config that does not set it are what they were before the field existed; set, it
# is hashed like any other field. Only for a field whose default changes no row a cell writes.
HASH_NEUTRAL = {"hash_neutral": True}


def check_lists(config: Any, *names: str) -> None:
    """Each named list setting holds something: an empty one would run no cells and then fail obscurely."""
    for name in names:
        if not getattr(config, name):
            raise ConfigError(f"{name} is empty; list at least one")


def check_caps(config: Any, caps: Mapping[str, tuple[int, str]]) -> None:
    """Refuse a size above its cap, before any work: ``caps`` maps a setting (an int or a tuple of ints)
    to its cap and the reason, which the message carries (what the size costs, what the papers use)."""
    for name, (cap, why) in caps.items():
        value = getattr(config, name)
        largest = max(value, default=0) if isinstance(value, tuple) else value
        if largest > cap:
            raise ConfigError(f"{name} must be at most {cap:,}; got {largest:,} ({why})")
