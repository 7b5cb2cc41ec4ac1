"""Plugins whose losses are wrong in the ways issue 21 item 13 probes: NaN from the first call, a (B, G)
loss instead of a scalar, a loss that raises. The probes of tests/test_probes_config.py load this file."""

from geobench.objectives import Geometry, GroupBatch, objective

_GEOMETRY = Geometry("s", "o", "c", "t")


def _surrogate(batch: GroupBatch):
    """(B, G) REINFORCE terms: -A * log pi of each sampled candidate."""
    return -batch.advantage("zscore") * batch.seq_logp()


@objective("nan-loss", geometry=_GEOMETRY, feedback="sampled", paper="a probe")
def nan_loss(batch: GroupBatch, *, scale: float = 1.0):
    return _surrogate(batch).mean() * float("nan"), {}


@objective("grouped-loss", geometry=_GEOMETRY, feedback="sampled", paper="a probe")
def grouped_loss(batch: GroupBatch, *, scale: float = 1.0):
    return _surrogate(batch) * scale, {}


@objective("raising-loss", geometry=_GEOMETRY, feedback="sampled", paper="a probe")
def raising_loss(batch: GroupBatch, *, scale: float = 1.0):
    raise ValueError("the probe's loss is broken")


@objective("typed-loss", geometry=_GEOMETRY, feedback="sampled", paper="a probe")
def typed_loss(batch: GroupBatch, *, scale: float = 1.0, label: str | None = None):
    return _surrogate(batch).mean() * scale, {}


@objective("nan-listwise", geometry=_GEOMETRY, feedback="listwise", paper="a probe")
def nan_listwise(batch: GroupBatch, *, scale: float = 1.0):
    """Listwise, so that distillation (the teacher scores every candidate) runs it."""
    return (batch.rewards.softmax(-1) * batch.seq_logp()).sum(-1).mean() * float("nan"), {}
