"""ADPO Fig. 1 and OPO Figs. 1-2 computed from the objective library: closed forms, conservation, drift, drawing."""

import inspect
import math
import sys

import pytest
import torch

from geobench.concepts import adpo_geometry as adpo_geo
from geobench.concepts import opo_algorithm, opo_response
from geobench.concepts.tables import read_tables, scalars
from geobench.objectives import GroupBatch, make_objective
from geobench.objectives import advantages as advantages_module
from geobench.objectives import opo as opo_module
from geobench.report import build_all, build_concept, write_report
from geobench.report.reproduction import all_claims

F64 = torch.float64


def uniform_fisher(k: int, tau: float) -> torch.Tensor:
    return (torch.eye(k, dtype=F64) / k - torch.full((k, k), 1.0 / k**2, dtype=F64)) / tau**2


@pytest.mark.parametrize("tau", [0.3, 0.8, 2.0])
@pytest.mark.parametrize("prior", [(0.2, 0.5, 0.3), (0.7, 0.2, 0.1)])
def test_adpo_curvature_at_the_anchor_is_the_uniform_fisher_over_tau_squared(tau, prior):
    """Hessian in d = log(pi / pi_ref) at d = 0: (1/tau^2)(Diag(p) - p p^T) with p = softmax(0), whatever pi_ref."""
    pi_ref, rewards = torch.tensor(prior, dtype=F64), torch.tensor(adpo_geo.REWARDS, dtype=F64)
    zero = torch.zeros(3, dtype=F64)
    for target in ("softmax", "top1"):  # one-stage targets: the same curvature for any q
        hessian = torch.autograd.functional.hessian(adpo_geo.adpo_loss(pi_ref, rewards, target, tau=tau), zero)
        assert torch.allclose(hessian, uniform_fisher(3, tau), rtol=1e-12, atol=1e-14)
    ranking = torch.autograd.functional.hessian(adpo_geo.adpo_loss(pi_ref, rewards, "plackett-luce", tau=tau), zero)
    second = torch.zeros(3, 3, dtype=F64)  # the second stage races items 2 and 3 only (App. A.4)
    second[1:, 1:] = uniform_fisher(2, tau)
    assert torch.allclose(ranking, uniform_fisher(3, tau) + second, rtol=1e-12, atol=1e-14)


def test_adpo_bowl_has_its_minimum_at_tau_log_q_with_the_fisher_at_q():
    """Eq. 16: the loss's minimum is where softmax(d / tau) = q, and the Hessian there is (1/tau^2)(Diag(q) - q q^T)."""
    tau = 0.8
    pi_ref, rewards = torch.tensor(adpo_geo.PRIOR, dtype=F64), torch.tensor(adpo_geo.REWARDS, dtype=F64)
    q = adpo_geo._target_stages(rewards, "softmax").weight[0, 0]
    loss = adpo_geo.adpo_loss(pi_ref, rewards, tau=tau)
    d_star = tau * q.log()
    grad = torch.autograd.functional.jacobian(loss, d_star)
    hessian = torch.autograd.functional.hessian(loss, d_star)
    assert grad.abs().max() < 1e-12
    assert torch.allclose(hessian, (torch.diag(q) - torch.outer(q, q)) / tau**2, rtol=1e-12, atol=1e-14)
    at_anchor = torch.autograd.functional.jacobian(loss, torch.zeros(3, dtype=F64))
    assert torch.allclose(at_anchor, (1.0 / 3 - q) / tau)  # the anchor is not the bowl's floor


def test_sft_flow_reaches_the_corner_with_a_gradient_bounded_by_the_distance_to_it():
    """|grad_z (-log P1)| = |pi - e1| >= sqrt(3/2) (1 - P1) for K = 3: zero only at the corner."""
    path = adpo_geo.sft_flow(torch.tensor(adpo_geo.PRIOR, dtype=F64), torch.tensor(adpo_geo.REWARDS, dtype=F64))
    assert path["gap"].iloc[-1] < adpo_geo.CORNER_EPS <= path["gap"].iloc[-2]
    assert (path["grad_norm"] >= math.sqrt(1.5) * path["gap"] * (1 - 1e-12)).all()
    assert path["grad_norm"].is_monotonic_decreasing  # it flattens towards the corner
    p = path[["p1", "p2", "p3"]].to_numpy()
    assert abs(p.sum(1) - 1).max() < 1e-12 and torch.allclose(
        torch.tensor(path["loss"].to_numpy()), -torch.tensor(p[:, 0]).log(), atol=1e-12
    )


def test_anchor_quadratic_holds_near_the_anchor_and_fails_far_out():
    pi_ref, rewards = torch.tensor(adpo_geo.PRIOR, dtype=F64), torch.tensor(adpo_geo.REWARDS, dtype=F64)
    loss = adpo_geo.adpo_loss(pi_ref, rewards, tau=0.8)
    rays = adpo_geo.quadratic_radius(loss, adpo_geo.taylor(loss, 3))
    assert (rays[["e1", "e2", "e3"]].sum(axis=1).abs() < 1e-12).all()  # directions in the zero-sum plane
    assert 0.2 < rays["radius"].min() <= rays["radius"].max() < adpo_geo.RAY_MAX


