"""Anytime, certified dual solving: stops at gap_tol with a bound never below the true gap,
respects time_limit, anneals where one temperature stalls, names bad values."""

import dataclasses
import time

import pytest

from gnnalloc import eua_instance, random_instance
from gnnalloc.core import solve
from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.edge.solvers import solve_dual, solve_exact


def _objective(instance, allocation) -> float:
    return float(user_utilities(instance, allocation).sum())


@pytest.mark.parametrize(
    "make",
    [
        lambda: random_instance(60, 6, 1.2, 1),
        lambda: dataclasses.replace(eua_instance(150, 1.4, 2), alpha=2.0),
        lambda: dataclasses.replace(eua_instance(150, 1.0, 3), penalty=25.0),
        lambda: dataclasses.replace(random_instance(80, 8, 0.6, 4), alpha=0.5, penalty=2.0),
    ],
)
def test_stops_at_gap_tol_with_a_bound_never_below_the_true_gap(make):
    instance = make()
    weight = float(instance.weight.sum())
    optimum = _objective(instance, solve_exact(instance).allocation)
    result = solve_dual(instance, gap_tol=0.002, time_limit=20.0)
    true_gap = (optimum - result.objective) / weight
    assert result.objective == pytest.approx(_objective(instance, result.allocation), rel=1e-12, abs=1e-12)
    assert result.gap_bound == pytest.approx((result.upper_bound - result.objective) / weight)
    # The certificate: never below the true gap (up to the exact solver's own tolerance).
    assert result.gap_bound >= true_gap - 1e-6
    assert result.stop in ("gap_tol", "stalled")
    if result.stop == "gap_tol":
        assert result.gap_bound <= 0.002
        assert "<= gap_tol" in result.status
    else:
        assert "method exact" in result.status
    # Each checkpoint's gap is a running minimum: the best allocation and the lowest bound.
    gaps = [gap for _, gap in result.checkpoints]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] == pytest.approx(result.gap_bound)


def test_refining_never_does_worse_than_the_first_checkpoint():
    instance = eua_instance(200, 1.2, 6)
    first = solve_dual(instance, iterations=100, gap_tol=1e9)
    longer = solve_dual(instance, iterations=100, gap_tol=0.0, time_limit=3.0)
    assert first.stop == "gap_tol" and len(first.checkpoints) == 1
    assert longer.gap_bound <= first.gap_bound
    assert longer.objective >= first.objective - 1e-9 * abs(first.objective)
    assert len(longer.checkpoints) > 1


@pytest.mark.parametrize("limit", [0.3, 1.0])
def test_time_limit_is_respected(limit):
    instance = eua_instance(400, 1.0, 7)
    solve_dual(instance, iterations=5)  # warm the process (kernels, allocator) as a server would
    result = solve_dual(instance, gap_tol=0.0, time_limit=limit)
    assert result.stop in ("time_limit", "stalled")
    # The first checkpoint always completes (an answer needs one); no later chunk starts that
    # the measured costs say would end after the limit (margins for a shared machine's jitter).
    first = result.checkpoints[0][0]
    assert result.seconds <= max(limit, first) * 1.2 + 0.05
    if first > limit:
        assert len(result.checkpoints) == 1
    if result.stop == "time_limit":
        assert "time limit" in result.status and "method exact" in result.status


def test_without_limits_it_is_one_pass():
    result = solve_dual(random_instance(30, 3, 1.0, 0))
    assert result.stop == "single pass" and result.status == "ok" and result.checkpoints == ()
    assert result.gap_bound >= 0.0


