"""Vectorised torch water-filling against the closed-form numpy reference."""

import dataclasses

import numpy as np
import pytest
import torch

from gnnalloc.families.edge.problem import resource_utility
from gnnalloc.families.edge.solvers import waterfill
from gnnalloc.families.edge.solvers.functional import waterfill_groups


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("penalty", ["random", 1.0, 1.0 + 1e-9])
def test_matches_numpy_reference_per_group(seed, penalty):
    # k = 1 (allowed by the format) puts each member's drop at the end of its log regime.
    rng = np.random.default_rng(seed)
    groups, n = int(rng.integers(1, 6)), int(rng.integers(1, 40))
    group = rng.integers(0, groups, n)
    m, w = rng.lognormal(0, 1, n), rng.uniform(0.5, 2, n)
    k = float(rng.uniform(1, 20)) if penalty == "random" else penalty
    capacity = rng.uniform(0, 3, groups) * np.bincount(group, m, groups)
    y, price = waterfill_groups(torch.tensor(capacity), torch.tensor(m), torch.tensor(w), torch.tensor(group), k)
    y = y.numpy()
    assert (y >= 0).all() and (price.numpy() >= 0).all()
    for g in range(groups):
        idx = group == g
        if not idx.any():
            continue
        assert y[idx].sum() <= capacity[g] * (1 + 1e-9) + 1e-12
        ref = waterfill(capacity[g], m[idx], w[idx], k)

        def value(v):
            return float((w[idx] * resource_utility(torch.tensor(v), torch.tensor(m[idx]), k).numpy()).sum())

        assert value(y[idx]) == pytest.approx(value(ref), rel=1e-10, abs=1e-10)


def test_alpha_fair_response_is_stationary():
    # Single group, everyone above the minimum: marginal utilities w y^-alpha m^(alpha-1) are equal.
    m = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    w = torch.tensor([1.0, 1.5, 0.7], dtype=torch.float64)
    y, price = waterfill_groups(torch.tensor([40.0], dtype=torch.float64), m, w, torch.zeros(3, dtype=torch.long), 10.0, 2.0)
    marginal = w * y.pow(-2.0) * m.pow(1.0)
    assert torch.allclose(marginal, marginal[0].expand(3), rtol=1e-9)
    assert y.sum().item() == pytest.approx(40.0)


def _cvxpy_with_offsets(capacity, m, w, k, offset):
    import cvxpy as cp

    y = cp.Variable(m.size, nonneg=True)
    a = cp.Variable(m.size, nonneg=True)
    b = cp.Variable(m.size, nonneg=True)
    objective = cp.sum(cp.multiply(w, k * (a - m) / m + cp.log(1 + b / m)))
    constraints = [a <= m, a + b == offset + y, cp.sum(y) <= capacity]
    cp.Problem(cp.Maximize(objective), constraints).solve(solver=cp.CLARABEL)
    return objective.value


@pytest.mark.parametrize("seed", range(12))
def test_offsets_match_conic_optimum(seed):
    # Members already holding o_i: the split of the group's capacity maximises sum w f(o + y).
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 12))
    m, w, k = rng.lognormal(0, 1, n), rng.uniform(0.5, 2, n), float(rng.uniform(2, 12))
    offset = np.where(rng.random(n) < 0.5, rng.uniform(0, 2, n) * m, 0.0)
    capacity = float(rng.uniform(0.2, 2.5) * m.sum())
    y, _ = waterfill_groups(
        torch.tensor([capacity], dtype=torch.float64), torch.tensor(m), torch.tensor(w), torch.zeros(n, dtype=torch.long), k,
        offset=torch.tensor(offset),
    )
    assert (y >= 0).all() and y.sum().item() <= capacity * (1 + 1e-12)
    value = float((torch.tensor(w) * resource_utility(torch.tensor(offset) + y, torch.tensor(m), k)).sum())
    assert value == pytest.approx(_cvxpy_with_offsets(capacity, m, w, k, offset), rel=1e-6, abs=1e-6)


