"""MuJoCo distillation: Gaussian KL, NDCG, the anchored gradient, a real short run, clear errors."""

import math

import pandas as pd
import pytest
import torch

from geobench.distill import teacher_training, teachers
from geobench.distill.gaussian import gaussian_kl, log_density, ndcg
from geobench.distill.sweep import run
from geobench.errors import ConfigError
from geobench.objectives import GroupBatch, make_objective
from tests.conftest import cli_error


def test_closed_form_gaussian_kl_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mp, sp = torch.randn(3, generator=gen), torch.rand(3, generator=gen) + 0.3
    mq, sq = torch.randn(3, generator=gen), torch.rand(3, generator=gen) + 0.3
    x = mp + sp * torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    mc = (
        log_density(x.unsqueeze(0), mp.double().unsqueeze(0), sp.double().unsqueeze(0))
        - log_density(x.unsqueeze(0), mq.double().unsqueeze(0), sq.double().unsqueeze(0))
    ).mean()
    assert gaussian_kl(mp, sp, mq, sq).item() == pytest.approx(mc.item(), rel=0.01)
    assert gaussian_kl(mp, sp, mp, sp).item() == pytest.approx(0.0, abs=1e-6)


def test_log_density_matches_torch_distributions():
    mean, std = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.3, 2.0]])
    actions = torch.randn(1, 7, 2)
    expected = torch.distributions.Normal(mean.unsqueeze(1), std.unsqueeze(1)).log_prob(actions).sum(-1)
    assert torch.allclose(log_density(actions, mean, std), expected, atol=1e-6)


def test_ndcg_of_perfect_and_reversed_rankings():
    relevance = torch.tensor([[3.0, 2.0, 1.0]])
    assert ndcg(torch.tensor([[0.9, 0.5, 0.1]]), relevance).item() == pytest.approx(1.0)
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    reversed_dcg = 1 / math.log2(2) + 2 / math.log2(3) + 3 / math.log2(4)
    assert ndcg(torch.tensor([[0.1, 0.5, 0.9]]), relevance).item() == pytest.approx(reversed_dcg / ideal)


def test_anchored_loss_with_anchor_equal_to_student_pushes_by_uniform_minus_q():
    """ADPO Eq. (13)-(14) at u = 0: the anchored softmax is uniform, so dL/ds_i = (1/K - q_i) / (tau B)."""
    b, k, tau = 4, 6, 0.7
    s = torch.randn(b, k, requires_grad=True)
    scores = torch.randn(b, k)
    loss, _ = make_objective("adpo", tau=tau, target="softmax", beta_r=1.0, advantage="none")(
        GroupBatch.from_sequences(s, scores, ref_logp=s.detach())
    )
    (grad,) = torch.autograd.grad(loss, s)
    expected = (1.0 / k - torch.softmax(scores, -1)) / (tau * b)
    assert torch.allclose(grad.view(b, k), expected, atol=1e-7)


def test_short_distillation_on_a_real_environment_writes_the_schema(tiny_distill, tmp_path):
    config = tiny_distill
    frame = pd.read_csv(run(config, tmp_path, show_progress=False))
    assert list(frame.columns) == ["experiment", "variant", "env", "seed", "step", "metric", "value"]
    assert set(frame["variant"]) == set(config.methods)
    assert set(frame["metric"]) == {"return", "forward_return", "ndcg", "kl"}
    final = frame[frame["step"] == 6]
    assert final["value"].notna().all() and (final[final["metric"] == "kl"]["value"] >= 0).all()
    assert final[final["metric"] == "ndcg"]["value"].between(0, 1).all()
    again = pd.read_csv(run(config, tmp_path / "again", show_progress=False))
    pd.testing.assert_frame_equal(frame, again)  # same seed, same CSV


def test_missing_checkpoint_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(
        ConfigError, match=r"no teacher checkpoint in .*; run `geobench mujoco train-teacher --env Hopper-v5`"
    ):
        teachers.load_teacher("Hopper-v5", tmp_path)
    (tmp_path / "Hopper-v5").mkdir()
    (tmp_path / "Hopper-v5" / "model.zip").write_bytes(b"not a zip")
    (tmp_path / "Hopper-v5" / "teacher.json").write_text('{"algo": "ppo", "eval_return_mean": 1.0}')
    with pytest.raises(ConfigError, match="cannot read teacher checkpoint"):
        teachers.load_teacher("Hopper-v5", tmp_path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["distill", "--env", "Walker2d-v5"], "unknown env 'Walker2d-v5'; valid: HalfCheetah-v5, Hopper-v5, all"),
        (["distill", "--methods", "dpo"], "unknown distillation method 'dpo'"),
        (["train-teacher", "--env", "Ant-v5"], "no teacher settings for env 'Ant-v5'"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    assert message in cli_error("mujoco", *args, "--out", str(tmp_path))


def test_an_existing_teacher_is_replaced_only_with_overwrite_and_only_when_done(tiny_teacher, tmp_path):
    import json
    import shutil

    root = tmp_path / "teachers"
    shutil.copytree(tiny_teacher, root)
    before = (root / "Hopper-v5" / "teacher.json").read_text()
    config = teacher_training.TeacherConfig(
        env="Hopper-v5", algo="ppo", steps=256, normalize=True, eval_episodes=1, hyperparams={"n_steps": 128}
    )
    with pytest.raises(ConfigError, match="already holds a teacher; pass --overwrite"):
        teacher_training.train_teacher(config, root, show_progress=False)
    assert (root / "Hopper-v5" / "teacher.json").read_text() == before
    info = teacher_training.train_teacher(config, root, show_progress=False, overwrite=True)
    assert json.loads((root / "Hopper-v5" / "teacher.json").read_text())["steps"] == info["steps"] == 256
    assert sorted(p.name for p in root.iterdir()) == ["Hopper-v5"]  # no scratch or retired folders left


def test_a_teacher_of_zero_steps_is_refused_in_one_line(tmp_path):
    line = cli_error("mujoco", "train-teacher", "--env", "Hopper-v5", "--steps", "0", "--out", str(tmp_path))
    assert line == "geobench: error: --steps must be a positive number of environment steps; got 0"
    assert not any(tmp_path.iterdir())
