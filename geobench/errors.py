"""The error types a user is meant to see, and the one check that raises for a diverged run.

The CLI turns a :class:`ConfigError` into a single line on stderr and exit status 2, so
its message must say what is wrong and how to fix it; a :class:`CellsFailed` into one line
and exit status 1 (the input was fine, some cells of a sweep raised). Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping


class ConfigError(ValueError):
    """Bad user input: unknown name, out-of-range hyperparameter, missing file."""


class SettingError(ConfigError):
    """A config setting that is wrong, its message starting with the setting's path (``hparams.gpro: ...``);
    where the config is built from a file, the file and its table are put in front."""


class BadLoss(ConfigError):
    """An objective's loss is not a finite scalar, or a plugin's loss raised: the objective is the cause
    (``geobench.objectives.checks``); the experiment catalog puts the experiment's name in front."""


class CellsFailed(RuntimeError):
    """Some cells of a sweep raised; the others finished and were written."""


class Terminated(BaseException):
    """The process was sent SIGTERM: unwind like Ctrl-C (workers stopped), exit ``128 + signum``.

    A ``BaseException``, as KeyboardInterrupt is, so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


class NonFinite(ConfigError):
    """A run diverged (a loss or metric became NaN or infinite): the settings are the cause."""


def require_finite(values: Mapping[str, float], *, step: int, names: Iterable[str] | None = None) -> None:
    """Raise :class:`NonFinite` naming the first quantity of ``names`` (default: all) that is not finite.

    Called where the values arise, before anything is written, so a diverged run never leaves
    NaN or inf in a CSV. The executor adds the cell's key to the message.
    """
    for name in values if names is None else names:
        value = values.get(name)
        if value is not None and not math.isfinite(value):
            raise NonFinite(
                f"{name} is {value} at step {step}: the run diverged; lower the learning rate or the "
                "objective's scale and rerun"
            )


def nearest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name a typo most likely meant, for a message's "did you mean": one with the same letters
    (two swapped, ``gpro`` for ``grpo``) first, else difflib's closest, else None."""
    valid = list(valid)
    swapped = [v for v in valid if sorted(v) == sorted(name) and v != name]
    return (swapped or difflib.get_close_matches(name, valid, n=1) or [None])[0]
