"""The compiled smoothed-dual kernels against their references: the torch dual (value, gradient,
response) and scipy's L-BFGS-B (the minimum it reaches)."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from gnnalloc import eua_instance, random_instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.solvers._dual import (
    _CompiledDual, _CurvatureMemory, _price_scale, _reference_price, _SmoothedDual, _UserConstants,
)
from gnnalloc.families.edge.solvers.functional import waterfill_prices


def _duals(problem: ProblemTensors, temperature: float) -> tuple[_SmoothedDual, _CompiledDual, torch.Tensor]:
    start = waterfill_prices(problem)
    constants = _UserConstants.of(problem, temperature, _reference_price(problem, start))
    return _SmoothedDual(problem, constants), _CompiledDual(problem, constants), start


def _random_prices(problem: ProblemTensors, start: torch.Tensor, seed: int) -> np.ndarray:
    """Around the water-filling start; a third of the links free (price exactly 0)."""
    rng = np.random.default_rng(seed)
    server = start.numpy() * np.exp(rng.normal(size=problem.num_servers))
    link = float(server.mean()) * rng.uniform(0.0, 3.0, problem.num_links)
    link[rng.random(problem.num_links) < 1 / 3] = 0.0
    return np.concatenate([server, link])


def _eua_start(temperature: float) -> tuple[_CompiledDual, np.ndarray, np.ndarray]:
    """The compiled dual of a 200-user EUA instance at ``temperature``, its water-filling start
    (links free) and its price scale: what the minimiser tests run from."""
    problem = ProblemTensors.from_instance(eua_instance(200, 1.4, 9))
    _, compiled, server_start = _duals(problem, temperature)
    start = np.concatenate([server_start.numpy(), np.zeros(problem.num_links)])
    return compiled, start, _price_scale(problem, server_start).numpy()


def _assert_same_evaluation(reference: _SmoothedDual, compiled: _CompiledDual, prices: np.ndarray) -> None:
    value, gradient, compute = compiled.evaluate(prices)
    expected_value, expected_gradient, expected_compute = reference(torch.from_numpy(prices))
    scale = float(np.abs(expected_gradient.numpy()).max()) + 1.0
    assert value == pytest.approx(float(expected_value), rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(gradient, expected_gradient.numpy(), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(compute, expected_compute.numpy(), rtol=1e-10, atol=1e-12 * scale)


def _eua_duals(alpha: float, temperature: float) -> tuple[ProblemTensors, _SmoothedDual, _CompiledDual, torch.Tensor]:
    """A 150-user EUA instance at ``alpha`` and both its duals at ``temperature``."""
    problem = ProblemTensors.from_instance(dataclasses.replace(eua_instance(150, 1.2, 7), alpha=alpha))
    return (problem, *_duals(problem, temperature))


# 2 and 0.5 take the kernel's square root and square, 3 and 0.7 its general power, 1 +- 1e-9 and
# 1 - 1e-5 its expm1 near alpha = 1 (where the power's quotient would cancel to a few digits).
@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5, 3.0, 0.7, 1.0 + 1e-9, 1.0 - 1e-9, 1.0 - 1e-5])
@pytest.mark.parametrize("temperature", [0.01, 0.3])
def test_evaluation_matches_the_torch_dual(alpha, temperature):
    problem, reference, compiled, start = _eua_duals(alpha, temperature)
    for seed in range(4):
        _assert_same_evaluation(reference, compiled, _random_prices(problem, start, seed))
    # Far below the starting prices most users buy above their minimum, at ratios over many
    # orders of magnitude (the power's whole range, up to the price floor's).
    for shrink in (1e-3, 1e-9):
        _assert_same_evaluation(reference, compiled, np.concatenate([shrink * start.numpy(), np.zeros(problem.num_links)]))
    # At the starting prices (every link free) too.
    _assert_same_evaluation(reference, compiled, np.concatenate([start.numpy(), np.zeros(problem.num_links)]))


def test_pairs_of_weight_zero_add_their_products_with_zero_even_where_they_are_nan():
    # The kernel skips a pair of weight 0 (its logit 999 below the cheapest: e^-999 underflows)
    # only where its products with 0 are exact zeros. A user buying an infinite amount (its
    # weight infinite) makes them NaN, and NaN reaches that pair's server too, as the plain
    # sums over every pair (and the torch reference's) would have it.
    from gnnalloc.families.edge.solvers._dual_kernel import evaluate_dual

    def gradient_at(weight: float) -> np.ndarray:
        prices = np.array([1.0, 1000.0, 0.0])  # two servers, no link; the home slot's 0 last
        gradient, compute, buffer, curvature = np.empty(3), np.empty(2), np.empty(2), np.empty(3)
        evaluate_dual(
            prices, np.ones(2), np.array([0, 2]), np.array([0, 1]), np.array([2, 2]), np.zeros(2),
            np.array([weight]), np.ones(1), np.ones(1), np.array([1e-12]), np.array([-10.0]), np.ones(1),
            np.ones(1), True, gradient, compute, buffer, curvature,
        )
        return gradient[:2]

    assert gradient_at(2.0)[1] == 1.0  # the expensive server: its supply, nobody buys there
    assert np.isnan(gradient_at(float("inf"))).all()


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5, 3.0])
@pytest.mark.parametrize("temperature", [0.01, 0.3])
def test_curvature_is_the_torch_duals_hessian_diagonal(alpha, temperature):
    # The minimiser's diagonal scaling: the Jacobian of the reference's gradient, on its diagonal.
    problem, reference, compiled, start = _eua_duals(alpha, temperature)
    # Seed 3: every price 0, so every user's soft-min price is at its floor (where B' = 0). Some
    # prices 0 and others not would leave users just above their floor buying astronomically
    # much, where the exponentials the kernel skips below e^-40 matter.
    for seed in range(4):
        prices = _random_prices(problem, start, seed) if seed < 3 else np.zeros(problem.num_servers + problem.num_links)
        jacobian = torch.autograd.functional.jacobian(lambda p: reference(p)[1], torch.from_numpy(prices))
        expected = torch.diagonal(jacobian).numpy()  # the Hessian: the gradient's Jacobian
        curvature = compiled.curvature(prices)
        assert (curvature >= 0).all() and expected.max() > 0
        np.testing.assert_allclose(curvature, expected, rtol=1e-9, atol=1e-12 * expected.max())


def _floored_by_the_reference(reference: _SmoothedDual, prices: np.ndarray) -> int:
    """Users with pairs whose soft-min price, computed in torch from the reference's pair costs
    and scales, is below their floor."""
    problem, constants = reference.problem, reference.constants
    padded = torch.cat([torch.from_numpy(prices), torch.zeros(1, dtype=torch.float64)])
    cost = (padded[reference.price_index].view(2, -1) * reference.price_weight).sum(0)
    floored = 0
    for user in range(problem.num_users):
        mine = problem.pair_user == user
        if bool(mine.any()):
            scale = constants.scale[user]
            soft_min = -scale * torch.logsumexp(-cost[mine] / scale, 0)
            floored += int(soft_min < constants.price_floor[user])
    return floored


@pytest.mark.parametrize("temperature", [0.01, 0.3])
def test_floored_users_are_those_whose_soft_min_price_is_below_its_floor(temperature):
    problem, reference, compiled, start = _eua_duals(2.0, temperature)
    counts = []
    # Every price shrunk: the soft-min sits up to t ln(pairs) below the cheapest pair, so users
    # with several near-cheapest pairs reach their floor first.
    for shrink in (1.0, 0.1, 0.02, 1e-3, 0.0):
        prices = np.concatenate([shrink * start.numpy(), np.zeros(problem.num_links)])
        counts.append(compiled.floored_users(prices))
        assert counts[-1] == _floored_by_the_reference(reference, prices)
    with_pairs = int(torch.unique(problem.pair_user).numel())
    assert counts[0] == 0 and counts[-1] == with_pairs  # all prices 0: every user with pairs floored
    assert any(0 < count < problem.num_users for count in counts)


def test_a_minimisation_told_to_stop_at_a_floored_start_does_and_runs_as_before_from_any_other(minimiser_evaluations):
    compiled, start, scale = _eua_start(0.3)
    floored = 0.1 * start
    assert compiled.floored_users(floored) > 0 and compiled.floored_users(start) == 0
    evaluations = minimiser_evaluations
    prices, value, done, _ = compiled.minimise(floored, scale, 20, stop_at_floored_start=True)
    # Exactly the start: its server prices are a tenth of their scale (the start), links 0.
    assert done == 0 and np.array_equal(prices, floored) and value == compiled.evaluate(floored)[0]
    assert evaluations == [1]  # the start's evaluation only
    compiled.minimise(floored, scale, 20)
    assert evaluations[1] > 1  # without it, L-BFGS tries
    told = compiled.minimise(start, scale, 20, stop_at_floored_start=True)
    untold = compiled.minimise(start, scale, 20)
    np.testing.assert_array_equal(told[0], untold[0])
    assert told[1:] == untold[1:] and told[2] == 20


def test_shuffled_pairs_are_regrouped_and_returned_in_their_order():
    problem = ProblemTensors.from_instance(random_instance(60, 6, 1.1, 3))
    perm = torch.randperm(problem.num_pairs, generator=torch.Generator().manual_seed(0))
    shuffled = dataclasses.replace(
        problem,
        **{name: getattr(problem, name)[perm] for name in ("pair_user", "pair_server", "pair_link", "pair_link_weight")},
    )
    reference, compiled, start = _duals(shuffled, 0.05)
    assert compiled.order is not None and not reference.contiguous  # the regrouping paths
    prices = _random_prices(shuffled, start, 1)
    _assert_same_evaluation(reference, compiled, prices)
    _, _, in_order = _duals(problem, 0.05)[1].evaluate(prices)
    np.testing.assert_allclose(compiled.evaluate(prices)[2], in_order[perm.numpy()], rtol=1e-12, atol=1e-15)


def test_users_without_pairs_are_dropped():
    instance = random_instance(40, 4, 1.0, 2)
    problem = ProblemTensors.from_instance(instance)
    # Remove every pair of the first five users: they can buy nothing and pay the drop penalty.
    keep = problem.pair_user >= 5
    stripped = dataclasses.replace(
        problem,
        **{name: getattr(problem, name)[keep] for name in ("pair_user", "pair_server", "pair_link", "pair_link_weight")},
    )
    reference, compiled, start = _duals(stripped, 0.1)
    _assert_same_evaluation(reference, compiled, _random_prices(stripped, start, 0))


def _scipy_minimum(reference: _SmoothedDual, start: np.ndarray, scale: np.ndarray, iterations: int) -> float:
    def value_and_gradient(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient, _ = reference(torch.from_numpy(z * scale))
        return float(value), gradient.numpy() * scale

    result = minimize(
        value_and_gradient, start / scale, jac=True, method="L-BFGS-B",
        bounds=[(0.0, None)] * start.size, options=dict(maxiter=iterations, ftol=0.0, gtol=1e-12),
    )
    return float(result.fun)


@pytest.mark.parametrize(
    "make, temperature",
    [(lambda: random_instance(50, 5, 1.2, 4), 0.3), (lambda: eua_instance(120, 1.0, 2), 0.1)],
)
def test_minimiser_reaches_scipys_minimum(make, temperature):
    problem = ProblemTensors.from_instance(make())
    reference, compiled, server_start = _duals(problem, temperature)
    start = np.concatenate([server_start.numpy(), np.zeros(problem.num_links)])
    scale = _price_scale(problem, server_start).numpy()
    prices, value, iterations, _ = compiled.minimise(start, scale, 3000)
    expected = _scipy_minimum(reference, start, scale, 3000)
    assert value == pytest.approx(expected, rel=1e-7, abs=1e-7)
    assert value == pytest.approx(compiled.evaluate(prices)[0], rel=1e-12)
    assert (prices >= 0).all() and 0 < iterations <= 3000


def test_minimiser_runs_the_iterations_asked_and_never_raises_the_value():
    compiled, start, scale = _eua_start(0.03)
    values = [compiled.evaluate(start)[0]]
    for iterations in (1, 10, 50):
        prices, value, done, _ = compiled.minimise(start, scale, iterations)
        assert done == iterations
        assert value <= values[-1] + 1e-9 * abs(values[-1])
        values.append(value)
    prices, value, done, _ = compiled.minimise(start, scale, 0)
    assert done == 0 and value == pytest.approx(values[0]) and np.array_equal(prices, start)


def test_an_evaluation_limit_stops_at_the_first_iteration_that_would_start_at_or_past_it(minimiser_evaluations):
    compiled, start, scale = _eua_start(0.03)
    counted = minimiser_evaluations
    free = compiled.minimise(start, scale, 40)
    limited = compiled.minimise(start, scale, 40, max_evaluations=20)
    same = compiled.minimise(start, scale, limited[2])
    compiled.minimise(start, scale, limited[2] - 1)  # counted: the run one iteration shorter
    free_evaluations, limited_evaluations, _, fewer_evaluations = counted
    assert free[2] == 40 and free_evaluations > 20
    # Checked before each iteration: the last one run started below the limit (the line search
    # may take it past), and none starts at or past it.
    assert 0 < limited[2] < 40 and fewer_evaluations < 20 <= limited_evaluations
    # Up to there, the same run as one asked for that many iterations.
    np.testing.assert_array_equal(limited[0], same[0])
    assert limited[1] == same[1] and limited[3] == same[3]


def test_a_sample_of_the_users_has_nearly_the_whole_duals_minimiser():
    problem = ProblemTensors.from_instance(random_instance(2000, 10, 1.0, 3))  # 200 users per server
    _, compiled, server_start = _duals(problem, 0.03)
    start = np.concatenate([server_start.numpy(), np.zeros(problem.num_links)])
    scale = _price_scale(problem, server_start).numpy()
    whole = compiled.minimise(start, scale, 300)[0]
    # All of them: the same dual, to the bit.
    everyone = compiled.subsample(1.0)
    assert everyone.share == 1.0 and np.array_equal(everyone.minimise(start, scale, 300)[0], whole)
    sample = compiled.subsample(0.25)
    assert sample.share == 0.25 and sample.num_pairs < 0.3 * compiled.num_pairs
    np.testing.assert_allclose(sample.supply, 0.25 * compiled.supply)
    # Exactly the kept users' pairs and constants, in order.
    user_start, kept = compiled.pairs[0], sample.kept_users
    assert compiled.kept_users is None and kept.shape[0] == 500 and np.all(np.diff(kept) > 0)
    pairs = np.concatenate([np.arange(user_start[u], user_start[u + 1]) for u in kept])
    for whole_part, sample_part in zip(compiled.pairs[1:], sample.pairs[1:]):
        np.testing.assert_array_equal(sample_part, whole_part[pairs])
    np.testing.assert_array_equal(np.diff(sample.pairs[0]), np.diff(user_start)[kept])
    for whole_part, sample_part in zip(compiled.users[:-1], sample.users[:-1]):
        np.testing.assert_array_equal(sample_part, whole_part[kept])
    with pytest.raises(ValueError, match="fraction"):
        compiled.subsample(0.0)
    # A quarter of them: within 30 % of the whole minimiser's server prices, where the
    # water-filling start is 169 % off (median of the servers priced).
    priced = whole[:problem.num_servers] > 0
    def off(prices):
        return np.median(np.abs(prices[:problem.num_servers][priced] / whole[:problem.num_servers][priced] - 1))
    assert off(sample.minimise(start, scale, 300)[0]) < 0.3 < off(start)
    # The draw is the seed's.
    assert np.array_equal(compiled.subsample(0.25).pairs[1], sample.pairs[1])
    assert not np.array_equal(compiled.subsample(0.25, seed=1).pairs[1], sample.pairs[1])


def test_a_run_continued_with_its_memory_is_the_uninterrupted_run():
    compiled, start, scale = _eua_start(0.01)
    whole, whole_value, _, _ = compiled.minimise(start, scale, 20)
    memory = _CurvatureMemory(start.size)
    part, _, done, _ = compiled.minimise(start, scale, 15, memory=memory)
    assert done == 15 and memory.ring[0] > 0
    continued, continued_value, done, _ = compiled.minimise(part, scale, 5, memory=memory)
    assert done == 5
    # The same iterates up to the rounding of the prices between the runs (which L-BFGS
    # amplifies: about 1e-14 here after 5 iterations, 1e-10 after 10) ...
    difference = np.abs(continued - whole).max() / whole.max()
    assert difference <= 1e-11 and continued_value == pytest.approx(whole_value, rel=1e-12)
    # ... which a restart (no memory) does not give.
    restarted = compiled.minimise(part, scale, 5)[0]
    assert np.abs(restarted - whole).max() / whole.max() > 1e4 * max(difference, 1e-16)
    # A memory kept for other prices is refused (the kernel does not bound-check).
    with pytest.raises(ValueError, match="memory: kept for"):
        compiled.minimise(start, scale, 5, memory=_CurvatureMemory(start.size + 1))


@pytest.mark.parametrize(
    "make", [lambda: eua_instance(816, 0.6, 11), lambda: random_instance(816, 60, 1.0, 13)], ids=["eua", "random"],
)
def test_diagonal_scaling_reaches_a_residual_in_few_iterations(make):
    # Without the Hessian diagonal in H0 (the scalar s'y / y'y) each needs over 900 iterations
    # (benchmarks/RESULTS.md, the dual's kernel).
    instance = make()
    problem = ProblemTensors.from_instance(instance)
    _, compiled, server_start = _duals(problem, 0.01)
    start = np.concatenate([server_start.numpy(), np.zeros(problem.num_links)])
    tolerance = 0.02 * float(instance.weight.sum())
    _, _, iterations, residual = compiled.minimise(start, _price_scale(problem, server_start).numpy(), 3000, tolerance)
    assert residual <= tolerance and iterations <= 500


def test_load_dual_kernels_leaves_both_compiled(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual, load_dual_kernels
    from gnnalloc.families.edge.solvers._dual_kernel import (
        clear_links, evaluate_dual, lagrangian_compute_part, minimise_dual, scaled_residual,
    )

    load_dual_kernels()
    assert evaluate_dual.signatures and minimise_dual.signatures and scaled_residual.signatures
    assert clear_links.signatures and lagrangian_compute_part.signatures
    # Whatever an earlier test compiled: the loader itself calls every kernel (a kernel compiles
    # on its first call), each from Python, as solve_dual does.
    kernels = ("clear_links", "evaluate_dual", "lagrangian_compute_part", "minimise_dual", "scaled_residual")
    called = set()
    for name in kernels:
        kernel = getattr(_dual, name)
        monkeypatch.setattr(_dual, name, lambda *args, _k=kernel, _n=name: called.add(_n) or _k(*args))
    # The water-filling prices' kernel too (solve_dual's cold start), through waterfill_prices.
    from gnnalloc.families.edge.solvers import functional

    prices_kernel = functional.group_prices
    monkeypatch.setattr(functional, "group_prices", lambda *args: called.add("group_prices") or prices_kernel(*args))
    load_dual_kernels.__wrapped__()
    assert called == {*kernels, "group_prices"}


_ORDER_SCRIPT = """
import sys
import numpy as np
from gnnalloc import eua_instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.solvers import _dual as D
from gnnalloc.families.edge.solvers.functional import waterfill_prices
problem = ProblemTensors.from_instance(eua_instance(300, 1.4, 6))
start = waterfill_prices(problem)
dual = D._CompiledDual(problem, D._UserConstants.of(problem, 0.03, D._reference_price(problem, start)))
prices = np.concatenate([start.numpy(), np.zeros(problem.num_links)])
if sys.argv[1] == "evaluate-first":
    dual.evaluate(prices)