def test_gradient_is_the_solution_derivative():
    # Envelope theorem: d(optimal value)/d(capacity) is the price; d y/d offset matches differences.
    torch.manual_seed(0)
    n = 7
    m = torch.rand(n, dtype=torch.float64) + 0.5
    w = torch.rand(n, dtype=torch.float64) + 0.5
    group = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    offset = torch.tensor([0.0, 0.3, 2.0, 0.0, 0.1, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    capacity = torch.tensor([6.0, 9.0], dtype=torch.float64, requires_grad=True)
    y, price = waterfill_groups(capacity, m, w, group, 10.0, offset=offset)
    value = (w * resource_utility(offset.detach() + y, m, 10.0)).sum()
    (grad_capacity,) = torch.autograd.grad(value, capacity, retain_graph=True)
    assert torch.allclose(grad_capacity, price.detach(), rtol=1e-8)
    (grad_offset,) = torch.autograd.grad(y.sum() + (y * torch.arange(n)).sum(), offset)
    eps = 1e-6
    for i in range(n):
        bumped = offset.detach().clone()
        bumped[i] += eps
        y_up, _ = waterfill_groups(capacity.detach(), m, w, group, 10.0, offset=bumped)
        numeric = ((y_up - y.detach()) * (1 + torch.arange(n))).sum() / eps
        assert grad_offset[i].item() == pytest.approx(numeric.item(), rel=1e-4, abs=1e-6)


def _bisection_price(capacity, m, w, k, group, num_groups, steps=200):
    # An independent reference: plain bisection on the total response, 200 halvings in log space.
    lo = torch.full((num_groups,), -60.0, dtype=torch.float64)
    hi = torch.full((num_groups,), 60.0, dtype=torch.float64)
    ratio = w / m
    for _ in range(steps):
        lam = torch.exp(0.5 * (lo + hi))[group]
        total = torch.where(lam <= ratio, w / lam, torch.where(lam < k * ratio, m, torch.zeros_like(m)))
        over = torch.zeros(num_groups, dtype=torch.float64).index_add(0, group, total) > capacity
        lo, hi = torch.where(over, 0.5 * (lo + hi), lo), torch.where(over, hi, 0.5 * (lo + hi))
    return torch.exp(hi)


def test_price_equals_bisection_to_round_off():
    # Ties included: many members share w/m, so several events fall on the same price.
    rng = np.random.default_rng(7)
    n = 400
    group = torch.tensor(rng.integers(0, 20, n))
    m = torch.tensor(rng.choice([0.5, 1.0, 2.0], n))
    w = torch.tensor(rng.choice([1.0, 1.0, 1.5], n))
    capacity = torch.tensor(rng.uniform(0.3, 2.0, 20)) * torch.zeros(20, dtype=torch.float64).index_add(0, group, m)
    y, price = waterfill_groups(capacity, m, w, group, 10.0)
    assert torch.allclose(price, _bisection_price(capacity, m, w, 10.0, group, 20), rtol=1e-12)
    total = torch.zeros(20, dtype=torch.float64).index_add(0, group, y)
    assert torch.allclose(total, capacity, rtol=1e-12)


def test_offset_of_the_wrong_shape_is_rejected():
    m = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="offset: expected shape"):
        waterfill_groups(
            torch.ones(1, dtype=torch.float64), m, m, torch.zeros(3, dtype=torch.long), 10.0,
            offset=torch.zeros(2, dtype=torch.float64),
        )


@pytest.mark.parametrize(
    "field, change, message",
    [
        ("minimum", torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64), "minimum: every entry must be finite and > 0"),
        ("weight", torch.tensor([float("nan"), 1.0, 1.0], dtype=torch.float64), "weight: every entry must be finite"),
        ("capacity", torch.tensor([-1.0], dtype=torch.float64), "capacity: every entry must be finite and >= 0"),
        ("group", torch.tensor([0, 1, 0]), r"group: every entry must be in \[0, 1\)"),
        ("group", torch.tensor([0.0, 0.0, 0.0]), "group: expected integer indices"),
        ("weight", torch.ones(2, dtype=torch.float64), r"weight: expected shape \(3,\)"),
        ("penalty", 0.5, "penalty: every entry must be finite and >= 1"),
        ("alpha", 0.0, "alpha: every entry must be finite and > 0"),
        ("offset", torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64), "offset: every entry must be finite and >= 0"),
        ("capacity", torch.ones(1, 1, dtype=torch.float64), r"capacity: expected shape \(G,\)"),
    ],
)
def test_bad_input_names_the_argument(field, change, message):
    args = dict(
        capacity=torch.tensor([2.0], dtype=torch.float64), minimum=torch.ones(3, dtype=torch.float64),
        weight=torch.ones(3, dtype=torch.float64), group=torch.zeros(3, dtype=torch.long), penalty=10.0,
    )
    args[field] = change
    with pytest.raises(ValueError, match=message):
        waterfill_groups(**args)


