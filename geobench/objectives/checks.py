"""What goes into a loss and what it hands back, checked where the registry binds and calls it.

Registering the same objective twice is a no-op when its functions have the same source
(:func:`same_source`). A hyperparameter has the type of its default, or of its annotation where
the default is None (:func:`check_type`): a string never reaches a loss as a float.

Every experiment reaches an objective through :class:`~geobench.objectives.registry.BoundObjective`,
so these checks run once for the toy, the bandits, distillation and both LLM paths alike:

- the loss is a scalar on every call (a (B, G) loss would be summed or broadcast silently by the
  caller's ``backward``); free, a shape read;
- it is finite on the bound objective's first call (one device sync per bound objective): a loss
  that is NaN from its first step is the objective's, not a diverged run's;
- an exception raised by a loss defined outside geobench (a plugin's) is one line with its type,
  message and the plugin's ``file:line``; a built-in's keeps its traceback, being a bug.

Under ``torch.func.vmap`` (the bandits and distillation stack seeds) a loss is a batched tensor and
cannot be read; :func:`require_finite_loss` is then called on the (S,) losses the vmap returns.
"""

from __future__ import annotations

import functools
import inspect
import traceback
import typing
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from geobench.errors import BadLoss, ConfigError


def is_plugin(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is defined outside the geobench package (a plugin's, a user's)."""
    module = getattr(fn, "__module__", "") or ""
    return module != "geobench" and not module.startswith("geobench.")


def call_loss(name: str, fn: Callable[..., Any], batch: Any, hparams: dict[str, Any]) -> tuple[Tensor, Any]:
    """``fn(batch, **hparams)`` with its loss checked for a scalar; a plugin's exception as one line."""
    try:
        loss, metrics = fn(batch, **hparams)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - a plugin's failure is the user's, said in one line
        if not is_plugin(fn):
            raise
        text = str(error).strip().splitlines()
        raise BadLoss(
            f"objective {name}'s loss raised {type(error).__name__}: {text[0] if text else repr(error)} "
            f"(at {_where(fn, error)}); fix the plugin"
        ) from None
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise BadLoss(
            f"objective {name}'s loss is {shape}, not a scalar tensor: reduce it in the loss "
            "(e.g. aggregate(...) or .mean()); geobench does not sum it for you"
        )
    return loss, metrics


def require_finite_loss(name: str, loss: Tensor) -> bool:
    """One line if ``loss`` (a scalar, or a (S,) stack of per-seed scalars) holds a NaN or an inf;
    False if it could not be read (inside vmap), True once it was read finite."""
    if _batched(loss):
        return False
    values = loss.detach()
    if not bool(torch.isfinite(values).all()):
        bad = values[~torch.isfinite(values)].flatten()[0].item()
        raise BadLoss(
            f"objective {name}'s loss is {bad} on its first call, before any update: the objective "
            "computes a non-finite value from finite inputs; fix it (a log or a division by zero?)"
        )
    return True


def _batched(tensor: Tensor) -> bool:
    """A tensor seen from inside ``torch.func.vmap``: its values cannot be read there."""
    return torch._C._functorch.is_batchedtensor(tensor)


def _where(fn: Callable[..., Any], error: BaseException) -> str:
    """``file:line`` of the innermost frame in ``fn``'s file, else of ``fn``'s definition."""
    code = getattr(fn, "__code__", None)
    file = code.co_filename if code is not None else "?"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == file]
    line = frames[-1].lineno if frames else (code.co_firstlineno if code is not None else 0)
    return f"{file}:{line}"


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_type(objective: str, fn: Callable[..., Any], key: str, value: Any, default: Any) -> None:
    """``value`` of the type its default has (an int where a float is taken; a tensor where a number is,
    as adaptive temperatures pass), or of ``fn``'s annotation where the default is None: one line,
    before a string reaches a loss as a float."""
    kind = type(default) if type(default) in _TYPE_WORDS else _annotation(fn, key)
    if kind is None or value is None:  # None: the loss's own fallback (as the range check allows it)
        return
    if isinstance(value, Tensor) and kind in (int, float):
        return
    accepted = (int, float) if kind is float else (kind,)
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{objective}: {key} must be {_TYPE_WORDS[kind]}; got {value!r}")


def _annotation(fn: Callable[..., Any], key: str) -> type | None:
    """The scalar type ``fn``'s signature annotates ``key`` with (``float``, ``str | None``...), else None."""
    hint = _hints(fn).get(key)
    options = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    return options[0] if len(options) == 1 and options[0] in _TYPE_WORDS else None


@functools.cache
def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - annotations that do not resolve are not checked
        return {}


def source_file(fn: Callable[..., Any]) -> str:
    """'from FILE' for a message naming where a registered objective was defined."""
    try:
        return f"from {inspect.getsourcefile(fn)}"
    except TypeError:
        return "from a built-in"


def same_source(a: Callable[..., Any] | None, b: Callable[..., Any] | None) -> bool:
    """Whether two functions are the same code: the same one, or one of the same name and source text
    (a plugin module imported twice, as an installed entry point and as ``--plugin`` its file)."""
    if a is None or b is None or a is b:
        return a is b
    try:
        return a.__qualname__ == b.__qualname__ and inspect.getsource(a) == inspect.getsource(b)
    except (OSError, TypeError):  # no source to compare (a builtin, a lambda typed in a REPL)
        return False
