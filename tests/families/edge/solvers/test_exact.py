import dataclasses

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from gnnalloc import eua_instance, random_instance
from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.edge.problem import Instance, max_violation
from gnnalloc.families.edge.solvers import solve_exact, waterfill
from gnnalloc.families.edge.problem import resource_utility


@pytest.mark.parametrize(
    "make",
    [
        lambda: random_instance(30, 6, 0.7, 1),
        lambda: random_instance(200, 20, 1.3, 2),
        lambda: eua_instance(300, 1.0, 3),
        lambda: eua_instance(120, 0.5, 4, alpha=2.0),
        lambda: random_instance(60, 8, 1.0, 5, alpha=0.5, penalty=3.0),
    ],
)
def test_independent_formulations_agree(make):
    inst = make()
    a = solve_exact(inst)
    b = solve_exact(inst, formulation="split")
    assert a.certified and b.certified
    assert a.objective == pytest.approx(b.objective, rel=1e-5, abs=1e-6)
    assert max_violation(inst, a.allocation) <= 1e-7
    assert max_violation(inst, b.allocation) <= 1e-7


def _superdifferential(amount, minimum, weight, penalty, alpha, tol):
    """Bounds [lo, hi] of the weighted utility's superdifferential at ``amount``."""
    at_kink = np.abs(amount - minimum) <= tol * minimum
    above = np.maximum(amount, minimum)
    slope_above = weight * above ** (-alpha) * minimum ** (alpha - 1)
    slope_below = weight * penalty / minimum
    lo = np.where(amount < minimum * (1 - tol), slope_below, slope_above)
    hi = np.where(amount > minimum * (1 + tol), slope_above, slope_below)
    return np.where(at_kink, slope_above, lo), np.where(at_kink, slope_below, hi)


def kkt_residual(inst: Instance, x: np.ndarray, y: np.ndarray, tol: float = 1e-6) -> float:
    """Smallest violation of the KKT conditions any multipliers can achieve, found by an LP.

    Unknowns: multipliers of active server/link/bandwidth constraints (>= 0) and a
    supergradient per user and resource. Stationarity must hold with equality on positive
    decisions and as <= on zero ones. Returns the minimal max-violation relative to the slopes.
    """
    X = inst.user_compute(x)
    c_lo, c_hi = _superdifferential(X, inst.compute_min, inst.weight, inst.penalty, inst.alpha, tol)
    b_lo, b_hi = _superdifferential(y, inst.bandwidth_min, inst.weight, inst.penalty, inst.alpha, tol)
    s_act = np.flatnonzero(inst.server_compute_load(x) >= inst.server_compute * (1 - tol))
    l_act = np.flatnonzero(inst.link_load(x) >= inst.link_capacity * (1 - tol))
    b_act = np.flatnonzero(inst.server_bandwidth_load(y) >= inst.server_bandwidth * (1 - tol))
    U, S, L = inst.num_users, s_act.size, l_act.size
    # variable layout: [lam_s (S), mu_l (L), nu_b (B), g_c (U), g_b (U), t]
    n = S + L + b_act.size + 2 * U + 1
    t_col = n - 1
    rows, rhs = [], []
    s_pos = {s: i for i, s in enumerate(s_act)}
    l_pos = {l: S + i for i, l in enumerate(l_act)}
    b_pos = {s: S + L + i for i, s in enumerate(b_act)}
    scale = np.maximum(c_hi, 1e-12)
    for p in range(inst.num_pairs):
        u, s, l = inst.pair_user[p], inst.pair_server[p], inst.pair_link[p]
        row = np.zeros(n)
        row[S + L + b_act.size + u] = 1.0 / scale[u]  # g_c[u]
        if s in s_pos:
            row[s_pos[s]] = -1.0 / scale[u]
        if l >= 0 and l in l_pos:
            row[l_pos[l]] = -inst.pair_link_weight[p] / scale[u]
        row[t_col] = -1.0
        rows.append(row.copy()); rhs.append(0.0)  # g - price <= t
        if x[p] > tol * inst.compute_min[u]:
            neg = -row
            neg[t_col] = -1.0
            rows.append(neg); rhs.append(0.0)  # price - g <= t
    bscale = np.maximum(b_hi, 1e-12)
    for u in range(U):
        row = np.zeros(n)
        row[S + L + b_act.size + U + u] = 1.0 / bscale[u]
        home = inst.user_server[u]
        if home in b_pos:
            row[b_pos[home]] = -1.0 / bscale[u]
        row[t_col] = -1.0
        rows.append(row.copy()); rhs.append(0.0)
        if y[u] > tol * inst.bandwidth_min[u]:
            neg = -row
            neg[t_col] = -1.0
            rows.append(neg); rhs.append(0.0)
    bounds = [(0, None)] * (S + L + b_act.size)
    bounds += list(zip(c_lo, c_hi)) + list(zip(b_lo, b_hi)) + [(0, None)]
    cost = np.zeros(n)
    cost[t_col] = 1.0
    res = linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return float(res.x[t_col])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kkt_conditions_hold_at_the_optimum(seed):
    inst = random_instance(25, 5, [0.6, 1.0, 1.5][seed], seed)
    result = solve_exact(inst, tolerance=1e-10)
    assert kkt_residual(inst, result.allocation.compute, result.allocation.bandwidth) < 1e-4


