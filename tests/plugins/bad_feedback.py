"""A plugin whose metadata is wrong: 'online' is not a feedback geobench knows."""

from geobench.objectives import Geometry, objective


@objective("bad-feedback", geometry=Geometry("s", "o", "c", "t"), feedback="online", paper="a test")
def bad(batch):
    raise AssertionError("never called")
