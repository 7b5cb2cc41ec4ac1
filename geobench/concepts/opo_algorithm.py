"""OPO Fig. 2 computed: Algorithm 1's steps, each tied to the code that performs it.

``STEPS`` names, for every line of Algorithm 1, the functions of this code base that carry
it out. :func:`trace` runs one real iteration of a library loop that trains OPO (the
bandit trainer, :func:`geobench.bandits.train.train_cell`, one step) under a profiler and
counts how often each of those functions ran; the flowchart is drawn from that table. A
renamed or removed function breaks the import below, and a step whose function the loop
no longer calls shows 0 calls (the tests require every count to be positive).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

import pandas as pd
import torch

from geobench.bandits import train as bandit_train
from geobench.bandits.env import BanditEnv, NoiseLevel
from geobench.concepts.tables import Tables, single_thread, summary
from geobench.nn import generator, init_mlp
from geobench.objectives import GroupBatch, group_advantages
from geobench.objectives import opo as opo_module


@dataclass(frozen=True)
class Step:
    """One line of OPO's Algorithm 1 and the functions that implement it."""

    line: str  # where Algorithm 1 (or the text) states it
    name: str
    formula: str
    role: str  # "loop", "work" (alpha: the escort drive) or "dissipation" (mu: the chi^2 penalty)
    functions: tuple[Callable[..., Any], ...]


STEPS = (
    Step("line 2", "Anchor", "pi_ref <- pi_old (on-policy anchor)", "loop", (GroupBatch.ref.fget,)),
    Step("line 3", "Rollout", "y ~ pi_old, reward R(x, y)", "loop", (bandit_train.sample_actions,)),
    Step("line 4", "Advantage", "A = zscore_group(R)", "loop", (group_advantages,)),
    Step(
        "line 5",
        "Escort weight",
        "omega = exp((1-alpha) A) sg(pi_ref^-(1-alpha)), mean 1 (Eq. 7)",
        "work",
        (opo_module.escort_weights,),
    ),
    Step("Remark 6.2", "Centre", "w = omega - E[omega] (Remark 6.2)", "work", (opo_module.opo_drive,)),
    Step(
        "lines 6-7",
        "chi^2 loss",
        "Delta = log pi - log pi_ref; L = mean[-w Delta + mu/2 Delta^2]",
        "dissipation",
        (opo_module.opo,),
    ),
    Step("line 8", "Update", "theta <- theta - eta grad L (AdamW here)", "loop", (bandit_train._adamw_step,)),
)


def qualified(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function (a property getter by its class attribute)."""
    return f"{fn.__module__}.{fn.__qualname__}"


def trace(steps: tuple[Step, ...] = STEPS) -> Counter[str]:
    """Calls of each step function during one OPO iteration of the bandit trainer, by qualified name.

    The optimizer's one-time import of torch's compiler stack happens before the profiler is
    set, so that the trace costs milliseconds.
    """
    codes: dict[CodeType, str] = {fn.__code__: qualified(fn) for s in steps for fn in s.functions}
    calls: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, _: object) -> None:
        if event == "call" and frame.f_code in codes:
            calls[codes[frame.f_code]] += 1

    env = BanditEnv()
    settings = bandit_train.TrainSettings(
        steps=1,
        batch_contexts=4,
        samples_per_context=4,
        epochs=1,
        lr=5e-4,
        weight_decay=0.0,
        ref_steps=0,
        eval_contexts=4,
        eval_every=1,
        trpo_max_kl=0.01,
        trpo_damping=0.1,
        trpo_cg_iters=1,
    )
    reference = init_mlp([env.dim, 8, env.items], [generator("opo-fig2", 0)])
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # the import, outside the profiled region
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        bandit_train.train_cell(env, NoiseLevel(), ("opo-fig2",), "opo", {}, reference, [0], settings)
    finally:
        sys.setprofile(previous)
    return calls


def compute() -> Tables:
    """OPO Fig. 2's table: one row per step of Algorithm 1, with its functions and their call counts."""
    with single_thread():
        calls = trace()
    rows = [
        {
            "order": i,
            "line": s.line,
            "name": s.name,
            "formula": s.formula,
            "role": s.role,
            "functions": " ".join(qualified(fn) for fn in s.functions),
            "calls": min(calls[qualified(fn)] for fn in s.functions),
        }
        for i, s in enumerate(STEPS)
    ]
    steps = pd.DataFrame(rows)
    return {"steps": steps, "summary": summary({"steps": len(steps), "uncalled": int((steps["calls"] == 0).sum())})}
