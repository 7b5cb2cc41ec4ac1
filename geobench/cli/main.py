"""The entry point: the root options and the mapping of errors to one line and an exit status."""

from __future__ import annotations

import sys

import typer

# Their decorators register the commands on ``app``; imported as modules, not through the package's face.
import geobench.cli.battery  # noqa: F401
import geobench.cli.experiments  # noqa: F401
import geobench.cli.tools  # noqa: F401
from geobench.cli.common import app
from geobench.errors import CellsFailed, ConfigError, Terminated


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        print(f"geobench {version('geobench')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Reproduce the OPO and ADPO papers: every figure and table from one objective library."""


def main() -> None:
    """Console entry point: a :class:`ConfigError` is one line on stderr and exit status 2."""
    try:
        app()
    except ConfigError as error:
        print(f"geobench: error: {error}", file=sys.stderr)
        sys.exit(2)
    except CellsFailed as error:
        print(f"geobench: error: {error}", file=sys.stderr)
        sys.exit(1)
    except Terminated as error:  # SIGTERM mid-sweep: workers are stopped, finished cells kept
        print(f"geobench: {error}; finished cells are kept, rerun to resume", file=sys.stderr)
        sys.exit(128 + error.signum)
    except OSError as error:  # --out naming a file, a read-only folder, a full disk: the path and why
        where = f"{error.filename}: " if error.filename else ""
        print(f"geobench: error: {where}{error.strerror or error}; choose another path", file=sys.stderr)
        sys.exit(2)
