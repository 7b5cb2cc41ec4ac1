"""The verl plugin: verl's registry returns geobench's losses, called as verl calls them they give
geobench's numbers, the paper runs' configs instantiate through verl's own config classes."""

import pytest
import torch

pytest.importorskip("verl")
pytest.importorskip("hydra")

from hydra import compose, initialize_config_module  # noqa: E402
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_policy_loss_fn  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass  # noqa: E402

from geobench.integrations import verl_config  # noqa: E402
from geobench.integrations.verl import LOSSES, GeobenchPolicyLossConfig, group_batch  # noqa: E402
from geobench.integrations.verl_reward import compute_score  # noqa: E402
from geobench.objectives import make_objective  # noqa: E402

B, G, T = 3, 4, 5


def actor_config(run: str, algo: str):
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=verl_config.overrides(run, algo))
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


def verl_inputs(seed: int = 0, group: int = G):
    """Ragged responses of B prompts x G samples, prompt-major as verl orders them, GRPO advantages."""
    gen = torch.Generator().manual_seed(seed)
    n = B * group
    lengths = torch.randint(1, T + 1, (n,), generator=gen)
    mask = (torch.arange(T) < lengths.unsqueeze(-1)).float()
    log_prob = (-torch.rand(n, T, generator=gen) * 2).requires_grad_(True)
    old = log_prob.detach() + 0.1 * torch.randn(n, T, generator=gen)
    scores = torch.zeros(n, T)
    scores[torch.arange(n), lengths - 1] = torch.randint(0, 2, (n,), generator=gen).float()
    index = [f"prompt-{i // group}" for i in range(n)]
    advantages, _ = compute_grpo_outcome_advantage(scores, mask, index)
    return old, log_prob, advantages, mask


def test_entry_point_puts_every_geobench_loss_in_verls_registry():
    for name in LOSSES:
        fn = get_policy_loss_fn(f"geobench_{name}")
        assert fn.__name__ == f"geobench_{name}"


@pytest.mark.parametrize(
    "run, algo, objective, hparams",
    [
        ("opo_table1", "opo", "opo", {"alpha": 0.4, "mu": 1.0}),
        ("adpo_fig3", "adpo", "adpo", {"tau": 0.8, "target": "plackett-luce"}),
    ],
)
def test_called_as_verl_calls_it_the_loss_is_geobenchs(run, algo, objective, hparams):
    config = actor_config(run, algo)
    assert isinstance(config.policy_loss, GeobenchPolicyLossConfig) and config.policy_loss.hparams == hparams
    group = config.rollout_n
    old, log_prob, advantages, mask = verl_inputs(group=group)
    loss_fn = get_policy_loss_fn(config.policy_loss.loss_mode)
    loss, metrics = loss_fn(
        old_log_prob=old,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=config.loss_agg_mode,
        config=config,
        rollout_is_weights=None,
    )
    (grad,) = torch.autograd.grad(loss, log_prob)
    batch = group_batch(old, log_prob, advantages, mask, group)
    expected, _ = make_objective(objective, **hparams)(batch)
    (expected_grad,) = torch.autograd.grad(expected, log_prob)
    assert torch.allclose(loss, expected, atol=1e-6) and torch.allclose(grad, expected_grad, atol=1e-6)
    assert metrics and all(key.startswith("actor/geobench/") for key in metrics)
    # The advantages used are verl's: per response, zero-sum within each group.
    assert torch.allclose(batch.advantages.sum(-1), torch.zeros(B), atol=1e-5)


def test_geobench_grpo_through_verl_matches_verls_vanilla_loss():
    config = actor_config("opo_table1", "grpo")
    old, log_prob, advantages, mask = verl_inputs(seed=3, group=config.rollout_n)
    kwargs = dict(
        old_log_prob=old,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode="token-mean",
        config=config,
        rollout_is_weights=None,
    )
    ours, _ = get_policy_loss_fn("geobench_grpo")(**kwargs)
    theirs, _ = get_policy_loss_fn("vanilla")(**kwargs)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_reordered_rows_are_refused_with_the_settings_that_fix_it():
    config = actor_config("opo_table1", "opo")
    old, log_prob, advantages, mask = verl_inputs(seed=1, group=config.rollout_n)
    loss_fn = get_policy_loss_fn("geobench_opo")
    order = torch.randperm(len(old), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="balance_batch=False"):
        loss_fn(old[order], log_prob[order], advantages[order], mask[order], config=config)
    with pytest.raises(ValueError, match="not whole groups"):
        loss_fn(old[:-1], log_prob[:-1], advantages[:-1], mask[:-1], config=config)


def test_every_paper_run_instantiates_through_verls_config_classes():
    assert verl_config.runs() == ["adpo_fig3", "opo_table1"]
    for run in verl_config.runs():
        for algo in verl_config.algos_of(run):
            overrides = verl_config.overrides(run, algo)
            config = actor_config(run, algo)
            assert not config.shuffle and config.ppo_micro_batch_size_per_gpu % config.rollout_n == 0
            assert any(o == "trainer.balance_batch=False" for o in overrides)


def test_reward_function_grades_with_math_verify():
    assert compute_score("geobench/math", "so \\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert compute_score("geobench/math", "\\boxed{3}", "4") == 0.0


def test_verl_data_export_has_verls_schema(tmp_path):
    datasets = pytest.importorskip("datasets")
    import pandas as pd

    rows = {"problem": ["1+1?", "2+2?"], "solution": ["\\boxed{2}", "\\boxed{4}"], "level": ["Level 3"] * 2}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "math"))
    train, test = verl_config.export_data(str(tmp_path / "math"), (3,), tmp_path / "out")
    frame = pd.read_parquet(train)
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(frame.columns)
    assert frame["reward_model"].iloc[0]["ground_truth"] in {"2", "4"}
    assert frame["prompt"].iloc[0][0]["role"] == "user" and test.exists()
