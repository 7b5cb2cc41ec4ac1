"""Aggregation modes, group advantages and listwise targets, against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from geobench.errors import ConfigError
from geobench.objectives import (
    aggregate,
    group_advantages,
    informative_groups,
    listwise_cross_entropy,
    overlong_penalty,
    plackett_luce_stages,
    top1_target,
)
from geobench.objectives.advantages import StageTargets

LOSS = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])  # (B=1, G=2, T=3)
MASK = torch.tensor([[[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]])


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("token-mean", (1 + 2 + 4 + 5 + 6) / 5),
        ("seq-mean-token-mean", ((1 + 2) / 2 + (4 + 5 + 6) / 3) / 2),
        ("seq-mean-token-sum", ((1 + 2) + (4 + 5 + 6)) / 2),
        ("seq-mean-token-sum-norm", (1 + 2 + 4 + 5 + 6) / (2 * 3)),
    ],
)
def test_aggregate_modes(mode, expected):
    assert aggregate(LOSS, MASK, mode).item() == pytest.approx(expected)


def test_aggregate_skips_empty_sequences_and_rejects_unknown_mode():
    mask = MASK.clone()
    mask[0, 0] = 0
    assert aggregate(LOSS, mask, "seq-mean-token-mean").item() == pytest.approx(5.0)
    assert aggregate(LOSS, mask, "seq-mean-token-sum").item() == pytest.approx(15.0)
    assert aggregate(LOSS, mask, "seq-mean-token-sum-norm").item() == pytest.approx(15.0 / 3)
    with pytest.raises(ConfigError, match="token-mean"):
        aggregate(LOSS, MASK, "sum")


def test_zscore_uses_unbiased_std_and_mean_mode_centres():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    z = group_advantages(rewards, "zscore")
    r = rewards[0].numpy()
    np.testing.assert_allclose(z[0].numpy(), (r - r.mean()) / (r.std(ddof=1) + 1e-6), rtol=1e-6)
    assert torch.all(z[1] == 0)
    assert torch.allclose(group_advantages(rewards, "mean").sum(-1), torch.zeros(2), atol=1e-6)
    with pytest.raises(ConfigError, match="zscore, mean, none"):
        group_advantages(rewards, "rank")


def test_plackett_luce_without_ties_is_listmle():
    scores = torch.tensor([[0.3, 2.0, -1.0, 0.9]])
    u = torch.tensor([[0.1, -0.4, 0.7, 0.2]])
    order = [1, 3, 0, 2]  # scores descending
    expected = -sum(u[0, order[k]] - torch.logsumexp(u[0, order[k:]], 0) for k in range(4))
    assert listwise_cross_entropy(u, plackett_luce_stages(scores)).item() == pytest.approx(expected.item(), rel=1e-6)


def test_plackett_luce_with_binary_rewards_is_one_stage_over_correct_answers():
    scores = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    u = torch.tensor([[0.5, 0.1, -0.2, 0.3]])
    stages = plackett_luce_stages(scores)
    assert stages.valid.sum().item() == 1
    expected = -0.5 * (torch.log_softmax(u, -1)[0, 0] + torch.log_softmax(u, -1)[0, 2])
    assert listwise_cross_entropy(u, stages).item() == pytest.approx(expected.item(), rel=1e-6)
    # A group where every answer has the same reward carries no ranking: zero loss.
    assert listwise_cross_entropy(u, plackett_luce_stages(torch.ones(1, 4))).item() == 0.0


def test_top1_shares_ties_and_single_stage_is_cross_entropy():
    q = top1_target(torch.tensor([[1.0, 3.0, 3.0]]))
    assert torch.allclose(q, torch.tensor([[0.0, 0.5, 0.5]]))
    u = torch.randn(2, 3)
    q = torch.softmax(torch.randn(2, 3), -1)
    ce = -(q * torch.log_softmax(u, -1)).sum(-1)
    assert torch.allclose(listwise_cross_entropy(u, StageTargets.single(q)), ce)


def test_dapo_helpers():
    rewards = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    assert informative_groups(rewards).tolist() == [False, False, True]
    pen = overlong_penalty(torch.tensor([10, 12, 14, 16, 30]), max_len=16, cache_len=4)
    assert pen.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])
    with pytest.raises(ConfigError):
        overlong_penalty(torch.tensor([1]), max_len=4, cache_len=8)


def test_softmax_target_temperature_limits():
    from geobench.objectives import softmax_target

    s = torch.tensor([[0.0, 1.0, 2.0]])
    assert torch.allclose(softmax_target(s, 1e-3), torch.tensor([[0.0, 0.0, 1.0]]), atol=1e-6)
    assert torch.allclose(softmax_target(s, 1e6), torch.full((1, 3), 1 / 3), atol=1e-5)
    assert math.isclose(softmax_target(s, 1.0).sum().item(), 1.0, rel_tol=1e-6)