def test_kkt_check_rejects_a_suboptimal_point():
    inst = random_instance(25, 5, 1.0, 0)
    from gnnalloc.families.edge.solvers import proportional_share

    alloc = proportional_share(inst)
    assert kkt_residual(inst, alloc.compute, alloc.bandwidth) > 1e-2


def test_no_improving_random_feasible_direction():
    inst = eua_instance(80, 1.0, 7)
    res = solve_exact(inst)
    best = user_utilities(inst, res.allocation).sum()
    rng = np.random.default_rng(0)
    from gnnalloc.families.edge.solvers import repair

    for _ in range(50):
        x = res.allocation.compute * (1 + 0.01 * rng.standard_normal(inst.num_pairs))
        y = res.allocation.bandwidth * (1 + 0.01 * rng.standard_normal(inst.num_users))
        cand = repair(inst, x, y)
        assert user_utilities(inst, cand).sum() <= best + 1e-6


def _bandwidth_only(rng, users: int, servers: int) -> Instance:
    """Bandwidth-only subproblem: no services can run (compute part is constant)."""
    return Instance(
        server_ids=tuple(f"s{i}" for i in range(servers)),
        server_compute=np.zeros(servers),
        server_bandwidth=rng.uniform(5, 50, servers),
        server_services=tuple(None for _ in range(servers)),
        link_a=np.zeros(0, dtype=np.int64), link_b=np.zeros(0, dtype=np.int64),
        link_capacity=np.zeros(0),
        user_ids=tuple(f"u{i}" for i in range(users)),
        user_server=rng.integers(0, servers, users),
        user_service=tuple(None for _ in range(users)),
        compute_min=np.ones(users),
        bandwidth_min=rng.lognormal(0, 1, users),
        data_rate=np.zeros(users),
        weight=rng.uniform(0.5, 2, users),
        penalty=float(rng.uniform(1, 20)),
    )


@pytest.mark.parametrize("seed", range(4))
def test_matches_closed_form_waterfilling(seed):
    rng = np.random.default_rng(seed)
    inst = _bandwidth_only(rng, 40, 4)
    exact = solve_exact(inst)
    for s in range(inst.num_servers):
        users = np.flatnonzero(inst.user_server == s)
        y = waterfill(inst.server_bandwidth[s], inst.bandwidth_min[users], inst.weight[users], inst.penalty)
        assert y.sum() == pytest.approx(inst.server_bandwidth[s], rel=1e-9)
        def value(v):
            return float((inst.weight[users] * resource_utility(
                torch.from_numpy(v), torch.from_numpy(inst.bandwidth_min[users]), inst.penalty).numpy()).sum())
        assert value(exact.allocation.bandwidth[users]) == pytest.approx(value(y), rel=1e-6, abs=1e-6)