def test_the_dual_method_reports_the_status_and_takes_the_options():
    instance = random_instance(40, 4, 1.0, 2)
    result = solve(instance, "dual", gap_tol=0.05, time_limit=5.0)
    assert result.status.startswith("proven gap")
    with pytest.raises(ValueError, match="gap_tol: only method 'dual' or 'gnn' takes it"):
        solve(instance, "equal", gap_tol=0.1)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(gap_tol=-0.1), "gap_tol: must be a non-negative finite number"),
        (dict(gap_tol=float("nan")), "gap_tol: must be a non-negative finite number"),
        (dict(gap_tol="0.1"), "gap_tol: must be a non-negative finite number"),
        (dict(time_limit=0.0), "time_limit: must be a positive finite number"),
        (dict(time_limit=float("inf")), "time_limit: must be a positive finite number"),
        (dict(time_limit=True), "time_limit: must be a positive finite number"),
    ],
)
def test_bad_limits_name_the_field(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        solve_dual(random_instance(10, 2, 1.0, 0), **kwargs)


def test_a_zero_iteration_first_chunk_checks_the_start_then_refines():
    instance = random_instance(30, 3, 1.0, 1)
    checked = solve_dual(instance, iterations=0, gap_tol=1e9)
    assert len(checked.checkpoints) == 1 and checked.iterations == 0
    refined = solve_dual(instance, iterations=0, gap_tol=0.0, time_limit=5.0)
    assert len(refined.checkpoints) > 1 and refined.iterations > 0
    assert refined.gap_bound <= checked.gap_bound


def test_gap_tol_alone_ends_without_a_time_limit():
    # gap_tol 0 is out of reach: the solve must end by stalling, not run forever.
    result = solve_dual(random_instance(40, 4, 1.0, 5), iterations=50, gap_tol=0.0)
    assert result.stop in ("stalled", "gap_tol") and result.temperature < 0.03


def _converged_start(instance):
    """Prices of a short earlier solve: a start below the water-filling one by the smoothed dual,
    from which L-BFGS can still move (a converged start falls back at once)."""
    earlier = solve_dual(instance, iterations=30)
    return earlier.server_price, earlier.link_price


def test_a_given_start_that_stalls_restarts_from_the_water_filling_prices(monkeypatch):
    import numpy as np

    from gnnalloc.families.edge.problem import ProblemTensors
    from gnnalloc.families.edge.solvers import _dual
    from gnnalloc.families.edge.solvers.functional import waterfill_prices

    instance = random_instance(60, 6, 1.2, 1)
    weight = float(instance.weight.sum())
    optimum = _objective(instance, solve_exact(instance).allocation)
    classical = waterfill_prices(ProblemTensors.from_instance(instance)).numpy()
    given = _converged_start(instance)
    starts, real = [], _dual._anytime

    def first_run_stalls(setup, initial, *args):
        starts.append(np.array(initial))
        result = real(setup, initial, *args)
        # Pretend the given start's run stalled far above gap_tol with a poor bound.
        if len(starts) == 1:
            return dataclasses.replace(result, stop="stalled", upper_bound=result.upper_bound + weight)
        return result

    monkeypatch.setattr(_dual, "_anytime", first_run_stalls)
    result = solve_dual(instance, start=given, gap_tol=0.002, time_limit=20.0)
    assert len(starts) == 2
    np.testing.assert_allclose(starts[0][: instance.num_servers], given[0])
    np.testing.assert_allclose(starts[1][: instance.num_servers], classical)
    assert np.all(starts[1][instance.num_servers:] == 0)
    assert "restarted from the water-filling prices" in result.status
    # The lower bound of the two (the restart's), still a valid certificate.
    assert result.gap_bound == pytest.approx((result.upper_bound - result.objective) / weight)
    assert result.gap_bound >= (optimum - result.objective) / weight - 1e-6
    assert result.gap_bound < 0.5


def test_a_given_start_with_no_finite_bound_that_stalls_says_so_without_inf():
    """Zero prices on an instance of capacities 1e100 and minimums 1e-100 (penalty 1e100): the
    bound there is infinite, the given start's solve stalls, and the restart from the
    water-filling prices has no finite bound either. The status says "no finite proven gap",
    never "inf"."""
    import math

    import numpy as np

    from gnnalloc.families.edge.problem import Instance

    servers = [{"id": f"s{i}", "compute": 1e100, "bandwidth": 1e100, "services": ["a"]} for i in range(2)]
    users = [
        {"id": f"u{i}", "server": f"s{i % 2}", "service": "a", "compute_min": 1e-100, "bandwidth_min": 1e-100,
         "data_rate": 1e-100, "weight": 1.0}
        for i in range(4)
    ]
    instance = Instance.from_dict({
        "format": "gnnalloc.instance/v1", "penalty": 1e100, "alpha": 1.0, "servers": servers,
        "links": [{"a": "s0", "b": "s1", "capacity": 1e100}], "users": users,
    })
    result = solve_dual(instance, start=(np.zeros(2), np.zeros(1)), gap_tol=0.02, time_limit=5.0,
                        temperature=0.01, clear_start_links=True)
    assert not math.isfinite(result.upper_bound)
    assert "the given start stalled at no finite proven gap" in result.status
    assert "inf" not in result.status


def test_no_restart_when_the_deadline_leaves_no_time(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual

    instance = random_instance(60, 6, 1.2, 1)
    calls, real = [], _dual._anytime

    def stalls_and_uses_the_time(setup, initial, given, chunk, temperature, bound_iterations,
                                 gap_tol, time_limit, start_time, *rest):
        calls.append(1)
        result = real(setup, initial, given, chunk, temperature, bound_iterations, gap_tol, time_limit,
                      start_time, *rest)
        # Its first checkpoint "took" the whole limit: no time is left for a restart.
        return dataclasses.replace(result, stop="stalled", checkpoints=((time_limit, 1.0),))

    monkeypatch.setattr(_dual, "_anytime", stalls_and_uses_the_time)
    result = solve_dual(instance, start=_converged_start(instance), gap_tol=0.0, time_limit=5.0)
    assert len(calls) == 1 and result.stop == "stalled"


@pytest.mark.parametrize("cold_temperature", [None, 0.05])
def test_the_restart_runs_at_cold_temperature(monkeypatch, cold_temperature):
    from gnnalloc.families.edge.solvers import _dual

    instance = random_instance(60, 6, 1.2, 1)
    temperatures, real = [], _dual._anytime

    def first_run_stalls(setup, initial, given, chunk, temperature, *args):
        temperatures.append(temperature)
        result = real(setup, initial, given, chunk, temperature, *args)
        return dataclasses.replace(result, stop="stalled") if len(temperatures) == 1 else result

    monkeypatch.setattr(_dual, "_anytime", first_run_stalls)
    solve_dual(instance, start=_converged_start(instance), temperature=0.01, gap_tol=0.0, time_limit=20.0,
               cold_temperature=cold_temperature)
    assert temperatures == [0.01, 0.01 if cold_temperature is None else cold_temperature]


def test_cold_temperature_must_be_positive():
    with pytest.raises(ValueError, match="cold_temperature"):
        solve_dual(random_instance(20, 4, 1.0, 1), gap_tol=0.01, cold_temperature=0.0)


def test_a_start_that_is_not_used_runs_the_cold_solve(monkeypatch):
    import numpy as np

    from gnnalloc.families.edge.problem import ProblemTensors
    from gnnalloc.families.edge.solvers import _dual, default_iterations

    instance = random_instance(60, 6, 1.2, 1)
    calls, real = [], _dual._anytime

    def spy(setup, initial, stuck_above, chunk, temperature, *args):
        calls.append((stuck_above, chunk, temperature))
        return real(setup, initial, stuck_above, chunk, temperature, *args)

    monkeypatch.setattr(_dual, "_anytime", spy)
    server, link = _converged_start(instance)
    # Prices a thousand times too high: a smoothed dual far above the water-filling start's.
    far = (np.asarray(server) * 1e3 + 1.0, np.asarray(link) * 1e3 + 1.0)
    solve_dual(instance, start=far, iterations=5, temperature=0.01, cold_temperature=0.05, gap_tol=0.01)
    stuck_above, chunk, temperature = calls[0]
    assert stuck_above is None  # the water-filling prices replaced the start
    assert temperature == 0.05
    assert chunk == default_iterations(ProblemTensors.from_instance(instance).num_pairs)


def _spy_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float, int]]:
    """Record, at every primal recovery of a solve, its temperature, the per-weight KKT residual
    of its prices and the iterations the solve's chunks ran so far (not the bound's, which
    pass no residual aim)."""
    from gnnalloc.families.edge.solvers import _dual, load_dual_kernels

    load_dual_kernels()  # its warm-up minimisation is not the solve's
    seen: list[tuple[float, float, int]] = []
    iterations = [0]
    real_recover, real_minimise = _dual._Setup.recover, _dual._CompiledDual.minimise

    def minimise(self, start, scale, count, *aim, **options):
        result = real_minimise(self, start, scale, count, *aim, **options)
        if aim:
            iterations[0] += result[2]
        return result

    def recover(self, dual, prices, *enough):
        tau = next(t for t, d in self._duals.items() if d is dual)
        residual = _dual.kkt_residual(prices, dual.evaluate(prices)[1], self.scale) / self.total_weight
        seen.append((tau, residual, iterations[0]))
        return real_recover(self, dual, prices, *enough)

    monkeypatch.setattr(_dual._CompiledDual, "minimise", minimise)
    monkeypatch.setattr(_dual._Setup, "recover", recover)
    return seen


