"""The exact min-max solver: cross-checked against a cvxpy model for fixed splits and against
brute force on tiny instances; its certificate and its reports of infeasible clients."""

from __future__ import annotations

import math
import warnings

import cvxpy as cp
import numpy as np
import pytest
from _sfl_fixtures import small_doc

from gnnalloc.core import InstanceError
from gnnalloc.families.sfl import SflInstance, max_violation, random_sfl, round_costs
from gnnalloc.families.sfl._exact import client_shares, solve_exact
from gnnalloc.families.sfl._model import cycles, fixed_time, upload_bits, uplink_rate


def _cvxpy_bits(instance, n, layer, round_time, width):
    """The most bits client ``n`` can upload at split ``layer`` within ``round_time`` and its
    budget with ``width`` Hz (convex for a fixed width: device time d, upload time tau and
    upload energy q, the rate's perspective tau * width * log2(1 + g q / (N0 width tau)))."""
    work = cycles(instance, np.full(instance.num_clients, layer))[n]
    spare = round_time - fixed_time(instance, np.full(instance.num_clients, layer))[n]
    d, tau, q = cp.Variable(pos=True), cp.Variable(pos=True), cp.Variable(pos=True)
    c = instance.gain[n] / instance.noise_psd / width
    bits = width / math.log(2) * -cp.rel_entr(tau, tau + c * q)
    scale = upload_bits(instance, np.full(instance.num_clients, layer))[n]
    constraints = [
        d + tau <= spare,
        instance.kappa[n] * work**3 * cp.power(d, -2) + q <= instance.energy_max[n],
        q >= instance.power_min[n] * tau, q <= instance.power_max[n] * tau,
        d >= work / instance.cpu_max[n], d <= work / instance.cpu_min[n],
    ]
    problem = cp.Problem(cp.Maximize(bits / scale), constraints)
    try:
        with warnings.catch_warnings():
            # "Solution may be inaccurate": the status is no certificate; the values are compared.
            warnings.simplefilter("ignore")
            problem.solve(solver=cp.CLARABEL)
    except cp.error.SolverError:
        return -math.inf
    if problem.status not in ("optimal", "optimal_inaccurate"):
        return -math.inf
    return problem.value * scale


def _cvxpy_least_width(instance, n, layer, round_time, guess):
    """The least width whose most bits reach the client's upload, by bisection over the width."""
    need = upload_bits(instance, np.full(instance.num_clients, layer))[n]
    # The bracket's ends already check agreement to 1e-5; bisection refines it to 1e-9.
    low, high = guess * (1 - 1e-5), guess * (1 + 1e-5)
    assert _cvxpy_bits(instance, n, layer, round_time, high) >= need
    assert _cvxpy_bits(instance, n, layer, round_time, low) < need
    while high - low > 1e-9 * high:
        mid = 0.5 * (low + high)
        if _cvxpy_bits(instance, n, layer, round_time, mid) >= need:
            high = mid
        else:
            low = mid
    return high


@pytest.mark.parametrize("layer", [0, 1])
def test_least_shares_agree_with_cvxpy_for_fixed_splits(layer):
    instance = SflInstance.from_dict(small_doc())
    layers = np.full(instance.num_clients, layer)
    solution = solve_exact(instance, layers=layers)
    allowed = np.zeros((instance.num_clients, instance.num_layers), dtype=bool)
    allowed[:, layer] = True
    for round_time in (solution.t_upper, 1.3 * solution.t_upper):
        found = client_shares(instance, round_time, allowed)
        assert (found.lower <= found.share).all()
        for n in range(instance.num_clients):
            width = found.share[n] * instance.bandwidth
            reference = _cvxpy_least_width(instance, n, layer, round_time, width)
            assert width == pytest.approx(reference, rel=1e-6)
    # At the optimum the least shares use the whole band: cvxpy's sum to 1 as well.
    found = client_shares(instance, solution.t_upper, allowed)
    total = sum(
        _cvxpy_least_width(instance, n, layer, solution.t_upper, found.share[n] * instance.bandwidth)
        for n in range(instance.num_clients)
    ) / instance.bandwidth
    assert total == pytest.approx(1.0, rel=1e-6)


