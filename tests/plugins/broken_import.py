"""A plugin that fails to import."""

import geobench_no_such_module  # noqa: F401
