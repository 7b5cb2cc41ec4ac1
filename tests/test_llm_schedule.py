"""Issue 25's LLMConfig settings both paths read: the lr schedule, the per-prompt tau constants."""

import math

import pytest
import torch

from geobench.config import EXPERIMENTS_DIR, load_config
from geobench.errors import ConfigError
from geobench.llm.settings import LLMConfig
from geobench.llm.temperatures import per_prompt_tau
from geobench.llm.train import _scheduler
from geobench.objectives import entropy_reward_temperature


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_lr_schedule_after_warmup(schedule):
    settings = LLMConfig(steps=10, lr=1.0, warmup_ratio=0.2, lr_schedule=schedule, algos=("grpo",))
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = _scheduler(optimizer, settings)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(0.5)  # linear warm-up over 2 updates, both schedules
    if schedule == "constant":
        assert lrs[2:] == [1.0] * 8
    else:
        assert lrs[2] == 1.0 and lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_bad_lr_schedule_is_one_line():
    with pytest.raises(ConfigError, match="lr_schedule must be one of cosine, constant"):
        LLMConfig(lr_schedule="linear", algos=("grpo",))


def test_per_prompt_tau_reads_the_runs_constants_whose_defaults_are_the_recipes():
    entropy = torch.full((2, 3, 4), 0.5)
    mask = torch.ones(2, 3, 4)
    rewards = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    vocab = 16
    h = torch.full((2,), 0.5 / math.log(vocab))
    default = per_prompt_tau(0.8, entropy, mask, rewards, vocab, LLMConfig(algos=("adpo",)))
    assert torch.allclose(default, entropy_reward_temperature(0.8, h, rewards.mean(-1)))  # today's values
    paper = load_config(LLMConfig, EXPERIMENTS_DIR / "adpo_fig3.toml", "paper")
    assert (paper.adpo_tau_entropy, paper.adpo_tau_reward) == (0.2, 0.5)  # ADPO Sec. 6.3
    r = torch.tensor([0.0, 1.0])  # the group means min-max normalised over the batch
    want = (0.8 * (1 + 0.2 * h + 0.5 * (1 - h) * (1 - r))).clamp(0.1, 5.0)
    assert torch.allclose(per_prompt_tau(0.8, entropy, mask, rewards, vocab, paper), want)