def _brute_force(instance, grid=60, share_grid=400):
    """The least round time over a grid of shares (the rest of the band to the other client),
    layers, frequencies and powers, with two clients."""
    first, second = _brute_force_times(instance, grid, share_grid)
    return float(np.maximum(first, second).min())


def _brute_force_times(instance, grid=60, share_grid=400):
    """Per client, its least latency over layers, frequencies and powers within its budget at
    each share of a grid (the first client's share; the second gets the rest)."""
    assert instance.num_clients == 2
    shares = np.linspace(0.0, 1.0, share_grid + 1)[1:-1]
    best_time = []
    for n, own in ((0, shares), (1, 1.0 - shares)):
        times = np.full(own.shape, np.inf)
        for layer in range(instance.num_layers):
            one = np.full(instance.num_clients, layer)
            work, bits = cycles(instance, one)[n], upload_bits(instance, one)[n]
            fixed = fixed_time(instance, one)[n]
            f = np.geomspace(instance.cpu_min[n], instance.cpu_max[n], grid)[:, None, None]
            p = np.geomspace(instance.power_min[n], instance.power_max[n], grid)[None, :, None]
            rate = uplink_rate(own[None, None, :], p, instance.gain[n], instance.bandwidth, instance.noise_psd)
            latency = work / f + bits / rate + fixed
            energy = instance.kappa[n] * f**2 * work + p * bits / rate
            latency = np.where(energy <= instance.energy_max[n], latency, np.inf)
            times = np.minimum(times, latency.min(axis=(0, 1)))
        best_time.append(times)
    return best_time


@pytest.mark.parametrize("seed", range(4))
def test_brute_force_is_never_better_than_the_certificate(seed):
    instance = random_sfl(2, seed)
    solution = solve_exact(instance)
    brute = _brute_force(instance)
    assert np.isfinite(brute)
    assert brute >= solution.t_lower * (1 - 1e-12)
    assert brute <= solution.t_upper * 1.05  # the grid's resolution
    costs = round_costs(instance, solution.allocation)
    assert max_violation(instance, solution.allocation) <= 1e-12
    assert costs.latency.max() <= solution.t_upper * (1 + 1e-12)


@pytest.mark.parametrize("size", [5, 60])
def test_certificate_and_feasible_allocation(size):
    instance = random_sfl(size, 3, architecture="resnet18-imagenet")
    solution = solve_exact(instance, tolerance=1e-9)
    assert solution.status == "optimal"
    assert solution.relative_gap <= 1e-9
    assert client_shares(instance, solution.t_lower).lower.sum() > 1.0
    assert solution.allocation.share.sum() <= 1.0
    assert max_violation(instance, solution.allocation) <= 1e-12
    assert round_costs(instance, solution.allocation).latency.max() <= solution.t_upper * (1 + 1e-12)


def test_client_without_a_feasible_split_is_named():
    doc = small_doc()
    doc["clients"][2]["energy_max"] = 1e-9
    with pytest.raises(InstanceError, match="no split layer meets the budget") as info:
        solve_exact(SflInstance.from_dict(doc))
    assert info.value.field == "clients[2].energy_max"


def test_budgets_needing_more_than_the_band_are_named():
    doc = small_doc()
    # Each client alone could meet its budget with the whole band, but not all together.
    instance = SflInstance.from_dict(doc)
    from gnnalloc.families.sfl._exact import solo_energy

    need = solo_energy(instance).min(axis=1)
    for client, energy in zip(doc["clients"], need):
        client["energy_max"] = float(energy * 1.01)
    with pytest.raises(InstanceError) as info:
        solve_exact(SflInstance.from_dict(doc), max_doublings=60)
    assert info.value.field == "server.bandwidth"