@pytest.mark.parametrize(
    "make",
    [
        lambda: dataclasses.replace(eua_instance(300, 1.0, 3), penalty=2.0),
        lambda: eua_instance(300, 1.4, 5),
        lambda: dataclasses.replace(eua_instance(200, 0.6, 4), penalty=2.0),
    ],
)
def test_with_gap_tol_checkpoints_wait_for_a_small_kkt_residual(monkeypatch, make):
    seen = _spy_checkpoints(monkeypatch)
    gap_tol = 0.003
    # A first chunk of 3 iterations leaves the water-filling prices far from the minimiser:
    # L-BFGS goes on without recovering an allocation from them.
    result = solve_dual(make(), iterations=3, gap_tol=gap_tol, time_limit=20.0)
    assert result.stop == "gap_tol" and result.iterations > 3
    assert seen[0][2] > 3 and seen[0][1] <= 4 * gap_tol
    # At one temperature each further checkpoint waits for a third of the residual reached.
    for (tau, residual, _), (next_tau, next_residual, _) in zip(seen, seen[1:]):
        if next_tau == tau:
            assert next_residual <= residual / 3 * (1 + 1e-9)


def _at_most_a_chunk_apart(seen, instance) -> bool:
    from gnnalloc.families.edge.problem import ProblemTensors
    from gnnalloc.families.edge.solvers import default_iterations

    chunk = default_iterations(ProblemTensors.from_instance(instance).num_pairs)
    return all(b[2] - a[2] <= chunk for a, b in zip(seen, seen[1:]))


