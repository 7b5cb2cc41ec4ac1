"""Experiment configs: frozen dataclasses filled from ``experiments/<artifact>.toml`` profiles.

Each TOML file has one table per profile (``[quick]``, ``[paper]``); every value in it is
quoted next to the sentence of the paper it comes from, or marked as our choice with its
reason. Command-line options override single fields.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from geobench.errors import ConfigError

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"
PROFILES = ("quick", "paper")

C = TypeVar("C")


def experiment_file(name: str) -> Path:
    """``experiments/<name>.toml`` of this checkout, or a one-line error saying how to get it."""
    path = EXPERIMENTS_DIR / f"{name}.toml"
    if not path.exists():
        raise ConfigError(
            f"config {path} not found; run geobench from a source checkout (pip install -e .) or pass --config PATH"
        )
    return path


def load_config(cls: type[C], path: Path, profile: str, overrides: dict[str, Any] | None = None) -> C:
    """Build ``cls`` from the ``profile`` table of the TOML file at ``path``.

    ``overrides`` whose value is None are ignored (an option the user did not give).
    Lists become tuples where the field is a tuple, so configs stay immutable.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    if profile not in data:
        raise ConfigError(f"{path.name} has no [{profile}] profile; it has: {', '.join(data) or 'none'}")
    values = {**data[profile], **{k: v for k, v in (overrides or {}).items() if v is not None}}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{path.name} [{profile}]: unknown setting {unknown[0]!r}; valid: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if isinstance(value, list) and typing.get_origin(hints[key]) is tuple:
            values[key] = tuple(value)
        _check_type(path, profile, key, values[key], hints[key])
    return cls(**values)


_SCALARS = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def _check_type(path: Path, profile: str, key: str, value: Any, hint: Any) -> None:
    """A scalar setting of the wrong type (``steps = "ten"``) is one line, not a traceback later."""
    accepted = _SCALARS.get(hint)
    if accepted is None:
        return
    if not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{path.name} [{profile}]: {key} must be of type {hint.__name__}; got {value!r}")


def parse_list(text: str | None) -> tuple[str, ...] | None:
    """'a,b, c' -> ('a', 'b', 'c'); None stays None (option not given)."""
    if text is None:
        return None
    return tuple(item.strip() for item in text.split(",") if item.strip())


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
