"""The adaptive temperatures of the LLM loops, computed once per step from pi_old's scores.

ADPO Eq. 12's confidence c in each reading of ``tau_confidence`` (the guard itself,
:class:`~geobench.objectives.GuardedTemperature`, keeps the state), the per-prompt rule of the
ADPO authors' recipe, and the OPO authors' adaptive tau applied to a temperature of the loss.
Both engines use them (``geobench.llm.train``, ``geobench.llm.trl_engine``).
"""

from __future__ import annotations

import math

from torch import Tensor

from geobench.llm.settings import AUTHORS_TAU_COEFFICIENTS, AdaptiveTemperature, LLMConfig
from geobench.objectives import candidate_confidence, entropy_reward_temperature
from geobench.objectives.opo_authors import authors_adaptive_tau
from geobench.objectives.temperature import distinct_candidates


def guard_confidence(token_logp: Tensor, mask: Tensor, form: str, ids: Tensor | None = None) -> float:
    """Eq. 12's c_t from pi_old's (B, G, T) token log-probs, in the reading ``form`` (one of
    CONFIDENCE_FORMS): over length-normalised sequences, over sums, or over sums of each group's
    distinct completions, which needs their (B, G, T) token ``ids``."""
    fmask = mask.to(token_logp.dtype)
    seq = (token_logp * fmask).sum(-1)
    if form == "candidate-set":
        if ids is None:
            raise ValueError("the candidate-set confidence needs the completions' token ids")
        return float(candidate_confidence(seq, distinct=distinct_candidates(ids, mask)))
    return float(candidate_confidence(seq, fmask.sum(-1) if form == "token-mean" else None))


def per_prompt_tau(
    tau_base: float, entropy: Tensor, mask: Tensor, rewards: Tensor, vocab: int, settings: LLMConfig
) -> Tensor:
    """ADPO's per-prompt tau of the authors' recipe (SETTINGS.md), (B,).

    H is each prompt's mean token entropy over its G completions, divided by log |vocab|;
    R its group-mean reward. The constants a, b and the range are the run's
    ``adpo_tau_entropy``, ``adpo_tau_reward`` and [``adpo_prompt_tau_min``, ``adpo_prompt_tau_max``]
    (the recipe's 0.5, 1.0, [0.1, 5.0] by default), not [tau_min, tau_max]: Eq. 12's
    tau_max = tau_base would pin this rule, which only raises tau above tau_base, to tau_base.

    Shapes: entropy and mask (B, G, T); rewards (B, G).
    """
    fmask = mask.to(entropy.dtype)
    mean_entropy = (entropy * fmask).sum((-1, -2)) / fmask.sum((-1, -2)).clamp(min=1.0)
    return entropy_reward_temperature(
        tau_base,
        mean_entropy / math.log(vocab),
        rewards.mean(-1),
        a=settings.adpo_tau_entropy,
        b=settings.adpo_tau_reward,
        tau_min=settings.adpo_prompt_tau_min,
        tau_max=settings.adpo_prompt_tau_max,
    )


def authors_temperature(
    base: float, token_logp: Tensor, mask: Tensor, adv: Tensor, adaptive: AdaptiveTemperature, vocab: int
) -> float:
    """The OPO authors' adaptive tau (:func:`~geobench.objectives.opo_authors.authors_adaptive_tau`)
    for a temperature of base ``base``, once per step from pi_old, clamped to the recipe's range.

    Their rule reads the policy's and the anchor's length-normalised sequence log-probs
    (``use_length_normalization`` in their config); with the anchor at pi_old both are pi_old's
    before the update, so its confidence is 1 - its anchor entropy.

    Shapes: token_logp and mask (B, G, T); adv (B, G), the objective's advantages.
    """
    fmask = mask.to(token_logp.dtype)
    seq = (token_logp * fmask).sum(-1) / fmask.sum(-1).clamp(min=1.0)
    entropy, reward = AUTHORS_TAU_COEFFICIENTS
    tau = authors_adaptive_tau(
        base,
        seq,
        seq,
        adv,
        tau_entropy=entropy,
        tau_reward=reward,
        tau_min=adaptive.low,
        tau_max=adaptive.high,
        vocab_size=vocab,
    )
    return float(tau)