def test_with_a_time_limit_alone_every_chunk_ends_in_a_checkpoint(monkeypatch):
    seen = _spy_checkpoints(monkeypatch)
    instance = eua_instance(300, 1.4, 5)
    solve_dual(instance, iterations=3, time_limit=0.5)
    assert seen[0][2] == 3 and seen[0][1] > 4 * 0.003
    assert len(seen) > 1 and _at_most_a_chunk_apart(seen, instance)


def test_a_checkpoint_at_a_converged_residual_anneals_at_once(monkeypatch):
    instance = dataclasses.replace(eua_instance(300, 1.0, 3), penalty=2.0)
    converged = solve_dual(instance, iterations=3000, temperature=0.03)
    seen = _spy_checkpoints(monkeypatch)
    # From the minimiser at 0.03, a gap_tol that temperature cannot reach: the first checkpoint
    # takes no iteration (its residual is far below gap_tol / 5) and the next is at 0.01.
    result = solve_dual(instance, start=(converged.server_price, converged.link_price), temperature=0.03,
                        gap_tol=0.001, time_limit=20.0)
    assert seen[0][0] == 0.03 and seen[0][2] == 0 and seen[0][1] <= 0.2 * 0.001
    assert result.checkpoints[0][1] > 0.001
    assert seen[1][0] == pytest.approx(0.01)


def test_gap_tol_zero_checkpoints_after_every_chunk(monkeypatch):
    # No residual is small enough for a gap of 0: waiting for one would only delay annealing.
    seen = _spy_checkpoints(monkeypatch)
    instance = eua_instance(300, 1.4, 5)
    solve_dual(instance, iterations=3, gap_tol=0.0, time_limit=2.0)  # room for several checkpoints on a busy machine
    assert seen[0][2] == 3
    assert len(seen) > 1 and _at_most_a_chunk_apart(seen, instance)


def test_a_zero_iteration_first_chunk_checks_the_start_with_gap_tol_too(monkeypatch):
    seen = _spy_checkpoints(monkeypatch)
    solve_dual(eua_instance(300, 1.4, 5), iterations=0, gap_tol=0.003, time_limit=20.0)
    assert seen[0][2] == 0


def test_room_to_skip_a_checkpoint_under_a_time_limit():
    from gnnalloc.families.edge.solvers._dual import _room_to_skip

    now = time.perf_counter()
    assert _room_to_skip(None, now - 100.0, 300, 1.0, 5.0)
    # Before the first checkpoint: only in the first half of the limit.
    assert _room_to_skip(10.0, now - 4.0, 300, 1e-3, None)
    assert not _room_to_skip(10.0, now - 6.0, 300, 1e-3, None)
    # After it: a whole chunk (300 x 10 ms) and a checkpoint (1 s, with margins) must still fit.
    assert _room_to_skip(10.0, now - 1.0, 300, 0.01, 1.0)
    assert not _room_to_skip(10.0, now - 6.0, 300, 0.01, 1.0)


def _spy_minimisations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float | None, int, float]]:
    """Record every L-BFGS run of a solve: its temperature, residual aim (None for the bound's
    runs, which pass none), iterations and the residual reached."""
    from gnnalloc.families.edge.solvers import _dual, load_dual_kernels

    load_dual_kernels()  # its warm-up minimisation is not the solve's
    runs: list[tuple[float, float | None, int, float]] = []
    temperature_of: dict[int, float] = {}
    real_dual, real_minimise = _dual._Setup.dual, _dual._CompiledDual.minimise

    def dual(self, temperature):
        compiled = real_dual(self, temperature)
        temperature_of[id(compiled)] = temperature
        return compiled

    def minimise(self, start, scale, count, *aim, **options):
        result = real_minimise(self, start, scale, count, *aim, **options)
        runs.append((temperature_of.get(id(self)), aim[0] if aim else None, result[2], result[3]))
        return result

    monkeypatch.setattr(_dual._Setup, "dual", dual)
    monkeypatch.setattr(_dual._CompiledDual, "minimise", minimise)
    return runs