@pytest.mark.parametrize("seed", range(3))
def test_problem_level_waterfills_match_the_checked_entry_point(seed):
    # waterfill_bandwidth / waterfill_prices skip the argument checks (a ProblemTensors is valid
    # by construction) but must be exactly the public water-filling of the same data.
    from gnnalloc import eua_instance
    from gnnalloc.families.edge.problem import ProblemTensors
    from gnnalloc.families.edge.solvers.functional import waterfill_bandwidth, waterfill_prices

    problem = ProblemTensors.from_instance(eua_instance(120, 0.6 + 0.4 * seed, seed))
    bandwidth, _ = waterfill_groups(
        problem.server_bandwidth, problem.bandwidth_min, problem.weight, problem.user_server,
        problem.penalty, problem.alpha,
    )
    assert torch.equal(waterfill_bandwidth(problem), bandwidth)
    pair_user = problem.pair_user
    _, price = waterfill_groups(
        problem.server_compute, problem.compute_min[pair_user], problem.weight[pair_user],
        problem.pair_server, problem.penalty[pair_user], problem.alpha[pair_user],
    )
    assert torch.equal(waterfill_prices(problem), price)
    for s in range(problem.num_servers):  # and bandwidth is the closed-form split per server
        home = problem.user_server == s
        if bool(home.any()):
            reference = waterfill(
                float(problem.server_bandwidth[s]), problem.bandwidth_min[home].numpy(),
                problem.weight[home].numpy(), float(problem.penalty[0]),
            )
            m, w, k = problem.bandwidth_min[home], problem.weight[home], float(problem.penalty[0])
            ours = float((w * resource_utility(bandwidth[home], m, k)).sum())
            theirs = float((w * resource_utility(torch.tensor(reference), m, k)).sum())
            assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-10)


def test_waterfill_prices_from_computes_or_checks_given_prices():
    from gnnalloc.families.edge.generators import random_instance
    from gnnalloc.families.edge.problem import ProblemTensors
    from gnnalloc.families.edge.solvers.functional import waterfill_prices, waterfill_prices_from

    problem = ProblemTensors.from_instance(random_instance(40, 5, 1.0, 2), dtype=torch.float64)
    computed = waterfill_prices(problem)
    assert torch.equal(waterfill_prices_from(problem), computed)
    given = 2.0 * computed.to(torch.float32).numpy()
    taken = waterfill_prices_from(problem, given)
    assert taken.dtype == problem.dtype and torch.allclose(taken, 2.0 * computed, rtol=1e-6)
    with pytest.raises(ValueError, match=r"^start_prices: expected shape \(5,\)"):
        waterfill_prices_from(problem, computed[:-1], name="start_prices")
    with pytest.raises(ValueError, match="^water_filling: every entry must be finite and non-negative"):
        waterfill_prices_from(problem, -computed)