def test_waterfilling_is_optimal_against_perturbations():
    rng = np.random.default_rng(3)
    m, w = rng.lognormal(0, 1, 12), rng.uniform(0.5, 2, 12)
    for capacity in [0.5, 3.0, m.sum(), 10 * m.sum()]:
        y = waterfill(capacity, m, w, 10.0)
        def value(v):
            return float((w * resource_utility(torch.from_numpy(v), torch.from_numpy(m), 10.0).numpy()).sum())
        base = value(y)
        for _ in range(200):
            d = rng.standard_normal(12)
            d -= d.mean()
            z = np.maximum(y + 1e-3 * capacity * d, 0)
            z *= min(1.0, capacity / z.sum())
            assert value(z) <= base + 1e-9


def test_zero_capacity_and_no_candidate_users():
    inst = random_instance(40, 6, 1.0, 11)
    inst = dataclasses.replace(
        inst,
        server_compute=np.where(np.arange(6) == 0, 0.0, inst.server_compute),
        server_bandwidth=np.where(np.arange(6) == 1, 0.0, inst.server_bandwidth),
        link_capacity=np.zeros_like(inst.link_capacity),
    )
    res = solve_exact(inst)
    assert res.certified
    assert max_violation(inst, res.allocation) <= 1e-7
    assert np.all(res.allocation.compute[inst.pair_server == 0] == 0)


def test_time_limit_is_not_certified_or_raises():
    from gnnalloc.families.edge.problem import SolverError

    inst = eua_instance(2000, 1.0, 0)
    try:
        res = solve_exact(inst, time_limit=0.01)
    except SolverError:
        return
    assert not res.certified


@pytest.mark.parametrize("limit", [0, -1.0, float("nan"), "5", True])
def test_bad_time_limit_is_named(limit):
    from gnnalloc import random_instance

    with pytest.raises(ValueError, match="^time_limit: must be a positive finite number"):
        solve_exact(random_instance(5, 2, 1.0, 0), time_limit=limit)


@pytest.mark.parametrize(("name", "value"), [("verbose", 1), ("verbose", 0), ("verbose", "yes"),
                                             ("tolerance", -1.0), ("tolerance", 0.0), ("tolerance", float("inf")),
                                             ("tolerance", 10.0)])
def test_bad_verbose_and_tolerance_are_named(name, value):
    """``--option verbose=1`` used to reach Clarabel as an int (a TypeError traceback), and a
    negative tolerance was passed on."""
    from gnnalloc import random_instance

    with pytest.raises(ValueError, match=f"^{name}: "):
        solve_exact(random_instance(5, 2, 1.0, 0), **{name: value})


@pytest.mark.parametrize("alpha", [1.0 + 1e-9, 1.0001, 1.0 - 3e-4])
def test_alpha_near_one_is_solved_not_rounded(alpha):
    # cvxpy rounds power exponents to fractions with denominator <= 1024, turning 1 - alpha into
    # 0: the solver then "certified" x = 4.08 on one user alone on a server of capacity 10.
    from gnnalloc.families.edge.problem import Instance

    instance = Instance.from_dict({
        "format": "gnnalloc.instance/v1", "alpha": alpha,
        "servers": [{"id": "s0", "compute": 10.0, "bandwidth": 10.0}],
        "users": [{"id": "u0", "server": "s0", "compute_min": 1.0, "bandwidth_min": 1.0}],
    })
    result = solve_exact(instance)
    assert result.allocation.compute[0] == pytest.approx(10.0, rel=1e-6)
    assert result.allocation.bandwidth[0] == pytest.approx(10.0, rel=1e-6)


