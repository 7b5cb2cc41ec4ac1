"""A restatement, for the parity test only, of the OPO loss in the authors' public verl fork.

Read from github.com/wk222/verlm at commit b79d8f45c92fcb324a83475c8ac5bfb1d455d878, file
``verl/trainer/adpo/core_algos.py``: ``adpo_policy_loss`` with ``loss_variant == "opo"`` (its
Steps 1-3 and 7 and the "opo" branch of Step 6), and ``compute_adpo_advantages`` for the
advantages it is given. Written here in plain torch from that reading, in the fork's own
layout: flat rows of N = P * G sequences in group order, token tensors (N, T), the
advantages (N,), and a config dict keyed by the fork's config names. The geobench form
(``geobench.objectives.opo.authors_code_loss``) is written independently on (B, G, T)
batches; tests/test_opo.py compares the two.

Left out because the authors' OPO configuration switches them off or they do not enter the
"opo" branch: ``grad_clip_value`` (0), adaptive alpha, ``use_q_center`` (its centring is
not used by the "opo" branch), the distributed all-gather and the index sort (rows arrive
grouped here).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# The fork's keys and the values of its OPO config (verl/trainer/config/opo_qwen3_math.yaml);
# ``alpha`` is the loss's key for what that file calls ``opo_alpha``.
AUTHORS = {
    "alpha": 0.75,
    "opo_mu": 0.5,
    "opo_direction_scale": 1.33,
    "tau": 0.5,
    "beta_reward": 0.15,
    "clip_anchored_score": 10.0,
    "clip_log_ratio": 5.0,
    "use_length_normalization": True,
    "logit_reg_coef": 0.01,
    "use_adaptive_tau": True,
    "adaptive_tau_alpha": 0.2,
    "adaptive_tau_beta": 0.5,
    "adaptive_tau_min": 0.2,
    "adaptive_tau_max": 1.5,
    "vocab_size": 151936,
    "num_generations": 6,
}


def centred_advantages(rewards: Tensor) -> Tensor:
    """``compute_adpo_advantages`` with ``scale_rewards: False``: R - group mean, (P, G) -> (N,)."""
    return (rewards - rewards.mean(-1, keepdim=True)).reshape(-1)


def authors_opo_loss(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, response_mask: Tensor, config: dict
) -> tuple[Tensor, Tensor]:
    """The fork's OPO loss and its effective tau for one call (one verl micro-batch).

    Shapes: log_prob, old_log_prob, response_mask (N, T); advantages (N,); N = P * G rows
    in group order. Returns (loss (), effective tau ()).
    """
    c = config
    g_size = c["num_generations"]
    n_prompts = log_prob.shape[0] // g_size
    mask = response_mask.to(log_prob.dtype)

    # Step 1: sequence log-probs, per token when length-normalised.
    length = mask.sum(-1).clamp(min=1)
    denom = length if c["use_length_normalization"] else torch.ones_like(length)
    seq = (log_prob * mask).sum(-1) / denom
    seq_old = (old_log_prob * mask).sum(-1) / denom
    log_ratio = seq - seq_old
    if c["clip_log_ratio"] > 0:
        log_ratio = log_ratio.clamp(-c["clip_log_ratio"], c["clip_log_ratio"])

    # Step 2: the adaptive temperature, from batch means, outside the graph.
    tau = c["tau"]
    if c["use_adaptive_tau"]:
        with torch.no_grad():
            log_v = math.log(c["vocab_size"])
            h_static = (-seq_old / log_v).clamp(0.0, 1.0).mean()
            confidence = 1.0 - (-seq.detach() / log_v).clamp(0.0, 1.0).mean()
            spread = (advantages.max() - advantages.min()).clamp(min=1e-6)
            signal = 2.0 * ((advantages - advantages.min()) / spread).mean() - 1.0
            modulation = 1.0 + c["adaptive_tau_alpha"] * h_static + c["adaptive_tau_beta"] * confidence * (-signal)
            tau = (c["tau"] * modulation).clamp(c["adaptive_tau_min"], c["adaptive_tau_max"])

    # Step 3: anchored scores.
    scores = log_ratio / tau
    if c["clip_anchored_score"] > 0:
        scores = scores.clamp(-c["clip_anchored_score"], c["clip_anchored_score"])

    # Steps 4-5: (P, G) views and the reward softmax q.
    u = scores.view(n_prompts, g_size)
    q = torch.softmax(advantages.view(n_prompts, g_size) / c["beta_reward"], dim=-1)

    # Step 6, "opo": a geometric mixture of q and the detached p = softmax(u), normalised per
    # group (eps 1e-10 in the powers and the sum), centred, weighting the sequence log-prob.
    alpha, eps = c["alpha"], 1e-10
    p = torch.softmax(u, dim=-1).detach()
    w = (q + eps) ** alpha * (p + eps) ** (1.0 - alpha)
    w = w / (w.sum(-1, keepdim=True) + eps)
    centred = w - w.mean(-1, keepdim=True)
    scale = c["opo_direction_scale"] if c.get("opo_direction_scale") is not None else 1.0 / alpha
    direction = -scale * (centred * seq.view(n_prompts, g_size)).sum(-1)
    magnitude = 0.5 * c["opo_mu"] * log_ratio.view(n_prompts, g_size).square().mean(-1)
    loss = (direction + magnitude).mean()

    # Step 7: the logit regulariser on the mean log-partition of u.
    if c["logit_reg_coef"] > 0:
        loss = loss + c["logit_reg_coef"] * torch.logsumexp(u, dim=-1).mean().square()
    return loss, torch.as_tensor(tau)