def test_alpha_varying_within_a_group_is_named():
    """One water level per group solves one equation in one alpha: two alphas in a group gave
    shares of 625 and 5 from a capacity of 10."""
    f = dict(dtype=torch.float64)
    with pytest.raises(ValueError, match="^alpha: must be the same for every member of a group"):
        waterfill_groups(torch.tensor([10.0], **f), torch.ones(2, **f), torch.ones(2, **f), torch.tensor([0, 0]),
                         10.0, torch.tensor([0.5, 2.0], **f))
    # Per-member alphas that agree within each group are fine.
    y, _ = waterfill_groups(torch.tensor([10.0, 4.0], **f), torch.ones(3, **f), torch.ones(3, **f),
                            torch.tensor([0, 0, 1]), 10.0, torch.tensor([0.5, 0.5, 2.0], **f))
    assert float(y[:2].sum()) == pytest.approx(10.0) and float(y[2]) == pytest.approx(4.0)


def _torch_group_prices(capacity, minimum, weight, group, penalty, alpha):
    from gnnalloc.families.edge.solvers.functional import _waterfill

    return _waterfill(capacity, minimum, weight, group, penalty, alpha, offset=None, sensitivity=False)[1]


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5, 3.0, "mixed"])
def test_the_compiled_group_prices_are_the_torch_ones(seed, alpha):
    from gnnalloc.families.edge.solvers._waterfill_kernel import group_prices

    # Random groups (some empty, some with a closed capacity or one far above every demand),
    # penalties from 1 (drop at the end of the above-minimum regime) up, ties between members.
    rng = np.random.default_rng(seed)
    groups, n = int(rng.integers(1, 8)), int(rng.integers(1, 60))
    group = rng.integers(0, groups, n)
    m, w = rng.lognormal(0, 1, n), rng.uniform(0.5, 2, n)
    m[: n // 4], w[: n // 4] = m[0], w[0]  # identical members: events tie
    k = rng.choice([1.0, 1.0 + 1e-9, 10.0, 30.0], n)
    capacity = rng.uniform(0, 3, groups) * np.bincount(group, m, groups)
    capacity[rng.random(groups) < 0.2] = 0.0
    capacity[rng.random(groups) < 0.2] *= 1e6
    a = rng.choice([0.5, 1.0, 2.0, 4.0], groups)[group] if alpha == "mixed" else np.full(n, alpha)
    expected = _torch_group_prices(*map(torch.tensor, (capacity, m, w, group, k, a))).numpy()
    got = group_prices(capacity, m, w, group, k, a)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_waterfill_prices_take_the_compiled_kernel_where_no_gradient_is_asked(monkeypatch):
    from gnnalloc import eua_instance
    from gnnalloc.families.edge.problem import ProblemTensors
    from gnnalloc.families.edge.solvers import functional

    problem = ProblemTensors.from_instance(eua_instance(200, 1.0, 3), dtype=torch.float64)
    calls = []
    kernel = functional.group_prices
    monkeypatch.setattr(functional, "group_prices", lambda *args: calls.append(1) or kernel(*args))
    fast = functional.waterfill_prices(problem)
    assert calls == [1] and fast.dtype == torch.float64
    pair_user = problem.pair_user
    expected = _torch_group_prices(
        problem.server_compute, problem.compute_min[pair_user], problem.weight[pair_user], problem.pair_server,
        problem.penalty[pair_user], problem.alpha[pair_user],
    )
    torch.testing.assert_close(fast, expected, rtol=1e-12, atol=0)
    # A capacity that asks for a gradient, or float32: the torch version, whose prices carry it.
    capacity = problem.server_compute.clone().requires_grad_(True)
    graded = functional.waterfill_prices(dataclasses.replace(problem, server_compute=capacity))
    assert calls == [1] and graded.requires_grad
    torch.testing.assert_close(graded.detach(), expected, rtol=1e-12, atol=0)
    single = ProblemTensors.from_instance(eua_instance(200, 1.0, 3), dtype=torch.float32)
    assert functional.waterfill_prices(single).dtype == torch.float32 and calls == [1]


def test_the_compiled_group_prices_survive_extreme_magnitudes_and_keep_groups_apart():
    from gnnalloc.families.edge.solvers._waterfill_kernel import group_prices

    # Alpha 1/2 at w/m = 1e-170: the price's square underflows; torch gives a finite price, and
    # so must the kernel (no ZeroDivisionError).
    m, w = np.array([1e85, 2e85]), np.array([1e-85, 3e-85])
    capacity, group, k = np.array([1e85]), np.array([0, 0]), np.array([10.0, 10.0])
    alpha = np.array([0.5, 0.5])
    got = group_prices(capacity, m, w, group, k, alpha)
    expected = _torch_group_prices(*map(torch.tensor, (capacity, m, w, group, k, alpha))).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # A group at 1e100 beside an ordinary one: each group's price is its own, as if alone.
    small_m, small_w = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.5, 0.7])
    m = np.concatenate([[1.0, 2.0], small_m])
    w = np.concatenate([[1e100, 2e100], small_w])
    group = np.array([0, 0, 1, 1, 1])
    capacity = np.array([2.5, 4.0])
    ones, tens = np.ones(5), np.full(5, 10.0)
    together = group_prices(capacity, m, w, group, tens, ones)
    alone = group_prices(capacity[1:], small_m, small_w, np.zeros(3, dtype=np.int64), tens[:3], ones[:3])
    assert together[1] == alone[0]
    # The torch version keeps the groups apart too (it scales each group before its running sums).
    joint = _torch_group_prices(*map(torch.tensor, (capacity, m, w, group, tens, ones))).numpy()
    assert joint[1] == pytest.approx(together[1], rel=1e-12)
    # ... the torch version's alone: the capacity (4) falls inside the jump (6 -> 3) where the
    # third member drops, at 10 w/m.
    small = _torch_group_prices(*map(torch.tensor, (capacity[1:], small_m, small_w, np.zeros(3, dtype=np.int64),
                                                     tens[:3], ones[:3]))).numpy()
    assert alone[0] == pytest.approx(small[0], rel=1e-12) and alone[0] == pytest.approx(10 * 0.7 / 3, rel=1e-12)