def test_fallback_off_tries_only_the_requested_formulation(monkeypatch):
    from gnnalloc import random_instance
    from gnnalloc.families.edge.problem import SolverError
    from gnnalloc.families.edge.solvers import _exact

    tried = []
    real = _exact._attempt

    def failing_hypograph(instance, live, name, *args):
        tried.append(name)
        return None if name == "hypograph" else real(instance, live, name, *args)

    monkeypatch.setattr(_exact, "_attempt", failing_hypograph)
    instance = random_instance(8, 2, 1.0, 0)
    assert solve_exact(instance).formulation == "split"  # the default falls back
    tried.clear()
    with pytest.raises(SolverError):
        solve_exact(instance, fallback=False)
    assert set(tried) == {"hypograph"}
    with pytest.raises(ValueError, match="^fallback: "):
        solve_exact(instance, fallback="no")


def test_a_stall_at_the_default_steps_is_solved_with_shorter_steps(monkeypatch):
    """A held-out instance (816 EUA users, penalty 30, Pareto demands) on which Clarabel stalls a
    few percent from the optimum in both formulations at its default step fraction."""
    import gzip
    import json
    from pathlib import Path

    from gnnalloc.families.edge.solvers import _exact

    path = Path(__file__).parent / "data" / "stalls_at_default_steps.json.gz"
    instance = Instance.from_dict(json.loads(gzip.decompress(path.read_bytes())))
    outcomes = {}
    real = _exact._attempt

    def recording(instance, live, name, tolerance, time_limit, verbose, step_fraction):
        outcome = real(instance, live, name, tolerance, time_limit, verbose, step_fraction)
        outcomes[(name, tolerance, step_fraction)] = outcome is not None
        return outcome

    monkeypatch.setattr(_exact, "_attempt", recording)
    result = solve_exact(instance)
    # The fixture still exercises the retry (a newer Clarabel may no longer stall on it).
    assert outcomes[("hypograph", 1e-8, _exact._DEFAULT_STEP)] is False
    assert result.certified
    assert result.upper_bound - result.objective <= _exact.CERTIFIED_GAP * float(instance.weight.sum())
    assert max_violation(instance, result.allocation) <= 1e-9


def test_a_time_limited_solve_returns_its_repaired_iterate_uncertified():
    """Clarabel stopped by ``time_limit`` leaves an iterate: repaired and returned, uncertified
    (it used to raise "failed in every formulation" after its one attempt)."""
    from gnnalloc import random_instance
    from gnnalloc.families.edge.problem import max_violation

    instance = random_instance(300, 20, 1.0, 0)
    result = solve_exact(instance, time_limit=0.001)
    assert result.status == "time limit reached" and not result.certified
    assert max_violation(instance, result.allocation) <= 1e-9
    assert result.upper_bound >= result.objective


def test_the_iteration_cap_is_not_reported_as_a_time_limit(monkeypatch):
    """cvxpy reports Clarabel's iteration cap and time limit alike (USER_LIMIT): without a time
    limit, an attempt stopped by the cap is a failed attempt (the next one answers), not an
    iterate labelled "time limit reached"."""
    import cvxpy as cp

    from gnnalloc import random_instance
    from gnnalloc.families.edge.problem import SolverError

    real = cp.Problem.solve

    def capped(self, *args, **kwargs):
        kwargs["max_iter"] = 3  # stands for an instance needing more than Clarabel's 500
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", capped)
    with pytest.raises(SolverError, match="every formulation"):
        solve_exact(random_instance(30, 4, 1.0, 0))
    # Under a time limit (one attempt) the capped iterate is returned, labelled by its limit.
    result = solve_exact(random_instance(30, 4, 1.0, 0), time_limit=30.0)
    assert result.status == "iteration limit reached" and not result.certified