def test_a_far_given_start_is_warmed_up_at_three_times_the_temperature(monkeypatch):
    import numpy as np

    instance = eua_instance(300, 1.0, 3)
    weight = float(instance.weight.sum())
    optimum = _objective(instance, solve_exact(instance).allocation)
    server, link = _converged_start(instance)
    runs = _spy_minimisations(monkeypatch)
    # Prices a few times off in both directions: below the water-filling start by the smoothed
    # dual (so it is used), with a KKT residual far above 10 gap_tol.
    rng = np.random.default_rng(0)
    far = (np.asarray(server) * np.exp(rng.normal(0.0, 0.7, len(server))), np.asarray(link))
    gap_tol = 0.003
    # A time limit far above the solve's time: the warm-up's quarter of it is not binding.
    result = solve_dual(instance, start=far, iterations=100, temperature=0.01, gap_tol=gap_tol, time_limit=60.0)
    assert "water-filling" not in result.status  # the given start was used
    warm_temperature, warm_aim, warm_used, warm_residual = runs[0]
    assert warm_temperature == pytest.approx(0.03)
    assert warm_aim == pytest.approx(10 * gap_tol * weight)
    # At most 1.5 first chunks (_WARM_UP_CHUNKS), stopping at its aim.
    assert 0 < warm_used <= 150 and (warm_residual <= warm_aim or warm_used == 150)
    # Then the solve's own temperature, from where the warm-up stopped; its iterations count.
    assert runs[1][0] == 0.01 and runs[1][1] == pytest.approx(4 * gap_tol * weight)
    assert result.iterations == sum(used for _, aim, used, _ in runs if aim is not None)
    assert result.stop == "gap_tol"
    assert result.gap_bound >= (optimum - result.objective) / weight - 1e-6


def test_a_warm_up_gets_an_evaluation_budget_and_the_solve_goes_on_after_it(monkeypatch):
    import numpy as np

    from gnnalloc.families.edge.solvers import _dual

    budgets = []
    real_minimise = _dual._CompiledDual.minimise

    def spied(self, start, scale, iterations, tolerance=0.0, memory=None, max_evaluations=0, **options):
        budgets.append((iterations, max_evaluations))
        return real_minimise(self, start, scale, iterations, tolerance, memory, max_evaluations, **options)

    instance = eua_instance(300, 1.0, 3)
    server, link = _converged_start(instance)
    far = (np.asarray(server) * np.exp(np.random.default_rng(0).normal(0.0, 0.7, len(server))), np.asarray(link))
    monkeypatch.setattr(_dual._CompiledDual, "minimise", spied)
    solve_dual(instance, start=far, iterations=100, temperature=0.01, gap_tol=0.003)
    # The warm-up: 1.5 first chunks of iterations and 1.5 evaluations each; nothing else has
    # a budget.
    assert budgets[0] == (150, 225)
    assert all(limit == 0 for _, limit in budgets[1:]) and len(budgets) > 1
    # A budget of one evaluation (the start's): the warm-up runs no iteration, the solve goes
    # on from the start at its own temperature, and still reaches gap_tol.
    monkeypatch.setattr(_dual, "_WARM_UP_EVALUATIONS", 0.005)
    budgets.clear()
    runs = _spy_minimisations(monkeypatch)
    result = solve_dual(instance, start=far, iterations=100, temperature=0.01, gap_tol=0.003)
    assert runs[0][0] == pytest.approx(0.03) and runs[0][2] == 0
    assert runs[1][0] == 0.01 and result.stop == "gap_tol"


def test_no_warm_up_from_the_water_filling_prices_without_gap_tol_or_from_the_default_temperature(monkeypatch):
    instance = eua_instance(300, 1.0, 3)
    start = _converged_start(instance)
    runs = _spy_minimisations(monkeypatch)
    solve_dual(instance, temperature=0.01, gap_tol=0.003)
    solve_dual(instance, start=start, temperature=0.01, time_limit=0.5)
    solve_dual(instance, start=start, temperature=0.01, gap_tol=0.0, time_limit=0.5)
    assert all(temperature <= 0.01 for temperature, aim, _, _ in runs if aim is not None)
    # Nor at or above the default temperature (0.03): the warm-up is never smoother than it.
    runs.clear()
    solve_dual(instance, start=start, temperature=0.03, gap_tol=0.003)
    assert all(temperature <= 0.03 for temperature, aim, _, _ in runs if aim is not None)
    runs.clear()
    solve_dual(instance, start=start, temperature=0.02, gap_tol=0.003)
    assert max(temperature for temperature, aim, _, _ in runs if aim is not None) == pytest.approx(0.03)


def test_a_start_already_near_its_minimiser_is_not_warmed_up(monkeypatch):
    instance = eua_instance(300, 1.0, 3)
    converged = solve_dual(instance, iterations=3000, temperature=0.01)
    runs = _spy_minimisations(monkeypatch)
    # Its residual at 0.01 is far below 10 gap_tol: the warmer dual would only pull it away.
    result = solve_dual(instance, start=(converged.server_price, converged.link_price), temperature=0.01,
                        gap_tol=0.003)
    assert result.stop == "gap_tol"
    assert all(temperature == 0.01 for temperature, aim, _, _ in runs if aim is not None)


def test_iterations_within_a_budget():
    from gnnalloc.families.edge.solvers._dual import _iterations_within

    assert _iterations_within(1000, 2.0, 0.01) == 200
    assert _iterations_within(100, 2.0, 0.01) == 100
    assert _iterations_within(100, -1.0, 0.01) == 1  # past the limit: still one