def test_bad_tolerance_is_named():
    with pytest.raises(ValueError, match="tolerance"):
        solve_exact(SflInstance.from_dict(small_doc()), tolerance=0.0)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_sum_brackets_brute_force(seed):
    import dataclasses

    from gnnalloc.families.sfl import solve_weighted

    instance = random_sfl(2, seed, objective="weighted_sum")
    instance = dataclasses.replace(instance, weight=np.array([1.0, 3.0]))
    solution = solve_weighted(instance)
    first, second = _brute_force_times(instance)
    brute = float((first + 3.0 * second).min())
    assert solution.lower_bound <= brute * (1 + 1e-12)
    assert solution.lower_bound >= 0.99 * solution.cost  # the bound is proven and, here, tight
    assert solution.cost <= brute * 1.05
    assert max_violation(instance, solution.allocation) == 0.0
    cost = float(np.dot(instance.weight, round_costs(instance, solution.allocation).latency))
    assert cost == pytest.approx(solution.cost, rel=1e-12)
    minmax = solve_exact(instance)
    assert cost <= float(np.dot(instance.weight, round_costs(instance, minmax.allocation).latency))


def test_least_shares_fall_with_the_round_time_and_bound_themselves():
    instance = random_sfl(30, 5, architecture="vit-cifar")
    previous = None
    for round_time in np.geomspace(1.0, 1e4, 25):
        found = client_shares(instance, round_time)
        finite = np.isfinite(found.share)
        assert (found.lower <= found.share).all()
        np.testing.assert_array_less(found.lower[finite], found.share[finite] * (1 + 1e-9) + 1e-300)
        if previous is not None:
            assert (found.share <= previous * (1 + 1e-9)).all()
        previous = found.share


@pytest.mark.parametrize("size,seed", [(1, 9), (1, 8), (3, 14), (10, 20), (30, 33)])
def test_exact_reaches_the_tolerance_where_a_probe_lands_on_the_root(size, seed):
    # On these rounds a bisection step lands within the lower bounds' accuracy of the root
    # (shares sum just above 1, bounds just below); the solver used to stop there, "stalled",
    # with a bracket up to 3e-8 wide.
    solution = solve_exact(random_sfl(size, seed), tolerance=1e-9)
    assert solution.status == "optimal"
    assert 0 <= solution.t_upper - solution.t_lower <= 1e-9 * solution.t_upper


@pytest.mark.parametrize("size,seed", [(1, 0), (3, 0), (3, 5)])
def test_warm_start_probes_around_an_undecided_round_time(size, seed, monkeypatch):
    import dataclasses

    import gnnalloc.families.sfl._warm as warm

    tolerance = 1e-9
    instance = random_sfl(size, seed)
    root = solve_exact(instance, tolerance=1e-12).t_upper
    hits = []

    def loose_bounds(instance, t, allowed=None):
        # Just above the root the lower bounds are made loose (and the shares doubled past 1):
        # the round time is undecided there, as where the real bounds are not tight.
        found = client_shares(instance, t, allowed)
        if root < t < root * (1 + 0.3 * tolerance):
            hits.append(t)
            return dataclasses.replace(found, share=2.0 * found.share)
        return found

    monkeypatch.setattr(warm, "client_shares", loose_bounds)
    solution = warm.solve_from_guess(instance, 0.8 * root, tolerance=tolerance)
    assert hits, "the bisection never landed in the undecided window"
    assert solution.status == "optimal"
    assert 0 <= solution.t_upper - solution.t_lower <= tolerance * solution.t_upper
    assert solution.t_lower < root <= solution.t_upper * (1 + 1e-12)


@pytest.mark.parametrize(
    "layers,field",
    [
        ([-1, -1, -1], r"layers\[0\]"),  # was silently the last layer
        ([0.7, 0, 0], r"layers"),  # was silently truncated to layer 0
        ([99, 0, 0], r"layers\[0\]"),  # was an IndexError
        ([0, 0], r"layers"),  # was an IndexError
    ],
)
def test_fixed_layers_are_checked_by_name(layers, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        solve_exact(random_sfl(3, 0), layers=layers)
