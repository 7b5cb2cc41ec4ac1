"""A plugin registering a fresh name, then one that is taken: neither may stay registered."""

from geobench.objectives import Geometry, objective

_GEOMETRY = Geometry("s", "o", "c", "t")


@objective("fresh-name", geometry=_GEOMETRY, feedback="sampled", paper="a test")
def fresh(batch):
    raise AssertionError("never called")


@objective("grpo", geometry=_GEOMETRY, feedback="sampled", paper="a test")
def taken(batch):
    raise AssertionError("never called")