def test_a_checkpoint_that_proves_nothing_sharpens_its_bound_to_the_end(monkeypatch):
    from gnnalloc.families.edge.solvers import _dual

    stages: list[int] = []
    real_minimise = _dual._CompiledDual.minimise

    def minimise(self, start, scale, count, *aim, **options):
        if options.get("memory") is not None:  # the bound's runs, continued stage by stage
            stages.append(count)
        return real_minimise(self, start, scale, count, *aim, **options)

    monkeypatch.setattr(_dual._CompiledDual, "minimise", minimise)
    # Without gap_tol nothing is ever proven: every checkpoint runs both stages, 15 + 35 of 50.
    result = solve_dual(eua_instance(200, 1.0, 4), time_limit=0.5)
    assert result.checkpoints and stages == [15, 35] * len(result.checkpoints)


@pytest.mark.parametrize("users, sampled", [(300, False), (959, False), (960, True), (3000, True)])
def test_a_warm_up_with_many_users_per_server_runs_on_a_sample(monkeypatch, users, sampled):
    from gnnalloc.families.edge.solvers import _dual

    warm_ups: list[tuple[float, float]] = []  # (share of the users, residual aim) of each warm-up
    real_minimise = _dual._CompiledDual.minimise

    def minimise(self, start, scale, count, *aim, **options):
        if aim and aim[0] > 0 and options.get("memory") is None:
            warm_ups.append((self.share, aim[0]))
        return real_minimise(self, start, scale, count, *aim, **options)

    instance = random_instance(users, 12, 1.0, 2)
    near = solve_dual(instance, iterations=3000, temperature=0.01)
    start = (near.server_price * 1.3, near.link_price)  # used, and far enough to be warmed up
    monkeypatch.setattr(_dual._CompiledDual, "minimise", minimise)
    result = solve_dual(instance, start=start, temperature=0.01, gap_tol=0.01)
    assert result.stop == "gap_tol" and result.gap_bound <= 0.01
    # The first run with a residual aim is the warm-up: over every user below 80 per server,
    # else over 40 per server, its aim (10 gap_tol per unit of weight) in the sample's units.
    share = 40 * 12 / users if sampled else 1.0
    aim = 10 * 0.01 * float(instance.weight.sum())
    assert warm_ups[0] == (pytest.approx(share, rel=1e-3), pytest.approx(aim * warm_ups[0][0]))
    assert all(s == 1.0 for s, _ in warm_ups[1:])  # the chunks after it: every user


def test_a_bound_with_warmer_prices_is_the_lowest_at_the_prices_and_their_extrapolations(monkeypatch):
    import numpy as np

    from gnnalloc.families.edge.solvers import _dual

    instance = eua_instance(300, 1.0, 3)
    optimum = _objective(instance, solve_exact(instance).allocation)
    setups = []
    real_sharp_bound = _dual._Setup.sharp_bound

    def spied(self, prices, *args, **kwargs):
        setups.append(self)
        return real_sharp_bound(self, prices, *args, **kwargs)

    monkeypatch.setattr(_dual._Setup, "sharp_bound", spied)
    solve_dual(instance, temperature=0.01, gap_tol=0.003)
    setup = setups[-1]
    warm = setup.dual(0.03).minimise(_start(setup), setup.scale, 3000)[0]
    prices = setup.dual(0.01).minimise(warm, setup.scale, 3000)[0]
    step = (prices - warm) / 2.0  # the warmer prices at 3 times the temperature: ratio 3
    points = [prices, np.maximum(prices + 0.5 * step, 0.0), np.maximum(prices + step, 0.0)]
    bounds = [setup.bound(p) for p in points]
    sharp = setup.sharp_bound(prices, 0.01, 50, warmer=_dual._WarmerPrices(warm, 3.0))
    assert sharp.value == min(bounds)
    # The smoothing's bias is about linear in the temperature: here the extrapolation is tighter.
    assert min(bounds[1:]) < bounds[0]
    # Sharpening starts from the lowest point, and every bound stays valid.
    starts = []
    real_minimise = _dual._CompiledDual.minimise
    monkeypatch.setattr(_dual._CompiledDual, "minimise",
                        lambda self, start, *a, **k: starts.append(start) or real_minimise(self, start, *a, **k))
    settled = sharp.settle()
    np.testing.assert_array_equal(starts[0], points[int(np.argmin(bounds))])
    assert settled <= sharp.value and settled >= optimum - 1e-9 * abs(optimum)
    assert setup.sharp_bound(prices, 0.01, 50, ceiling=bounds[0] - 1.0).value == bounds[0] - 1.0
    # Without warmer prices (or with a ratio that is not above 1) only the prices count.
    assert setup.sharp_bound(prices, 0.01, 50).value == bounds[0]
    assert setup.sharp_bound(prices, 0.01, 50, warmer=_dual._WarmerPrices(warm, 1.0)).value == bounds[0]