@pytest.mark.parametrize("seed", range(60))
def test_groups_far_apart_in_magnitude_are_solved_as_if_alone(seed):
    # A group 1e10-1e40 times larger than the others, ahead of them in group order: its rounding
    # must not reach their price brackets, nor the share of a member indifferent at the price.
    rng = np.random.default_rng(seed)
    big = 10.0 ** rng.uniform(10, 40)
    sizes = [int(rng.integers(1, 6)) for _ in range(3)]
    group = np.repeat(np.arange(3), sizes)
    scale = np.where(group == 0, big, 1.0)
    m = rng.uniform(0.1, 1.1, group.size) * scale
    w = rng.uniform(0.5, 1.5, group.size)
    offset = np.where(rng.random(group.size) < 0.3, rng.uniform(0, 1.5, group.size), 0.0) * m
    capacity = rng.uniform(0, 2, 3) * np.bincount(group, m, 3)
    k, alpha = float(rng.choice([1.0, 5.0, 30.0])), float(rng.choice([0.5, 1.0, 2.0]))
    if seed % 4 == 0:  # the capacity inside a member's jump: it is served part of its minimum
        k, offset[:] = 1.0, 0.0
        for g in (1, 2):
            members = np.flatnonzero(group == g)
            m[members], w[members] = 1.0, 1.0
            capacity[g] = len(members) - 0.4
    t = torch.tensor
    y, price = waterfill_groups(t(capacity), t(m), t(w), t(group), k, alpha, t(offset))
    for g in (1, 2):
        members = group == g
        alone_y, alone_price = waterfill_groups(
            t(capacity[g:g + 1]), t(m[members]), t(w[members]), t(np.zeros(members.sum(), dtype=np.int64)), k, alpha,
            t(offset[members]),
        )
        torch.testing.assert_close(price[g:g + 1], alone_price, rtol=1e-9, atol=0)
        torch.testing.assert_close(y[members], alone_y, rtol=1e-9, atol=1e-12)
