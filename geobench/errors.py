"""The error types a user is meant to see.

The CLI turns a :class:`ConfigError` into a single line on stderr and exit status 2, so
its message must say what is wrong and how to fix it; a :class:`CellsFailed` into one line
and exit status 1 (the input was fine, some cells of a sweep raised). Anything else is a bug
and keeps its traceback.
"""


class ConfigError(ValueError):
    """Bad user input: unknown name, out-of-range hyperparameter, missing file."""


class CellsFailed(RuntimeError):
    """Some cells of a sweep raised; the others finished and were written."""