def _start(setup):
    """The water-filling prices and zero link prices of ``setup``'s problem."""
    import numpy as np

    from gnnalloc.families.edge.solvers.functional import waterfill_prices

    return np.concatenate([waterfill_prices(setup.problem).numpy(), np.zeros(setup.problem.num_links)])


def _spy_bounds(monkeypatch):
    """Record each checkpoint's bound: ``(temperature, prices, warmer)``; and each L-BFGS run
    with a residual aim (warm-ups and chunks): ``(temperature, returned prices)``."""
    from gnnalloc.families.edge.solvers import _dual

    bounds: list[tuple[float, object, object]] = []
    runs: list[tuple[float, object]] = []
    real_sharp_bound, real_minimise = _dual._Setup.sharp_bound, _dual._CompiledDual.minimise

    def spied(self, prices, temperature, *args, warmer=None, **kwargs):
        bounds.append((temperature, prices, warmer))
        return real_sharp_bound(self, prices, temperature, *args, warmer=warmer, **kwargs)

    def minimise(self, start, scale, count, *aim, **options):
        result = real_minimise(self, start, scale, count, *aim, **options)
        if aim and options.get("memory") is None:  # not the bound's runs
            runs.append((self, result[0]))
        return result

    monkeypatch.setattr(_dual._Setup, "sharp_bound", spied)
    monkeypatch.setattr(_dual._CompiledDual, "minimise", minimise)
    return bounds, runs


def test_checkpoints_extrapolate_from_the_warm_up_and_from_where_the_solve_annealed(monkeypatch):
    import numpy as np

    instance = eua_instance(300, 1.0, 3)
    server, link = _converged_start(instance)
    far = (np.asarray(server) * np.exp(np.random.default_rng(0).normal(0.0, 0.7, len(server))), np.asarray(link))
    bounds, runs = _spy_bounds(monkeypatch)
    # A given start far from the minimiser is warmed up at 0.03: the first checkpoint extrapolates
    # from where the warm-up stopped, ratio 3.
    result = solve_dual(instance, start=far, temperature=0.01, gap_tol=0.003, time_limit=60.0)
    assert "water-filling" not in result.status  # the given start was used
    temperature, _, warmer = bounds[0]
    assert temperature == 0.01 and warmer.ratio == pytest.approx(3.0)
    np.testing.assert_array_equal(warmer.prices, runs[0][1])  # the warm-up's last prices
    # From the water-filling prices nothing is warmer at first; after annealing from 0.03 to 0.01
    # the prices of the last checkpoint at 0.03 are, ratio 3.
    bounds.clear()
    solve_dual(instance, gap_tol=0.0, time_limit=3.0)
    assert bounds[0][0] == 0.03 and bounds[0][2] is None
    first_colder = next(i for i, (t, _, _) in enumerate(bounds) if t < 0.03)
    assert bounds[first_colder][2].ratio == pytest.approx(3.0)
    np.testing.assert_array_equal(bounds[first_colder][2].prices, bounds[first_colder - 1][1])


def test_a_warm_up_that_runs_no_iteration_still_anchors_the_extrapolation(monkeypatch):
    import numpy as np

    instance = eua_instance(300, 1.0, 3)
    # Converged at 0.03, the start is within the warm-up's aim there (no iteration runs), but
    # far enough from 0.01's minimiser to be warmed up.
    warm = solve_dual(instance, iterations=3000, temperature=0.03)
    bounds, runs = _spy_bounds(monkeypatch)
    result = solve_dual(instance, start=(warm.server_price, warm.link_price), temperature=0.01, gap_tol=0.001)
    assert "water-filling" not in result.status and result.gap_bound <= 0.001
    temperature, _, warmer = bounds[0]
    assert temperature == 0.01 and warmer.ratio == pytest.approx(3.0)
    start = np.concatenate([warm.server_price, warm.link_price])
    np.testing.assert_array_equal(warmer.prices, start)


def _alpha_two_light():
    return dataclasses.replace(eua_instance(300, 0.6, 3), alpha=2.0)


def _spy_warm_ups(monkeypatch):
    """``(temperature, prices it stopped at, iterations, floored)`` of every anytime warm-up."""
    from gnnalloc.families.edge.solvers import _dual

    warm_ups = []
    real = _dual._warm_up

    def spied(setup, prices, warm_tau, *args, **kwargs):
        result = real(setup, prices, warm_tau, *args, **kwargs)
        warm_ups.append((warm_tau, result[0], result[1], result[5]))
        return result

    monkeypatch.setattr(_dual, "_warm_up", spied)
    return warm_ups


