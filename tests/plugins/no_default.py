"""A plugin whose hyperparameter has no default: refused at registration (issue 21 item 19)."""

from geobench.objectives import Geometry, objective


@objective("no-default", geometry=Geometry("s", "o", "c", "t"), feedback="sampled", paper="a probe")
def no_default(batch, *, width: int):
    raise AssertionError("never called")
