"""LLM math RL: tasks, models, rollout backends and the RL loop (OPO Table 1, Figs. 4-7; ADPO Fig. 3).

The names below are handed on lazily (PEP 562), so importing a light module of the package
(``geobench.llm.grading``, say) does not import the sweep stack with it.
"""

import importlib

_HOMES = {
    "ALGOS": "geobench.llm.settings",
    "LLMConfig": "geobench.llm.settings",
    "EXPERIMENT": "geobench.llm.sweep",
    "run": "geobench.llm.sweep",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
