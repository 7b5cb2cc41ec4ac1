"""LLM math RL: tasks, models, rollout backends and the RL loop (OPO Table 1, Figs. 4-7; ADPO Fig. 3)."""

from geobench.llm.sweep import ALGOS, EXPERIMENT, LLMConfig, run

__all__ = ["ALGOS", "EXPERIMENT", "LLMConfig", "run"]
