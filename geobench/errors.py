"""The one error type a user is meant to see.

The CLI turns a :class:`ConfigError` into a single line on stderr and exit status 2, so
its message must say what is wrong and how to fix it; anything else is a bug and keeps
its traceback.
"""


class ConfigError(ValueError):
    """Bad user input: unknown name, out-of-range hyperparameter, missing file."""
