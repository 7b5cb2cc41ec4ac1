"""DAPO's loss under two plugin names: one declares DAPO's batch handling in its recipe, one does not."""

from geobench.objectives import Geometry, Recipe, objective
from geobench.objectives.policy_gradient import ppo_clip

_GEOMETRY = Geometry("s", "o", "c", "t")

objective(
    "clip-higher-filtered",
    geometry=_GEOMETRY,
    feedback="sampled",
    paper="a test: DAPO Eq. 10 with DAPO's recipe",
    recipe=Recipe(filter_groups=True, overlong=True),
    clip_high=0.28,
)(ppo_clip)
objective("clip-higher", geometry=_GEOMETRY, feedback="sampled", paper="a test: DAPO Eq. 10 alone", clip_high=0.28)(
    ppo_clip
)
