"""The objective library: pure functions ``GroupBatch -> (loss, metrics)`` and their registry.

Importing this package registers every objective. Typical use::

    from geobench.objectives import GroupBatch, make_objective
    loss_fn = make_objective("opo", alpha=0.4, mu=1.0)
    loss, metrics = loss_fn(batch)

Objectives from outside the package register with the same ``objective`` decorator; see
``geobench.objectives.plugins`` for how they are found.
"""

from geobench.objectives import (  # noqa: F401  (registration; zoo_* are issue 22's objectives)
    listwise,
    opo,
    pairwise,
    policy_gradient,
    zoo_clipping,
    zoo_covariance,
    zoo_mismatch,
    zoo_preference,
    zoo_reinforce,
    zoo_sampled,
)
from geobench.objectives.advantages import (
    StageTargets,
    group_advantages,
    informative_groups,
    listwise_target,
    overlong_penalty,
    plackett_luce_stages,
    softmax_target,
    top1_target,
)
from geobench.objectives.aggregation import AGG_MODES, aggregate, masked_mean
from geobench.objectives.batch import GroupBatch
from geobench.objectives.listwise import listwise_cross_entropy
from geobench.objectives.pairwise import bradley_terry
from geobench.objectives.plugins import load_plugin, load_plugins
from geobench.objectives.policy_gradient import clipped_surrogate, policy_gradient_metrics, sample_kl
from geobench.objectives.registry import (
    REGISTRY,
    Geometry,
    Objective,
    Recipe,
    check_tables,
    find_objective,
    get_objective,
    make_objective,
    objective,
    variant,
)
from geobench.objectives.seeds import per_seed_objective
from geobench.objectives.temperature import GuardedTemperature, candidate_confidence, entropy_reward_temperature
from geobench.objectives.trpo_step import TRPOStep, conjugate_gradient, natural_gradient_step

__all__ = [
    "AGG_MODES",
    "REGISTRY",
    "Geometry",
    "GroupBatch",
    "GuardedTemperature",
    "Objective",
    "Recipe",
    "StageTargets",
    "TRPOStep",
    "aggregate",
    "bradley_terry",
    "candidate_confidence",
    "check_tables",
    "clipped_surrogate",
    "conjugate_gradient",
    "entropy_reward_temperature",
    "find_objective",
    "get_objective",
    "group_advantages",
    "informative_groups",
    "listwise_cross_entropy",
    "listwise_target",
    "load_plugin",
    "load_plugins",
    "make_objective",
    "masked_mean",
    "natural_gradient_step",
    "objective",
    "overlong_penalty",
    "per_seed_objective",
    "plackett_luce_stages",
    "policy_gradient_metrics",
    "sample_kl",
    "softmax_target",
    "top1_target",
    "variant",
]
