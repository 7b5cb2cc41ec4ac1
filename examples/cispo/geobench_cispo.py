"""CISPO as a geobench plugin: a worked example of bringing your own objective.

CISPO (Chen et al. 2025, MiniMax-M1, arXiv:2506.13585, Sec. 3.1) keeps REINFORCE's
log-probability gradient for every token and clips only the importance weight, as a constant:

    L(theta) = - sum_{i,t} sg(clip(r_{i,t}, 0, 1 + eps_high)) * A_i * log pi_theta(y_{i,t})  / sum_i |y_i|

with r = pi_theta / pi_old. PPO/GRPO's clipped surrogate has zero gradient on a token once its
ratio leaves the clip window on the advantage's side; CISPO's does not, which is the question
geobench's battery can ask of it: does it saturate in the toy (OPO Fig. 3), and does it hold up
under the bandits' reward noise and in the LLM regime?

Register it by installing this folder (``pip install -e examples/cispo``: its pyproject declares the
``geobench.objectives`` entry point) or, without installing, with ``--plugin examples/cispo/geobench_cispo.py``.
"""

from __future__ import annotations

from torch import Tensor

from geobench.objectives import Geometry, GroupBatch, aggregate, objective, policy_gradient_metrics

# verl's and geobench's clamp on the token log-ratio before exp: a weight never overflows.
_LOG_RATIO_CLAMP = 20.0


@objective(
    "cispo",
    geometry=Geometry(
        sampling="implicit KL",
        optimization="none on the gradient (the IS weight is clipped, not the update)",
        coordinates="Log-prob, weighted by a clipped ratio pi / pi_old",
        target="Advantage-weighted samples",
        behavior="REINFORCE with clipped importance weights; no token dropped",
        space="Logits",
        center="pi_old",
        metric="Euclidean in log-prob",
        trust_region="None (weight cap only)",
    ),
    feedback="sampled",
    paper="Chen et al. 2025 (MiniMax-M1), arXiv:2506.13585, Sec. 3.1, Eq. 4-5 (CISPO)",
)
def cispo(
    batch: GroupBatch,
    *,
    clip_high: float = 0.28,
    advantage: str = "zscore",
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO's loss: ``-sg(min(r, 1 + clip_high)) * A * log pi`` per token, token-mean over the batch.

    No lower bound on the weight: "we did not impose a lower bound on the IS weight" (Sec. 3.1).
    ``clip_high`` = 0.28 is our choice (DAPO's clip-higher value); the report tunes eps_high and
    does not state it. Advantages are GRPO's z-scored group advantages, as in the report.

    Shapes: batch (B, G, T); advantages (B, G) broadcast over T; loss a scalar.
    """
    adv = batch.advantage(advantage)
    ratio = (batch.logp - batch.old).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP).exp()
    weight = ratio.clamp(max=1.0 + clip_high).detach()
    loss = -weight * adv.unsqueeze(-1) * batch.logp
    metrics = policy_gradient_metrics(batch, ratio, ratio > 1.0 + clip_high, adv)
    return aggregate(loss, batch.mask, agg, totals=batch.totals), metrics
