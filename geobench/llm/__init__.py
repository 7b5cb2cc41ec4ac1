"""LLM math RL: tasks, models, rollout backends and the RL loop (OPO Table 1, Figs. 4-7; ADPO Fig. 3).

The names below are handed on lazily (PEP 562), so importing a light module of the package
(``geobench.llm.grading``, say) does not import the sweep stack with it.
"""

from geobench.lazy import lazy_names

__getattr__, __all__ = lazy_names(
    __name__,
    {
        "ALGOS": "geobench.llm.settings",
        "LLMConfig": "geobench.llm.settings",
        "EXPERIMENT": "geobench.llm.sweep",
        "run": "geobench.llm.sweep",
    },
)