@pytest.mark.parametrize(
    "make, shrink, temperature, warmed",
    [
        (_alpha_two_light, 0.5, 0.01, True), (_alpha_two_light, 0.3, 0.01, False),
        (lambda: eua_instance(300, 1.0, 3), 0.2, 0.01, True), (lambda: eua_instance(300, 1.0, 3), 0.1, 0.01, False),
        # 3 x 0.0137 is capped at 0.03; 1.5 x 0.0137 / 0.0137 rounds to 1.4999999999999998
        (lambda: eua_instance(300, 1.0, 3), 0.2, 0.0137, True),
    ],
)
def test_a_start_where_the_warmer_dual_floors_a_users_price_is_warmed_up_less_or_not_at_all(
    monkeypatch, request, make, shrink, temperature, warmed,
):
    import numpy as np

    from gnnalloc.families.edge.solvers import load_dual_kernels

    load_dual_kernels()  # its own minimisation is not the solve's (counted below)
    instance = make()
    weight = float(instance.weight.sum())
    server, link = _converged_start(instance)
    # Every price shrunk: some users' soft-min prices reach their floor at the warm-up's 0.03
    # (the soft-min sits up to t ln(pairs) below the cheapest pair), none at the solve's own
    # temperature; at 1.5 times it none (warmed) or some (not warmed).
    start = (shrink * np.asarray(server), shrink * np.asarray(link))
    evaluations = request.getfixturevalue("minimiser_evaluations")  # counted from here
    bounds, _ = _spy_bounds(monkeypatch)
    runs = _spy_minimisations(monkeypatch)
    warm_ups = _spy_warm_ups(monkeypatch)
    result = solve_dual(instance, start=start, temperature=temperature, gap_tol=0.003)
    assert "water-filling" not in result.status  # the given start was used
    setup_duals = [(t, aim, used) for t, aim, used, _ in runs if aim is not None]
    # At three times the temperature (at most 0.03) the warm-up evaluated its start once and
    # stopped: no line search from it. Then at 1.5 times.
    assert [t for t, _, _, _ in warm_ups] == pytest.approx([min(3 * temperature, 0.03), 1.5 * temperature])
    assert warm_ups[0][2] == 0 and warm_ups[0][3] and evaluations[0] == 1
    if warmed:
        assert warm_ups[1][2] > 0 and not warm_ups[1][3]
        # The checkpoints extrapolate from where it stopped, with a ratio of exactly 1.5 (the
        # least the extrapolation takes).
        assert bounds[0][0] == temperature and bounds[0][2].ratio == 1.5
        np.testing.assert_array_equal(bounds[0][2].prices, warm_ups[1][1])
    else:
        assert warm_ups[1][2] == 0 and warm_ups[1][3] and evaluations[1] == 1
        # Nothing to extrapolate from: no warm-up left the start.
        assert bounds[0][0] == temperature and bounds[0][2] is None
    assert setup_duals[2][0] == temperature and setup_duals[2][2] > 0
    # The warm-ups' iterations count.
    assert result.iterations == sum(used for _, _, used in setup_duals)
    assert result.stop == "gap_tol"
    optimum = _objective(instance, solve_exact(instance).allocation)
    assert result.gap_bound >= (optimum - result.objective) / weight - 1e-6


def test_no_second_warm_up_at_the_temperature_that_floored(monkeypatch):
    import numpy as np

    # At 0.02 both factors reach the default 0.03: the one warm-up that floored is not repeated.
    instance = eua_instance(300, 1.0, 3)
    server, link = _converged_start(instance)
    warm_ups = _spy_warm_ups(monkeypatch)
    result = solve_dual(instance, start=(0.1 * np.asarray(server), 0.1 * np.asarray(link)), temperature=0.02,
                        gap_tol=0.003)
    assert [(t, used, floored) for t, _, used, floored in warm_ups] == [(0.03, 0, True)]
    assert result.stop == "gap_tol"


def test_no_extrapolation_from_prices_barely_warmer(monkeypatch):
    import numpy as np

    from gnnalloc.families.edge.solvers import _dual

    instance = eua_instance(200, 1.0, 4)
    setups = []
    real_sharp_bound = _dual._Setup.sharp_bound
    monkeypatch.setattr(_dual._Setup, "sharp_bound",
                        lambda self, *a, **k: setups.append(self) or real_sharp_bound(self, *a, **k))
    solve_dual(instance, gap_tol=0.005)
    setup = setups[-1]
    prices = setup.dual(0.01).minimise(_start(setup), setup.scale, 3000)[0]
    far = np.zeros_like(prices)  # extrapolating from these would move every price
    below = _dual._MIN_EXTRAPOLATION_RATIO * 0.99
    assert setup.sharp_bound(prices, 0.01, 50, warmer=_dual._WarmerPrices(far, below)).value == setup.bound(prices)
    assert setup.sharp_bound(prices, 0.01, 50, warmer=_dual._WarmerPrices(far, 3.0)).value <= setup.bound(prices)
