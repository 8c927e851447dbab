"""Reference solvers and baselines: monotone WMMSE, stationarity, FP = WMMSE, a certified optimum
that no method beats, feasibility, and dispatch through the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnalloc.core import families, solve
from gnnalloc.families.power import (
    FAMILY, NormalisedProblem, PowerAllocation, PowerInstance, d2d, fp, fractional_programming,
    full_power, gaussian, greedy, optimum, score, wmmse, wmmse_powers,
)


def _objective(instance: PowerInstance, power: np.ndarray) -> float:
    return score(instance, PowerAllocation(power=power)).objective


def _normalised_gradient(problem: NormalisedProblem, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(problem.objective(x.unsqueeze(0)).sum(), x)
    return grad


@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
@pytest.mark.parametrize("make", [lambda u: gaussian(12, seed=3, utility=u), lambda u: d2d(40, seed=3, utility=u)])
def test_wmmse_history_and_projected_stationarity(make, utility):
    instance = make(utility)
    problem = NormalisedProblem.of(instance)
    trace = wmmse_powers(problem, torch.ones(1, instance.num_links, dtype=torch.float64), tol=1e-10, max_iter=3000)
    # Shi et al.: the weighted sum rate never decreases; the alpha-fair line search keeps that.
    assert (trace.history.diff() >= -1e-9 * trace.history.abs().max()).all()
    if utility == "alpha_fair":  # kinks at rate_min: no smooth stationarity to check
        return
    # KKT of max f(x) on [0, 1]^K at the end: the projected gradient step does not move.
    x = trace.power
    grad = _normalised_gradient(problem, x)
    step = (x + grad / grad.abs().max()).clamp(0, 1) - x
    assert step.abs().max() < 1e-3, step


def test_wmmse_beats_its_start_and_multistart_helps():
    instance = gaussian(10, seed=0)
    single = wmmse(instance, starts=1)
    several = wmmse(instance)
    start = _objective(instance, instance.pmax)
    assert _objective(instance, single.allocation.power) > start
    assert _objective(instance, several.allocation.power) >= _objective(instance, single.allocation.power) - 1e-12
    assert single.status == "ok" and several.method == "wmmse"


def test_fp_matches_wmmse_on_average():
    ratios = []
    for seed in range(8):
        instance = gaussian(10, seed=seed) if seed % 2 else d2d(30, seed=seed)
        ratios.append(_objective(instance, fp(instance).allocation.power) / _objective(instance, wmmse(instance, starts=1).allocation.power))
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.01)


def test_fp_and_wmmse_iterates_coincide_on_the_siso_channel():
    # With y_k^2 = a_k u_k^2 the two closed-form updates are the same map (see the docstring).
    problem = NormalisedProblem.of(gaussian(8, seed=1))
    x0 = torch.rand(3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = wmmse_powers(problem, x0, max_iter=7, tol=1e-300)
    b = fractional_programming(problem, x0, max_iter=7, tol=1e-300)
    assert torch.allclose(a.history, b.history, rtol=1e-10)


def test_alpha_fair_raises_the_worst_link():
    instance = d2d(60, seed=2, utility="alpha_fair", rate_min=0.5)
    as_sum_rate = d2d(60, seed=2, rate_min=0.5)
    fair = score(instance, wmmse(instance).allocation)
    greedy_rate = score(as_sum_rate, wmmse(as_sum_rate).allocation)
    assert fair.links_off < greedy_rate.links_off
    assert fair.jain > greedy_rate.jain
    assert fair.rate_p5 >= greedy_rate.rate_p5
    # and on its own utility the fair allocation is at least as good
    assert fair.objective >= score(instance, wmmse(as_sum_rate).allocation).objective


@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
def test_baselines_are_feasible(utility):
    instance = d2d(80, seed=1, utility=utility)
    for method in (full_power, greedy, wmmse, fp):
        result = method(instance)
        report = score(instance, result.allocation)
        assert report.max_violation == 0.0, method.__name__
        assert np.isfinite(report.objective)
    on_off = greedy(instance).allocation.power
    assert set(np.unique(on_off / instance.pmax)) <= {0.0, 1.0}
    assert _objective(instance, on_off) >= _objective(instance, np.zeros(80))


def test_greedy_adds_links_while_the_objective_grows():
    instance = gaussian(6, seed=5)
    chosen = greedy(instance).allocation.power > 0
    best = _objective(instance, np.where(chosen, instance.pmax, 0.0))
    for k in np.flatnonzero(~chosen):  # no single further link improves
        more = chosen.copy()
        more[k] = True
        assert _objective(instance, np.where(more, instance.pmax, 0.0)) <= best + 1e-12


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
def test_optimum_beats_every_method(size, utility):
    for seed in range(3):
        instance = gaussian(size, seed=10 * size + seed, utility=utility)
        best = optimum(instance, time_limit=20.0 if utility == "sum_rate" else 4.0)
        value = _objective(instance, best.allocation.power)
        assert best.upper_bound is not None and best.upper_bound >= value - 1e-9
        if utility == "sum_rate":
            assert best.certified_optimal and best.status == "optimal"
            assert best.upper_bound - value <= 1e-6 * abs(value) + 1e-12
        for method in (wmmse, fp, full_power, greedy):
            other = _objective(instance, method(instance).allocation.power)
            assert other <= best.upper_bound + 1e-9
            assert other <= value + 1e-9
        assert score(instance, best.allocation).max_violation == 0.0


@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
def test_optimum_matches_a_fine_grid_at_two_links(utility):
    for seed in range(4):
        instance = gaussian(2, seed=seed, utility=utility)
        problem = NormalisedProblem.of(instance)
        grid = torch.linspace(0, 1, 801, dtype=torch.float64)
        x = torch.cartesian_prod(grid, grid)
        brute = float(problem.objective(x).max())
        best = optimum(instance)
        value = _objective(instance, best.allocation.power)
        assert best.certified_optimal
        # nothing on the grid is better, beyond the certification tolerance
        assert value >= brute - 1e-6 * max(abs(value), 2.0)
        assert value == pytest.approx(brute, rel=1e-4, abs=1e-6)  # and the grid gets close


def test_optimum_refuses_large_instances_by_name():
    with pytest.raises(ValueError, match=r"^links: the optimum method handles at most 4 links"):
        optimum(gaussian(5))


def test_options_are_checked_by_name():
    instance = gaussian(4)
    for bad, name in (({"tol": 0.0}, "tol"), ({"starts": 0}, "starts"), ({"max_iter": -1}, "max_iter")):
        with pytest.raises(ValueError, match=rf"^{name}:"):
            wmmse(instance, **bad)
    with pytest.raises(ValueError, match=r"^time_limit:"):
        optimum(instance, time_limit=-1.0)



@pytest.mark.parametrize(
    "bad,name",
    [
        ({"starts": 10**12}, "starts"),  # was an 80 TB allocation
        ({"starts": 1025}, "starts"),
        ({"seed": 2**70}, "seed"),  # was an unnamed "Overflow"
        ({"seed": 2**63}, "seed"),
    ],
)
def test_unbounded_counts_are_named(bad, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        solve(gaussian(4), "wmmse", **bad)


def test_numpy_integer_options_are_accepted():
    instance = gaussian(6, seed=2)
    plain = solve(instance, "wmmse", starts=3, seed=5, max_iter=50).allocation.power
    numpy = solve(instance, "wmmse", starts=np.int64(3), seed=np.int64(5), max_iter=np.int64(50)).allocation.power
    assert np.array_equal(plain, numpy)
    assert solve(instance, "wmmse", starts=1024).allocation.power.shape == (6,)  # the largest allowed

def test_solve_through_the_registry():
    assert families()["power"] is FAMILY
    instance = gaussian(6, seed=1)
    result = solve(instance)  # the reference method: wmmse
    assert result.method == "wmmse" and isinstance(result.allocation, PowerAllocation)
    assert solve(instance, "wmmse", starts=2, tol=1e-6).method == "wmmse"
    for name in ("fp", "full_power", "greedy", "optimum"):
        assert solve(instance if name != "optimum" else gaussian(3), name).method == name
    with pytest.raises(ValueError, match=r"^method: unknown 'exact' for the power family"):
        solve(instance, "exact")
    with pytest.raises(ValueError, match=r"^rtol: only method 'optimum' takes it, not 'wmmse'"):
        solve(instance, "wmmse", rtol=1e-3)


def test_wmmse_at_real_path_loss_scales():
    # gains of 1e-15 and noise of 1e-14 give the same powers as the same channel scaled up
    instance = d2d(30, seed=0)
    scaled = PowerInstance.build(
        instance.link_ids, instance.pmax, instance.gain_matrix() * 1e6, instance.noise * 1e6,
    )
    a, b = wmmse(instance).allocation.power, wmmse(scaled).allocation.power
    assert np.allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("utility", ["sum_rate", "alpha_fair"])
def test_methods_work_under_inference_mode(utility):
    # the server runs methods under torch.inference_mode(); the alpha-fair weights use autograd
    instance = gaussian(5, seed=2, utility=utility)
    expected = [method(instance).allocation.power for method in (wmmse, fp, greedy)]
    with torch.inference_mode():
        got = [method(instance).allocation.power for method in (wmmse, fp, greedy)]
        small = optimum(gaussian(2, seed=2, utility=utility), time_limit=5.0)
    for a, b in zip(expected, got):
        assert np.array_equal(a, b)
    assert small.upper_bound is not None
