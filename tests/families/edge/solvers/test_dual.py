"""Smoothed dual ascent: exact gradients, an upper bound on the optimum, near-exact and always
feasible allocations, clear errors."""

import dataclasses
import functools

import numpy as np
import pytest
import torch

from gnnalloc import eua_instance, random_instance
from gnnalloc.families.edge.metrics import score, user_utilities
from gnnalloc.families.edge.problem import ProblemTensors, max_violation, resource_utility
from gnnalloc.core import InputError, solve
from gnnalloc.families.edge.solvers import DEFAULT_TEMPERATURE, default_iterations, smoothed_dual, solve_dual, solve_exact
from gnnalloc.families.edge.solvers._dual import MAX_ITERATIONS, MIN_ITERATIONS
from gnnalloc.families.edge.solvers.functional import bandwidth_waterfill, refill_home_compute, waterfill_prices


def _prices(problem: ProblemTensors, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive prices around the water-filling start, links from free to expensive."""
    g = torch.Generator().manual_seed(seed)
    server = waterfill_prices(problem) * torch.exp(torch.randn(problem.num_servers, generator=g, dtype=torch.float64))
    link = server.mean() * torch.rand(problem.num_links, generator=g, dtype=torch.float64) * 3.0
    return server, link


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_gradient_is_capacity_minus_load_of_the_response(alpha):
    instance = dataclasses.replace(random_instance(50, 5, 1.2, 4), alpha=alpha)
    problem = ProblemTensors.from_instance(instance)
    server, link = _prices(problem, 0)
    reference = torch.full((problem.num_users,), 0.5, dtype=torch.float64)
    server.requires_grad_(True)
    link.requires_grad_(True)
    value, compute = smoothed_dual(server, link, problem, 0.05, reference)
    grad_server, grad_link = torch.autograd.grad(value, [server, link])
    compute = compute.detach()
    migrated = torch.where(problem.pair_link >= 0, compute, 0.0)
    torch.testing.assert_close(grad_server, problem.server_compute - problem.server_compute_load(compute))
    torch.testing.assert_close(grad_link, problem.link_capacity - problem.link_load(migrated))


def test_pair_order_does_not_matter():
    # Instances keep each user's pairs contiguous (a segment max); a hand-built problem with
    # shuffled pairs takes the scatter path and must agree.
    problem = ProblemTensors.from_instance(eua_instance(80, 1.1, 3))
    perm = torch.randperm(problem.num_pairs, generator=torch.Generator().manual_seed(0))
    shuffled = dataclasses.replace(
        problem,
        **{name: getattr(problem, name)[perm] for name in ("pair_user", "pair_server", "pair_link", "pair_link_weight")},
    )
    server, link = _prices(problem, 1)
    value, compute = smoothed_dual(server, link, problem, 0.05)
    value_shuffled, compute_shuffled = smoothed_dual(server, link, shuffled, 0.05)
    torch.testing.assert_close(value_shuffled, value)
    torch.testing.assert_close(compute_shuffled, compute[perm])


@pytest.mark.parametrize("make", [lambda: random_instance(40, 5, 1.0, 1), lambda: eua_instance(120, 1.3, 2)])
def test_bounds_the_optimum_from_above_at_any_prices(make):
    instance = make()
    problem = ProblemTensors.from_instance(instance)
    exact = solve_exact(instance).allocation
    total = torch.as_tensor(instance.user_compute(exact.compute))
    optimum = float((problem.weight * resource_utility(total, problem.compute_min, problem.penalty)).sum())
    for seed in range(5):
        server, link = _prices(problem, seed)
        for temperature in (0.01, 0.3):
            value, _ = smoothed_dual(server, link, problem, temperature)
            assert float(value) >= optimum - 1e-9 * abs(optimum)


@pytest.mark.parametrize(
    "make, iterations, bound",
    [
        (lambda: random_instance(60, 6, 1.0, 1), 300, 0.005),
        (lambda: dataclasses.replace(random_instance(60, 6, 1.4, 2), alpha=2.0), 300, 0.005),
        # Measured: 0.017 after 300 iterations, 0.0019 after 600 (baselines: 2 to 4).
        (lambda: eua_instance(300, 1.0, 5), 600, 0.01),
    ],
)
def test_near_exact_and_feasible(make, iterations, bound):
    instance = make()
    result = solve_dual(instance, iterations=iterations)
    exact = solve_exact(instance).allocation
    report = score(instance, result.allocation, exact)
    assert report.max_violation <= 1e-9
    assert report.gap <= bound
    assert (result.server_price >= 0).all() and (result.link_price >= 0).all()
    assert result.iterations <= iterations


def test_default_iterations_spend_a_pair_budget_within_bounds():
    counts = [default_iterations(pairs) for pairs in (0, 1, 550, 1_700, 4_700, 27_000, 10**7)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == counts[1] == MAX_ITERATIONS and counts[-1] == MIN_ITERATIONS
    assert MIN_ITERATIONS < default_iterations(550) < MAX_ITERATIONS


def test_small_instances_get_more_iterations_by_default():
    # Measured on this instance: gap 0.17 after 300 iterations, 0.0014 after 1,000.
    instance = eua_instance(100, 1.0, 1000)
    result = solve_dual(instance)
    assert result.iterations > MIN_ITERATIONS
    assert score(instance, result.allocation, solve_exact(instance).allocation).gap <= 0.01


def test_the_search_never_lowers_the_result():
    instance = eua_instance(300, 1.4, 6)
    plain = score(instance, solve_dual(instance, iterations=60, search_rounds=0).allocation).objective
    searched = score(instance, solve_dual(instance, iterations=60, search_rounds=3).allocation).objective
    assert searched >= plain


def test_feasible_and_finite_on_edge_cases(edge_case):
    name, instance = edge_case
    allocation = solve_dual(instance, iterations=100).allocation
    assert np.isfinite(allocation.compute).all() and np.isfinite(allocation.bandwidth).all()
    assert max_violation(instance, allocation) <= 1e-7
    # A user no server hosts gets nothing (and is penalised), never a NaN.
    for user in instance.users_without_candidate:
        assert instance.user_compute(allocation.compute)[user] == 0.0


def test_solve_entry_point():
    instance = random_instance(30, 4, 1.0, 0)
    result = solve(instance, "dual", iterations=50)
    assert result.method == "dual" and result.seconds > 0
    assert max_violation(instance, result.allocation) <= 1e-9


@pytest.mark.parametrize(
    "method, kwargs, needle",
    [
        ("dual", dict(formulation="socp"), "formulation: only method 'exact'"),
        ("equal", dict(time_limit=5.0), "time_limit: only method 'exact' or 'dual'"),
        # The refining methods (dual, and gnn, which refines its predicted prices) take these.
        ("proportional", dict(gap_tol=0.01), "gap_tol: only method .*'dual'.* takes it, not 'proportional'"),
        ("proportional", dict(iterations=50), "iterations: only method .*'dual'.* takes it, not 'proportional'"),
    ],
)
def test_solve_refuses_options_its_method_would_ignore(method, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        solve(random_instance(10, 2, 1.0, 0), method, **kwargs)


def test_default_iterations_names_a_bad_count():
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="num_pairs: must be a non-negative integer"):
            default_iterations(bad)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(iterations=-1), "iterations: must be a non-negative integer"),
        (dict(iterations=2.5), "iterations: must be a non-negative integer"),
        (dict(search_rounds=-1), "search_rounds: must be a non-negative integer"),
        (dict(bound_iterations=-1), "bound_iterations: must be a non-negative integer"),
        (dict(temperature=0.0), "temperature: must be a positive finite number"),
        (dict(temperature=float("nan")), "temperature: must be a positive finite number"),
        (dict(temperature=True), "temperature: must be a positive finite number"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        solve_dual(random_instance(10, 2, 1.0, 0), **kwargs)


@pytest.mark.parametrize("device", ["gpu", "meta"])
def test_bad_device_names_the_field(device):
    """Unknown, or one whose tensors hold no numbers (meta: was a RuntimeError mid-solve)."""
    with pytest.raises(ValueError, match="device: "):
        solve_dual(random_instance(10, 2, 1.0, 0), device=device)


@pytest.mark.parametrize(
    "change, needle",
    [
        (dict(temperature=0.0), "temperature: must be a positive finite number"),
        (dict(server_price="short"), r"server_price: expected shape \(3,\)"),
        (dict(link_price="nan"), "link_price: every entry must be finite and >= 0"),
        (dict(server_price="negative"), "server_price: every entry must be finite and >= 0"),
        (dict(reference_price="short"), "reference_price: expected shape"),
        (dict(link_price="list"), "link_price: expected shape"),
    ],
)
def test_smoothed_dual_rejects_bad_prices_by_name(change, needle):
    problem = ProblemTensors.from_instance(random_instance(12, 3, 1.0, 0))
    server, link = _prices(problem, 0)
    kwargs = dict(server_price=server, link_price=link, temperature=0.05, reference_price=None)
    bad = {
        "short": lambda t: t[:-1] if t is not None else torch.ones(problem.num_users - 1, dtype=torch.float64),
        "nan": lambda t: torch.full_like(t, float("nan")),
        "negative": lambda t: -t,
        "list": lambda t: t.tolist(),
    }
    for name, value in change.items():
        kwargs[name] = bad[value](kwargs[name]) if isinstance(value, str) else value
    with pytest.raises(ValueError, match=needle):
        smoothed_dual(problem=problem, **kwargs)


def test_start_from_converged_prices_reproduces_the_solve():
    """A solve started at another solve's final prices with no iterations responds to exactly
    those prices: the same allocation (the warm start a learned price predictor hands over)."""
    instance = random_instance(40, 4, 1.0, seed=3)
    cold = solve_dual(instance, iterations=200, search_rounds=0, bound_iterations=0)
    warm = solve_dual(
        instance, iterations=0, search_rounds=0, bound_iterations=0,
        start=(cold.server_price, torch.as_tensor(cold.link_price)),
    )
    np.testing.assert_allclose(warm.allocation.compute, cold.allocation.compute, rtol=1e-12, atol=1e-12)
    assert warm.iterations == 0


@pytest.mark.parametrize(
    "start, message",
    [
        ("prices", "start: expected a pair"),
        ((np.ones(3), np.zeros(0)), "start.server_price: expected shape"),
        ((np.ones(4), np.full(99, 1.0)), "start.link_price: expected shape"),
        ((np.array([1.0, np.nan, 1.0, 1.0]), None), "start.server_price: every entry"),
    ],
)
def test_bad_start_is_named(start, message):
    instance = random_instance(20, 4, 1.0, seed=1)
    if isinstance(start, tuple) and start[1] is None:
        start = (start[0], np.zeros(len(instance.link_a)))
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        solve_dual(instance, start=start)


def test_given_water_filling_prices_are_the_ones_it_would_compute():
    instance = random_instance(60, 6, 1.1, seed=2)
    water = waterfill_prices(ProblemTensors.from_instance(instance, dtype=torch.float64))
    for options in ({}, {"gap_tol": 0.01}):
        own = solve_dual(instance, **options)
        given = solve_dual(instance, water_filling=water.numpy(), **options)
        np.testing.assert_array_equal(given.allocation.compute, own.allocation.compute)
        assert given.upper_bound == own.upper_bound and given.iterations == own.iterations
        # They are what it starts from: other prices, another solve.
        other = solve_dual(instance, water_filling=2.0 * water.numpy(), **options)
        assert not np.array_equal(other.allocation.compute, own.allocation.compute)


@pytest.mark.parametrize(
    "water_filling, message",
    [
        (np.ones(3), "water_filling: expected shape"),
        (np.array([1.0, -1.0, 1.0, 1.0]), "water_filling: every entry"),
        ("cheap", "water_filling: expected an array"),
    ],
)
def test_bad_water_filling_prices_are_named(water_filling, message):
    with pytest.raises(ValueError, match=message):
        solve_dual(random_instance(20, 4, 1.0, seed=1), water_filling=water_filling)


def test_a_start_worse_than_water_filling_is_not_used():
    """A given start whose smoothed dual is above the water-filling start's is replaced by it:
    the solve is then the cold solve, so a poor prediction never costs iterations."""
    instance = random_instance(40, 4, 1.0, seed=5)
    problem = ProblemTensors.from_instance(instance, dtype=torch.float64)
    far = waterfill_prices(problem).numpy() * 1e6  # every user priced out: a high dual value
    cold = solve_dual(instance, iterations=100, search_rounds=0, bound_iterations=0)
    warm = solve_dual(
        instance, iterations=100, search_rounds=0, bound_iterations=0,
        start=(far, np.full(problem.num_links, 1e6)),
    )
    np.testing.assert_array_equal(warm.allocation.compute, cold.allocation.compute)
    assert warm.iterations == cold.iterations


@pytest.mark.parametrize("anytime", [{}, {"gap_tol": 0.01}])
def test_a_start_l_bfgs_cannot_leave_falls_back_to_the_water_filling_prices(anytime):
    """Prices a tenth of the converged ones on this EUA instance have a lower smoothed dual
    than the water-filling start but a gradient so steep that no useful step is accepted: the solve
    restarts from the water-filling prices (before any primal recovery) and says so."""
    from gnnalloc.families.edge.generators import eua_instance

    instance = eua_instance(100, 1.0, 1000)
    cold = solve_dual(instance, search_rounds=0, bound_iterations=0, **anytime)
    stuck = (cold.server_price * 0.1, np.asarray(cold.link_price) * 0.1)
    rescued = solve_dual(instance, search_rounds=0, bound_iterations=0, start=stuck, **anytime)
    assert rescued.iterations > 0
    assert "the given start stalled L-BFGS" in rescued.status
    assert rescued.gap_bound <= cold.gap_bound + 1e-9


@pytest.mark.parametrize(
    "used, asked, residual, start_residual, stuck",
    [
        (0, 100, 5.0, 5.0, True),  # no step at all
        (1, 100, 4.9, 5.0, True),  # a step too small to matter, then no acceptable one
        (1, 100, 2.4, 5.0, False),  # stopped short, but the residual more than halved
        (3, 100, 0.9, 1.0, False),  # stopped short near the minimiser: below the water-filling residual
        (100, 100, 4.9, 5.0, False),  # ran every iteration asked: slow, not stuck
        (0, 0, 5.0, 5.0, False),  # nothing asked
        (0, 100, 0.0, 0.0, False),  # already at the minimiser
        (3, 100, float("nan"), 5.0, True),
    ],
)
def test_cannot_leave_means_stopped_short_without_halving_the_residual(used, asked, residual, start_residual, stuck):
    from gnnalloc.families.edge.solvers._dual import _cannot_leave

    classical_residual = 2.0  # the water-filling prices'
    assert _cannot_leave(used, asked, residual, start_residual, classical_residual) is stuck


@pytest.mark.parametrize("limits", [{"gap_tol": 0.0005}, {"gap_tol": 0.0005, "time_limit": 60.0}])
def test_a_start_that_falls_back_runs_the_classical_first_chunk(limits):
    """Anytime with a short first chunk (as ``gnn`` asks, to check its start cheaply): once the
    given start falls back to the water-filling prices, the solve is the cold one, chunk for
    chunk, not a cold solve with the short first chunk."""
    from gnnalloc.families.edge.generators import eua_instance

    instance = eua_instance(100, 1.0, 1000)
    converged = solve_dual(instance, search_rounds=0, bound_iterations=0)
    stuck = (converged.server_price * 0.1, np.asarray(converged.link_price) * 0.1)
    cold = solve_dual(instance, search_rounds=0, bound_iterations=0, **limits)
    rescued = solve_dual(instance, search_rounds=0, bound_iterations=0, start=stuck, iterations=10, **limits)
    assert "the given start stalled L-BFGS" in rescued.status
    assert rescued.iterations == cold.iterations
    assert [gap for _, gap in rescued.checkpoints] == pytest.approx([gap for _, gap in cold.checkpoints], abs=1e-12)


def test_a_start_that_falls_back_runs_at_cold_temperature():
    """A start L-BFGS cannot leave, with a ``cold_temperature`` other than ``temperature``: the
    solve is the cold one at ``cold_temperature``, chunk for chunk."""
    from gnnalloc.families.edge.generators import eua_instance

    instance = eua_instance(100, 1.0, 1000)
    limits = {"gap_tol": 0.0005, "search_rounds": 0, "bound_iterations": 0}
    converged = solve_dual(instance, search_rounds=0, bound_iterations=0)
    stuck = (converged.server_price * 0.1, np.asarray(converged.link_price) * 0.1)
    cold = solve_dual(instance, temperature=0.05, **limits)
    rescued = solve_dual(instance, start=stuck, iterations=10, cold_temperature=0.05, **limits)
    assert "the given start stalled L-BFGS" in rescued.status
    assert rescued.iterations == cold.iterations
    assert [gap for _, gap in rescued.checkpoints] == pytest.approx([gap for _, gap in cold.checkpoints], abs=1e-12)


def test_recovery_keeps_the_better_of_the_projection_and_the_fitted_migrations(monkeypatch):
    """At penalty 25 the Euclidean projection of the soft response can shave users below their
    minimum; keeping its migrations shrunk to capacity (home split left to the refill) is then
    better, and the recovery returns whichever completion is better."""
    from gnnalloc.families.edge.solvers import _dual as D

    completed = []
    complete = D._Setup._searched

    def spy(self, compute, bandwidth, *limits):
        completed.append((compute, complete(self, compute, bandwidth, *limits)))
        return completed[-1][1]

    monkeypatch.setattr(D._Setup, "_searched", spy)
    instance = random_instance(200, 34, 1.2, 3, penalty=25.0)
    # At the water-filling prices (no L-BFGS iterations: the same prices on every CPU).
    result = solve_dual(instance, iterations=0)
    (_, (_, projection)), (fitted_compute, (_, fitted)) = completed[-2:]
    assert result.objective == max(projection, fitted)
    # Here the fitted migrations win, by about 0.22 per unit of weight ...
    assert fitted - projection > 0.1 * instance.weight.sum()
    # ... and they are worth keeping: completing without any migration is worse.
    problem = ProblemTensors.from_instance(instance, dtype=torch.float64)
    bandwidth, _ = bandwidth_waterfill(problem)
    setup = D._Setup(
        instance=instance, problem=problem, reference=torch.ones(problem.num_servers, dtype=torch.float64),
        scale=np.ones(1), bandwidth=bandwidth, bandwidth_price=torch.zeros(problem.num_servers, dtype=torch.float64),
        total_weight=1.0, search_rounds=5,
    )
    _, without = complete(setup, refill_home_compute(torch.zeros_like(fitted_compute), problem), bandwidth)
    assert fitted > without + 0.01 * instance.weight.sum()
    assert max_violation(instance, result.allocation) <= 1e-9

    # The fit itself: home pairs empty; migrations within every link and server; a migration
    # whose server and link already fit (migrations alone) kept as it is, the others only shrunk.
    response = np.random.default_rng(0).random(problem.num_pairs) * 3.0
    fitted_pairs = setup._migrations_fitted(response).numpy()
    home = instance.pair_link < 0
    assert (fitted_pairs[home] == 0).all()
    assert (fitted_pairs <= response).all()
    migrations = np.where(home, 0.0, response)
    server_fits = instance.server_compute_load(migrations) <= instance.server_compute
    link_fits = instance.link_load(migrations) <= instance.link_capacity
    untouched = ~home & server_fits[instance.pair_server] & link_fits[np.maximum(instance.pair_link, 0)]
    assert untouched.any() and (~untouched & ~home).any()
    np.testing.assert_array_equal(fitted_pairs[untouched], response[untouched])
    assert (instance.link_load(fitted_pairs) <= instance.link_capacity * (1 + 1e-12)).all()
    assert (instance.server_compute_load(fitted_pairs) <= instance.server_compute * (1 + 1e-12)).all()


def test_an_anytime_checkpoint_stops_at_a_completion_that_meets_gap_tol(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual as D

    calls = []
    complete = D._Setup._searched

    def spy(self, compute, bandwidth, *limits):
        calls.append(1)
        return complete(self, compute, bandwidth, *limits)

    searches = []
    search = D.improve_migrations

    def counted_search(*args):
        searches.append(1)
        return search(*args)

    monkeypatch.setattr(D._Setup, "_searched", spy)
    monkeypatch.setattr(D, "improve_migrations", counted_search)
    instance = eua_instance(200, 1.0, 4)
    # One pass and a gap_tol that nothing meets: both completions at every checkpoint.
    solve_dual(instance)
    assert len(calls) == 2 and len(searches) == 2
    calls.clear()
    searches.clear()
    unreachable = solve_dual(instance, gap_tol=0.0, time_limit=20.0)
    assert len(calls) == len(searches) == 2 * len(unreachable.checkpoints)
    # A gap_tol the refilled migrations meet at once: only their completion, not searched, and
    # no projection (which would be a second completion), and the answer is still proven.
    calls.clear()
    searches.clear()
    loose = solve_dual(instance, gap_tol=1.0, time_limit=20.0)
    assert len(calls) == 1 and not searches and len(loose.checkpoints) == 1 and loose.gap_bound <= 1.0


class _StubBound:
    """A checkpoint's bound for :meth:`_Setup.recover`: its answers to ``certifies``, in turn,
    and the objectives it was asked about."""

    def __init__(self, certifies: list[bool]) -> None:
        self._answers, self.asked = list(certifies), []

    def certifies(self, objective, gap_tol):
        self.asked.append(objective)
        return self._answers.pop(0)

    def at(self, gap_tol):
        """Its ``certifies`` at ``gap_tol``, as an anytime checkpoint hands it to the recovery."""
        return functools.partial(self.certifies, gap_tol=gap_tol)


def test_a_recovery_tries_the_migrations_before_the_projection(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual as D

    setups = []
    real_sharp_bound = D._Setup.sharp_bound

    def spied(self, prices, *args, **kwargs):
        setups.append((self, prices))
        return real_sharp_bound(self, prices, *args, **kwargs)

    monkeypatch.setattr(D._Setup, "sharp_bound", spied)
    solve_dual(eua_instance(200, 1.0, 4), gap_tol=0.005)
    setup, prices = setups[-1]
    dual = setup.dual(DEFAULT_TEMPERATURE)
    projections, searches = [], []
    real_projection, real_search = setup._projection.forward, D.improve_migrations

    def counted(*args):
        projections.append(1)
        return real_projection(*args)

    def counted_search(*args):
        searches.append(1)
        return real_search(*args)

    monkeypatch.setattr(setup._projection, "forward", counted)
    monkeypatch.setattr(D, "improve_migrations", counted_search)

    def objective(allocation):
        return float(user_utilities(setup.instance, allocation).sum())

    # Proven (the bound sharpened as far as it needs): the refilled migrations, without a
    # search or a projection.
    quick = _StubBound(certifies=[True, True])
    allocation, refilled = setup.recover(dual, prices, quick.at(0.005))
    assert not projections and not searches and quick.asked == [refilled, refilled]
    assert refilled == pytest.approx(objective(allocation))
    # Proven once searched: still no projection.
    searched = _StubBound(certifies=[False, True])
    allocation, after_search = setup.recover(dual, prices, searched.at(0.005))
    assert not projections and searches == [1] and searched.asked == [refilled, after_search]
    assert after_search == pytest.approx(objective(allocation)) and after_search >= refilled - 1e-9
    # Never proven: then the projection's completion, before and after its search, and the
    # better of the two searched completions.
    searches.clear()
    never = _StubBound(certifies=[False] * 3)
    _, best = setup.recover(dual, prices, never.at(0.005))
    assert projections == [1] and searches == [1, 1] and len(never.asked) == 3
    assert never.asked[:2] == [refilled, after_search]
    # The better of the two searched completions (the projection's, recomputed alone).
    projected_searched = setup._projected(dual.evaluate(prices)[2])[1]
    assert best == max(after_search, projected_searched)
    # Without gap_tol (one pass, or a time limit alone) there is nothing to prove: both
    # completions, searched.
    projections.clear()
    searches.clear()
    assert setup.recover(dual, prices, None)[1] >= best - 1e-9
    assert projections == [1] and searches == [1, 1]


def test_a_checkpoints_bound_is_sharpened_only_as_far_as_it_needs(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual as D

    checkpoints, runs = [], []
    real_sharp_bound, real_minimise = D._Setup.sharp_bound, D._CompiledDual.minimise

    def spied(self, prices, temperature, *args, **kwargs):
        checkpoints.append((self, prices, temperature))
        return real_sharp_bound(self, prices, temperature, *args, **kwargs)

    def counted(self, *args, **kwargs):
        result = real_minimise(self, *args, **kwargs)
        runs.append(result[2])
        return result

    monkeypatch.setattr(D._Setup, "sharp_bound", spied)
    solve_dual(eua_instance(300, 1.0, 3), gap_tol=0.005)
    setup, prices, tau = checkpoints[-1]
    monkeypatch.setattr(D._CompiledDual, "minimise", counted)
    whole = setup.sharp_bound(prices, tau, 50).settle()  # one run of 50 iterations
    after_first = setup.sharp_bound(prices, tau, 50, (0.3,)).settle()  # its first 15
    staged = setup.sharp_bound(prices, tau, 50, (0.3, 1.0))
    cheap, weight = staged.value, setup.total_weight
    assert cheap > after_first > whole
    tol = (cheap - after_first) / weight  # objectives half of it below each bound
    runs.clear()
    assert staged.certifies(cheap - 0.5 * tol * weight, tol) and runs == []  # proven at the prices
    assert staged.certifies(after_first - 0.5 * tol * weight, tol) and runs == [15]  # by the first stage
    assert not staged.certifies(whole - 2 * tol * weight, tol) and runs == [15, 35]  # by none
    # Every stage run, the bound is the uninterrupted run's (or lower: it also has the first
    # stage's; up to the rounding L-BFGS amplifies over the second stage), and nothing is left.
    assert staged.value <= whole + 0.01 * tol * weight
    assert staged.settle() == staged.value and runs == [15, 35]
    assert not staged.certifies(cheap, None)  # never without a gap_tol


def test_a_checkpoint_whose_best_allocation_already_meets_gap_tol_recovers_nothing(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual as D

    recovered, bounds = [], []
    recover, sharp_bound = D._Setup.recover, D._Setup.sharp_bound

    def counted(self, *args):
        recovered.append(1)
        return recover(self, *args)

    def first_loose(self, *args, **kwargs):
        # The first checkpoint's bound proves nothing; the second's is the real one.
        bounds.append(sharp_bound(self, *args, **kwargs))
        if len(bounds) == 1:
            bounds[-1].settle()
            bounds[-1].value += 1e6
        return bounds[-1]

    monkeypatch.setattr(D._Setup, "recover", counted)
    monkeypatch.setattr(D._Setup, "sharp_bound", first_loose)
    result = solve_dual(eua_instance(200, 1.0, 4), gap_tol=1.0, time_limit=20.0)
    assert len(result.checkpoints) == 2 and len(recovered) == 1
    assert result.stop == "gap_tol" and result.gap_bound <= 1.0


def test_meeting_gap_tol_is_one_test_for_the_early_stop_and_the_stop():
    """Near the boundary ``objective >= bound - gap_tol * W`` and the gap test can disagree in
    the last bit; the recovery's early stop and the solve's stop share ``meets``."""
    from gnnalloc.families.edge.solvers import _dual as D

    rng = np.random.default_rng(0)
    disagreements = 0
    for _ in range(2000):
        weight = float(rng.uniform(1.0, 5000.0))
        setup = D._Setup(
            instance=None, problem=None, reference=None, scale=None, bandwidth=None, bandwidth_price=None,
            total_weight=weight, search_rounds=0,
        )
        bound, gap_tol = float(rng.normal(0.0, 1e4)), float(rng.choice([0.005, 0.02, 0.3]))
        objective = bound - gap_tol * weight
        assert setup.meets(bound, objective, gap_tol) == (setup.gap(bound, objective) <= gap_tol)
        disagreements += (objective >= bound - gap_tol * weight) != setup.meets(bound, objective, gap_tol)
        assert not setup.meets(bound, objective, None)
    assert disagreements > 0  # why the threshold form is not used


@pytest.mark.parametrize("method", ["dual", "gnn"])
def test_a_response_beyond_float64_is_a_named_solver_error(method):
    """At alpha 1e-5 the response (w / (m pi))^(1 / alpha) overflows: a SolverError saying to use
    exact (the server's 422 on ``method``), not a "compute: must be finite" about a field the
    caller never sent."""
    import gnnalloc
    from gnnalloc.core import SolverError

    instance = random_instance(30, 4, 1.0, 0, penalty=1.0, alpha=1e-5)
    with pytest.raises(SolverError, match="overflows.*use method exact"):
        gnnalloc.solve(instance, method)


@pytest.mark.parametrize("method, option, value, field", [
    ("dual", "time_limit", 1e308, "time_limit"), ("gnn", "time_limit", 1e308, "time_limit"),
    ("exact", "time_limit", 1e308, "time_limit"), ("dual", "temperature", 1e-308, "temperature"),
    ("gnn", "temperature", 1e-308, "temperature"),
])
def test_limits_and_temperatures_out_of_range_are_named(method, option, value, field):
    """A time limit of 1e308 s overflowed the anytime iteration budget and a temperature of 1e-308
    underflowed the soft-min scale to 0 (tracebacks); both are now named input errors."""
    from gnnalloc.core import InputError, solve

    instance = random_instance(20, 4, 1.0, seed=3)
    with pytest.raises(InputError, match=f"^{field}: must be at "):
        solve(instance, method, **{option: value})


def test_every_temperature_has_the_same_floor():
    """A price model's own temperature, its training's label temperature and the public smoothed
    dual are held to the solver's floor: a model saved at 1e-7 failed every gnn request on a
    ``temperature`` the caller never gave, and ``smoothed_dual`` at 1e-308 returned NaN."""
    from gnnalloc.core import InputError
    from gnnalloc.families.edge import PricePredictor
    from gnnalloc.families.edge.training.prices import PriceConfig

    instance = random_instance(20, 4, 1.0, seed=3)
    problem = ProblemTensors.from_instance(instance, dtype=torch.float64)
    zeros = torch.zeros(problem.num_links, dtype=torch.float64)
    with pytest.raises(InputError, match="^temperature: must be at least 1e-06"):
        smoothed_dual(torch.ones(problem.num_servers, dtype=torch.float64), zeros, problem, temperature=1e-308)
    with pytest.raises(InputError, match="^temperature: must be at least 1e-06"):
        PricePredictor(hidden=8, heads=2, layers=1, temperature=1e-7)
    with pytest.raises(InputError, match="^label_temperature: must be at least 1e-06"):
        PriceConfig.from_dict({"label_temperature": 1e-7})


def _soft_link_loads(instance, prices) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed dual's link loads at ``prices`` in ``solve_dual``'s units (the torch
    reference, at the default temperature), and the link capacities."""
    from gnnalloc.families.edge.solvers._dual import _reference_price

    problem = ProblemTensors.from_instance(instance, dtype=torch.float64)
    reference = _reference_price(problem, waterfill_prices(problem))
    _, response = smoothed_dual(*(torch.as_tensor(p) for p in prices), problem, DEFAULT_TEMPERATURE, reference)
    return problem.link_load(response).numpy(), problem.link_capacity.numpy()


# 72 users on 6 servers are 12 per server, the most that clears; 73 are above it.
@pytest.mark.parametrize("users, servers, cleared", [(60, 6, True), (72, 6, True), (73, 6, False), (60, 4, False)])
def test_clear_start_links_replaces_a_starts_link_prices_where_users_per_server_are_few(users, servers, cleared):
    """``clear_start_links`` (off by default; ``gnn`` sets it): with at most 12 users per server
    on average, a given start's link prices are replaced by those that clear the links at its
    server prices (which stay); links already clear keep theirs. With more users per server, or
    by default, the start is taken as given. Seen in a pass of no iteration, which returns the
    prices it responded to."""
    from gnnalloc.families.edge.solvers._dual import _CLEARING_MAX_USERS_PER_SERVER

    instance = random_instance(users, servers, 1.2, seed=4)
    assert (users <= _CLEARING_MAX_USERS_PER_SERVER * servers) is cleared
    converged = solve_dual(instance, iterations=300, search_rounds=0, bound_iterations=0)
    start = (converged.server_price, np.zeros(len(instance.link_a)))  # free links: some overloaded
    load, capacity = _soft_link_loads(instance, start)
    overloaded = load > (1 + 1e-3) * capacity
    assert overloaded.any() and not overloaded.all()
    options = dict(iterations=0, search_rounds=0, bound_iterations=0, start=start)
    given = solve_dual(instance, **options)
    np.testing.assert_array_equal(given.link_price, start[1])
    result = solve_dual(instance, clear_start_links=True, **options)
    np.testing.assert_array_equal(result.server_price, start[0])
    if not cleared:
        np.testing.assert_array_equal(result.link_price, start[1])
        return
    assert result.dual_value < given.dual_value
    np.testing.assert_array_equal(result.link_price != start[1], overloaded)  # exactly those moved
    # From the converged prices, the links already clear (to 0.1 %) keep their prices.
    at_converged = (converged.server_price, converged.link_price)
    load, capacity = _soft_link_loads(instance, at_converged)
    clear = np.where(converged.link_price > 0, np.abs(capacity - load) <= 1e-3 * capacity, load <= (1 + 1e-3) * capacity)
    assert clear.any()
    kept = solve_dual(instance, clear_start_links=True, **{**options, "start": at_converged})
    np.testing.assert_array_equal(kept.link_price[clear], converged.link_price[clear])


def test_link_clearing_that_would_raise_the_smoothed_dual_keeps_the_start(monkeypatch):
    """All links are bisected together, so links sharing users can overshoot: a clearing whose
    smoothed dual is above the start's is not used."""
    from gnnalloc.families.edge.solvers._dual import _CompiledDual

    instance = random_instance(60, 6, 1.2, seed=4)
    converged = solve_dual(instance, iterations=300, search_rounds=0, bound_iterations=0)
    start = (converged.server_price, converged.link_price)
    assert (start[1] > 0).any()

    def overshoot(self, prices, scale, num_servers, steps, tolerance):
        raised = prices.copy()
        raised[num_servers:] = 1e6 * scale[num_servers:]  # every link priced out: a far higher dual
        return raised, self.evaluate(prices)[0]

    monkeypatch.setattr(_CompiledDual, "clear_links", overshoot)
    result = solve_dual(instance, iterations=0, search_rounds=0, bound_iterations=0, start=start, clear_start_links=True)
    np.testing.assert_array_equal(result.link_price, start[1])


@pytest.mark.parametrize("value", [1, "yes", None])
def test_clear_start_links_must_be_a_bool(value):
    with pytest.raises(InputError, match="^clear_start_links: must be true or false"):
        solve_dual(random_instance(20, 4, 1.0, seed=1), clear_start_links=value)


def test_gnn_clears_its_predicted_link_prices(monkeypatch):
    """The ``gnn`` method asks its solve to clear the predicted link prices; ``dual`` does not
    (its one pass starts from the water-filling prices, which are not a given start)."""
    from gnnalloc.families.edge.solvers import _dual

    asked = []
    original = _dual.solve_dual

    def spy(*args, **kwargs):
        asked.append(kwargs.get("clear_start_links", False))
        return original(*args, **kwargs)

    import gnnalloc.families.edge._methods as methods

    monkeypatch.setattr(methods, "solve_dual", spy)
    instance = random_instance(60, 6, 1.2, seed=4)
    solve(instance, "gnn")
    solve(instance, "dual")
    assert asked == [True, False]