@pytest.mark.parametrize("alpha, mu", [(0.4, 1.0), (0.0, 2.5), (0.8, 0.7)])
def test_opo_minimiser_is_omega_minus_one_over_mu_and_conserves_probability(alpha, mu):
    """Theorem 4.3 through the library's loss: v* = (omega_alpha - 1) / mu and E_pi_k[v*] = 0."""
    pi, actions = opo_response.policy()
    adv = torch.tensor(opo_response.ADVANTAGES, dtype=F64)
    options = {**opo_response.EQ10, "alpha": alpha, "mu": mu}
    v, path = opo_response.descend(pi, actions, adv, options, eta=0.5 / mu, iterations=80)
    v_closed = (opo_response.escort_closed_form(pi, adv, alpha) - 1.0) / mu
    assert torch.allclose(v, v_closed, atol=1e-12)
    assert abs(float((pi * v).sum())) < 1e-12
    dist = [float((pi * (x - v_closed) ** 2).sum().sqrt()) for x in path[:10]]
    assert dist[9] / dist[8] == pytest.approx(0.5, rel=1e-6)  # Cor. 8.2 at eta mu = 1/2


def test_replicated_group_makes_the_objective_an_exact_expectation_under_pi_k():
    """The batch escort weight on the replicated group is rho_alpha / pi_k with E_pi_k[omega] = 1."""
    pi, actions = opo_response.policy()
    adv = torch.tensor(opo_response.ADVANTAGES, dtype=F64)
    ref = pi.log()[actions][None]
    omega = opo_module.escort_weights(adv[actions][None], ref, 0.4, "batch", use_ref=True)[0]
    closed = opo_response.escort_closed_form(pi, adv, 0.4)
    assert torch.allclose(omega, closed[actions], atol=1e-14)
    assert float((pi * closed).sum()) == pytest.approx(1.0, abs=1e-14)


def test_log_surrogate_minimiser_is_the_closed_form_in_delta_not_in_v():
    pi, actions = opo_response.policy()
    adv = torch.tensor(opo_response.ADVANTAGES, dtype=F64)
    delta, _ = opo_response.descend(pi, actions, adv, {**opo_response.EQ10, "ratio": "log"})
    v_closed = (opo_response.escort_closed_form(pi, adv, 0.4) - 1.0) / 1.0
    assert torch.allclose(delta, v_closed, atol=1e-12)
    assert float((pi * torch.expm1(delta)).sum()) > 0.1  # e^Delta* - 1 does not conserve probability


def test_every_step_of_the_flowchart_runs_in_the_bandit_opo_loop():
    steps = opo_algorithm.compute()["steps"]
    assert list(steps["name"]) == [s.name for s in opo_algorithm.STEPS]
    assert (steps["calls"] > 0).all(), steps[["name", "calls"]]


def test_the_flowchart_declares_every_function_of_the_opo_objective():
    """A new helper on OPO's loss path (in opo.py or advantages.py) must get a step, or this fails."""
    watched = {
        fn.__code__: fn
        for module in (opo_module, advantages_module)
        for _, fn in inspect.getmembers(module, inspect.isfunction)
        if fn.__module__ == module.__name__
    }
    called = set()

    def profile(frame, event, _):
        if event == "call" and frame.f_code in watched:
            called.add(watched[frame.f_code])

    batch = GroupBatch.from_sequences(torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 4))
    objective = make_objective("opo")
    sys.setprofile(profile)
    try:
        objective(objective.prepare(batch))
    finally:
        sys.setprofile(None)
    declared = {fn for s in opo_algorithm.STEPS for fn in s.functions}
    # prepare only moves the escort step to the whole mini-batch when the trainer splits it (llm/train.py)
    assert called - {opo_module.opo_prepare} <= declared, called - declared


def test_build_all_draws_the_three_figures_from_an_empty_results_folder(tmp_path):
    results, figures = tmp_path / "results", tmp_path / "figures"
    written, skipped = build_all(results, figures)
    names = {p.name for p in written}
    for stem in ("adpo_fig1", "opo_fig1", "opo_fig2"):
        assert {f"{stem}.{ext}" for ext in ("csv", "png", "pdf", "md")} <= names and stem not in skipped
        assert (figures / f"{stem}.png").stat().st_size > 20_000
    assert not results.exists()  # nothing but the library: no run read or written
    adpo = scalars(read_tables(figures / "adpo_fig1.csv")["summary"])
    assert adpo["hessian_rel_err"] < 1e-12 and 0.5 < adpo["quad_radius"] < adpo["quad_radius_max"]
    claims = all_claims(results, figures)
    concept = claims[claims["artifact"].isin(["ADPO Fig. 1", "OPO Fig. 1"])]
    assert len(concept) == 5 and set(concept["verdict"]) == {"reproduced"}
    text = write_report(results, figures).read_text()
    for heading in ("### ADPO Fig. 1: Geometric unification", "### OPO Fig. 1:", "### OPO Fig. 2:"):
        assert heading in text
    assert "![OPO Fig. 2](../figures/opo_fig2.png)" in text and "every step's function ran" in text


def test_concept_figures_are_the_same_bytes_on_a_rebuild(tmp_path):
    first = [p.read_bytes() for p in build_concept("opo_fig1", tmp_path, tmp_path / "a")]
    second = [p.read_bytes() for p in build_concept("opo_fig1", tmp_path, tmp_path / "b")]
    assert first == second
