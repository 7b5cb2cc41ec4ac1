"""GRPO's registered loss under a second name: the leaderboard must say it is the same as GRPO."""

from geobench.objectives import variant

variant("grpo-twin", "grpo", paper="a test: GRPO under another name")