print(repr(dual.minimise(prices, D._price_scale(problem, start).numpy(), 300)[1]))
"""


@pytest.mark.slow
def test_result_does_not_depend_on_which_kernel_compiles_first(tmp_path):
    # numba lets a callee compiled inside its caller inherit the caller's fastmath flags: the
    # minimiser's rounding (and after 300 iterations its result, -514.0873 against -514.0684
    # here) once depended on whether the evaluation kernel had been compiled on its own first.
    runs = []
    for order in ("evaluate-first", "minimise-first"):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / order)}
        runs.append(subprocess.Popen(
            [sys.executable, "-c", _ORDER_SCRIPT, order], env=env, stdout=subprocess.PIPE, text=True
        ))
    values = [run.communicate(timeout=300)[0].strip() for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert values[0] == values[1]


def test_minimiser_stops_at_the_residual_tolerance_and_reports_the_residual():
    from gnnalloc.families.edge.solvers._dual import kkt_residual

    compiled, start, scale = _eua_start(0.03)
    # Without a tolerance the residual is still reported: the same sum from the gradient.
    prices, _, done, residual = compiled.minimise(start, scale, 50)
    assert done == 50
    assert residual == pytest.approx(kkt_residual(prices, compiled.evaluate(prices)[1], scale), rel=1e-9)
    at_start = compiled.minimise(start, scale, 0)[3]
    assert at_start == pytest.approx(kkt_residual(start, compiled.evaluate(start)[1], scale), rel=1e-12)
    # With one, L-BFGS stops at the first iterate whose residual reaches it.
    tolerance = at_start / 100
    prices, _, done, residual = compiled.minimise(start, scale, 3000, tolerance)
    assert 0 < done < 3000 and residual <= tolerance
    assert residual == pytest.approx(kkt_residual(prices, compiled.evaluate(prices)[1], scale), rel=1e-9)
    assert compiled.minimise(start, scale, done - 1, 0.0)[3] > tolerance
    # A start that already meets it takes no step.
    assert compiled.minimise(start, scale, 3000, 2 * at_start)[2] == 0


def test_the_residual_vanishes_at_the_minimiser_and_prices_overloads_at_their_scale():
    from gnnalloc.families.edge.solvers._dual import kkt_residual

    problem = ProblemTensors.from_instance(random_instance(50, 5, 1.2, 4))
    _, compiled, server_start = _duals(problem, 0.3)
    start = np.concatenate([server_start.numpy(), np.zeros(problem.num_links)])
    scale = _price_scale(problem, server_start).numpy()
    prices, _, _, residual = compiled.minimise(start, scale, 3000)
    assert residual < 1e-6 * kkt_residual(start, compiled.evaluate(start)[1], scale)
    # An overloaded capacity at price 0 counts at its scale: (supply - use) < 0 there.
    gradient = np.zeros_like(prices)
    gradient[0] = -2.0
    assert kkt_residual(np.zeros_like(prices), gradient, scale) == pytest.approx(2.0 * scale[0])


@pytest.mark.parametrize("seed", range(4))
def test_clearing_a_lone_link_brings_its_load_to_its_capacity(seed):
    # One link between two servers: its load falls as its price rises, and the bisection ends
    # within its final bracket around the price at which it equals capacity (or at price 0
    # where even a free link is not overloaded). The server prices stay.
    from gnnalloc.families.edge.solvers._dual_kernel import _CLEARING_BRACKET

    problem = ProblemTensors.from_instance(random_instance(60, 2, 1.3, seed))
    assert problem.num_links == 1
    reference, compiled, start = _duals(problem, 0.01)
    scale = _price_scale(problem, start).numpy()
    prices = _random_prices(problem, start, seed)
    prices[-1] = 5.0 * scale[-1]  # far above or below wherever it clears
    cleared = compiled.clear_links(prices, scale, problem.num_servers, 12, 1e-3)[0]
    np.testing.assert_array_equal(cleared[:-1], prices[:-1])
    link_gradient = lambda price: float(reference(torch.from_numpy(np.append(cleared[:-1], price)))[1][-1])
    if cleared[-1] == 0.0:
        assert link_gradient(0.0) >= 0.0  # free and still within capacity
    else:
        width = (_CLEARING_BRACKET[1] - _CLEARING_BRACKET[0]) / 2 ** 12
        assert link_gradient(cleared[-1] * np.exp(-width)) < 0.0 < link_gradient(cleared[-1] * np.exp(width))
    assert cleared[-1] != prices[-1]


def test_a_link_within_capacity_even_when_free_is_cleared_to_price_zero():
    problem = ProblemTensors.from_instance(dataclasses.replace(
        random_instance(60, 2, 1.3, 0), link_capacity=np.array([1e9]),
    ))
    reference, compiled, start = _duals(problem, 0.01)
    scale = _price_scale(problem, start).numpy()
    prices = np.concatenate([start.numpy(), [3.0 * scale[-1]]])
    assert float(reference(torch.from_numpy(np.append(prices[:-1], 0.0)))[1][-1]) > 0  # never overloaded
    cleared = compiled.clear_links(prices, scale, problem.num_servers, 12, 1e-3)[0]
    assert cleared[-1] == 0.0


def test_clearing_keeps_links_that_already_clear_and_lowers_the_dual_over_the_others():
    # At an earlier solve's prices, the links clear to 0.1 % (by the torch reference) keep
    # their prices. Random link prices on an EUA instance (hundreds of links sharing users): the
    # links move, the servers stay, and the dual falls a long way (the links are bisected
    # together, each against the others' trial prices, so links that share users end near a
    # joint clearing, not exactly at it).
    problem = ProblemTensors.from_instance(eua_instance(150, 1.2, 7))
    reference, compiled, start = _duals(problem, 0.01)
    scale = _price_scale(problem, start).numpy()
    num_servers = problem.num_servers
    converged = compiled.minimise(np.concatenate([start.numpy(), np.zeros(problem.num_links)]), scale, 3000)[0]
    gradient = reference(torch.from_numpy(converged))[1].numpy()[num_servers:]
    capacity, link_price = compiled.supply[num_servers:], converged[num_servers:]
    clear = np.where(link_price > 0, np.abs(gradient) <= 1e-3 * capacity, gradient >= -1e-3 * capacity)
    assert clear.mean() > 0.9
    kept = compiled.clear_links(converged, scale, num_servers, 12, 1e-3)[0]
    np.testing.assert_array_equal(kept[:num_servers], converged[:num_servers])
    np.testing.assert_array_equal(kept[num_servers:][clear], link_price[clear])
    for seed in range(3):
        prices = _random_prices(problem, start, seed)
        cleared, value = compiled.clear_links(prices, scale, num_servers, 12, 1e-3)
        assert value == compiled.evaluate(prices)[0]  # the dual at the given prices, returned with them
        np.testing.assert_array_equal(cleared[:num_servers], prices[:num_servers])
        assert (cleared[num_servers:] != prices[num_servers:]).mean() > 0.5
        before, after = compiled.evaluate(prices)[0], compiled.evaluate(cleared)[0]
        assert before - after > 0.3 * abs(before)


def _torch_compute_terms(problem: ProblemTensors, prices: np.ndarray) -> float:
    from gnnalloc.families.edge.solvers._bound import compute_part

    server, link = torch.from_numpy(prices[:problem.num_servers]), torch.from_numpy(prices[problem.num_servers:])
    return float(compute_part(problem, server, link))


def _compiled_compute_terms(problem: ProblemTensors, prices: np.ndarray) -> float:
    from gnnalloc.families.edge.solvers._dual import _bound_arrays
    from gnnalloc.families.edge.solvers._dual_kernel import lagrangian_compute_part

    server = np.ascontiguousarray(prices[:problem.num_servers])
    link = np.ascontiguousarray(prices[problem.num_servers:])
    return float(lagrangian_compute_part(server, link, *_bound_arrays(problem)))


def _assert_same_bound(problem: ProblemTensors, prices: np.ndarray) -> None:
    expected = _torch_compute_terms(problem, prices)
    got = _compiled_compute_terms(problem, prices)
    if np.isinf(expected):
        assert got == expected
    else:
        assert got == pytest.approx(expected, rel=1e-13, abs=1e-12)


# 2 and 0.5 the general power, 1 the log, 1 + 1e-13 the log branch of a power utility
# (|1 - alpha| < 1e-12), 1 - 1e-9 the power just outside it, 5 a steep one; penalty 1 (drop
# price = end of the above-minimum regime) and 25.
@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5, 5.0, 1.0 + 1e-13, 1.0 - 1e-9])
@pytest.mark.parametrize("penalty", [1.0, 10.0, 25.0])
def test_the_compiled_bound_terms_are_the_torch_bounds(alpha, penalty):
    problem, _, _, start = _eua_duals(alpha, 0.01)
    problem = dataclasses.replace(problem, penalty=torch.full_like(problem.penalty, penalty))
    for seed in range(4):
        _assert_same_bound(problem, _random_prices(problem, start, seed))
    # Prices across every regime: far below (above the minimum), around w/m (at it) and far above
    # (dropped), and exactly 0 on some servers (free: the utility's supremum, inf at alpha <= 1).
    for shrink in (1e-6, 1.0, 1e3, 1e6):
        prices = np.concatenate([shrink * start.numpy(), np.zeros(problem.num_links)])
        _assert_same_bound(problem, prices)
    prices = _random_prices(problem, start, 5)
    prices[:3] = 0.0
    _assert_same_bound(problem, prices)
    # A subnormal price: the response overflows and the term is NaN, which both make inf (at
    # alpha > 1 the response stays finite).
    prices[:3] = 1e-310
    _assert_same_bound(problem, prices)
    if alpha < 1:
        assert np.isinf(_compiled_compute_terms(problem, prices))


def test_the_compiled_bound_terms_leave_out_closed_capacities_and_mix_alphas():
    instance = random_instance(80, 8, 1.2, 5)
    compute = instance.server_compute.copy()
    compute[:3] = 0.0  # closed servers: their pairs are out of reach (some users only had those)
    capacity = instance.link_capacity.copy()
    capacity[::2] = 0.0  # closed links: migrating over them is out of reach ...
    rate = instance.data_rate.copy()
    rate[::3] = 0.0  # ... except for users that load no link
    closed = dataclasses.replace(instance, server_compute=compute, link_capacity=capacity, data_rate=rate)
    # A batch of two alphas: no uniform alpha, so the general power for every user.
    problem = ProblemTensors.collate([
        ProblemTensors.from_instance(closed), ProblemTensors.from_instance(dataclasses.replace(instance, alpha=2.0)),
    ])
    start = waterfill_prices(problem)
    for seed in range(3):
        _assert_same_bound(problem, _random_prices(problem, start, seed))
    # Some users of the closed instance have no pair in reach: each pays its drop value.
    reach = (problem.server_compute[problem.pair_server] > 0).float()
    unreachable = torch.zeros(problem.num_users).index_add_(0, problem.pair_user, reach) == 0
    assert bool(unreachable.any())
    # Migrations at zero link load over closed links stay in reach: the cheapest such pair is the
    # only one in reach of some users, whose terms would otherwise be their drop values.
    migrated = problem.pair_link >= 0
    free_ride = migrated & (problem.pair_link_weight == 0) & (problem.link_capacity[problem.pair_link.clamp(min=0)] <= 0)
    assert bool(free_ride.any())
    for seed in (7, 8):
        _assert_same_bound(problem, _random_prices(problem, start, seed))
    # Users without pairs at all pay their drop value in both.
    keep = problem.pair_user >= 5
    stripped = dataclasses.replace(
        problem,
        **{name: getattr(problem, name)[keep] for name in ("pair_user", "pair_server", "pair_link", "pair_link_weight")},
    )
    _assert_same_bound(stripped, _random_prices(stripped, start, 9))


def test_the_solvers_bound_is_the_torch_lagrangian_bound(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual, lagrangian_bound, solve_dual

    setups = []
    real_sharp_bound = _dual._Setup.sharp_bound
    monkeypatch.setattr(_dual._Setup, "sharp_bound",
                        lambda self, *a, **k: setups.append(self) or real_sharp_bound(self, *a, **k))
    solve_dual(eua_instance(150, 1.2, 7), gap_tol=0.005)
    setup = setups[-1]
    problem = setup.problem
    start = waterfill_prices(problem)
    for seed in range(3):
        prices = _random_prices(problem, start, seed)
        server, link = torch.from_numpy(prices[:problem.num_servers]), torch.from_numpy(prices[problem.num_servers:])
        expected = float(lagrangian_bound(problem, server, link, setup.bandwidth_price))
        assert setup.bound(prices) == pytest.approx(expected, rel=1e-13)
