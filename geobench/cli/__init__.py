"""The ``geobench`` command line: each command parses options, builds a config, calls run()."""

from geobench.cli.common import app, writable_folder
from geobench.cli.main import main

__all__ = ["app", "main", "writable_folder"]
