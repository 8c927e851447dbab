"""The weighted-sum objective: a Lagrangian relaxation of the shared band over a grid of
latency targets, with a proven lower bound on the cost.

Let ``beta_n(t)`` be client ``n``'s least share at latency ``t`` (non-increasing in ``t``; the exact
solver's per-client problem). The problem is ``min sum_n w_n t_n`` s.t. ``sum_n beta_n(t_n) <= 1``,
and for any price ``lambda >= 0``

    ``OPT >= sum_n min_t [w_n t + lambda beta_n(t)] - lambda``.

Each client's latency is searched on a geometric grid ``t_n,0 < ... < t_n,K-1`` above its proven
floor ``t_n,-1`` (below which no share is enough). On ``[t_k-1, t_k]`` the inner term is at least
``w t_k-1 + lambda * lower_k`` (``lower_k`` a proven lower bound on ``beta(t_k)``), and beyond the
grid at least ``w t_K-1``: the bound holds for every grid and every price, without convexity.
The allocation takes each client's grid choice (achieved shares) at the price, among those
whose choices fit in the band, of least cost, with the leftover band shared out; it is replaced
by the min-max optimum when that costs less. The relaxation has a duality gap (the least share
is not convex in the latency: the split layer is discrete), so the bound is proven but not
tight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gnnalloc.families.sfl._allocation import SflAllocation
from gnnalloc.families.sfl._exact import client_shares, solve_exact
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import cycles, fixed_time, round_costs, upload_bits, within_band, within_budgets

__all__ = ["WeightedSolution", "solve_weighted"]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class WeightedSolution:
    """An allocation for the weighted-sum objective and a proven lower bound on the optimal cost."""

    allocation: SflAllocation
    cost: float
    lower_bound: float


def _floor(instance: SflInstance) -> np.ndarray:
    """``(N,)`` latencies below which a client needs more than any share: fastest CPU, and the
    upload at full power over an unbounded band."""
    bit_time = upload_bits(instance) * _LN2 * instance.noise_psd / (instance.gain * instance.power_max)[:, None]
    return (cycles(instance) / instance.cpu_max[:, None] + fixed_time(instance) + bit_time).min(axis=1)


def solve_weighted(
    instance: SflInstance, points: int = 64, refinements: int = 3, refine_points: int = 24, span: float = 16.0,
    tolerance: float = 1e-9,
) -> WeightedSolution:
    """Minimise ``sum_n weight_n t_n`` (module docstring).

    Args:
        points: geometric grid points per client, from its floor to ``span`` times the min-max
            round time.
        refinements: rounds that add ``refine_points`` points between each client's chosen grid
            point's neighbours (the bound stays valid: the grid only grows).
        tolerance: of the min-max solve (:func:`solve_exact`).
    """
    minmax = solve_exact(instance, tolerance)
    weight = instance.weight
    n = instance.num_clients
    rows = np.arange(n)
    floor = _floor(instance)
    top = np.maximum(span * minmax.t_upper, 2.0 * floor)
    grid = floor[:, None] * (top / floor)[:, None] ** (np.arange(1, points + 1) / points)[None, :]
    table = {name: np.empty((n, 0)) for name in ("t", "share", "lower", "layer", "cpu", "power")}

    def add(times):
        for k in range(times.shape[1]):
            found = client_shares(instance, times[:, k])
            for name in ("share", "lower", "layer", "cpu", "power"):
                table[name] = np.concatenate([table[name], getattr(found, name)[:, None]], axis=1)
            table["t"] = np.concatenate([table["t"], times[:, k:k + 1]], axis=1)
        order = np.argsort(table["t"], axis=1)
        for name in table:
            table[name] = np.take_along_axis(table[name], order, axis=1)

    def choose(price):
        pick = np.argmin(weight[:, None] * table["t"] + price * table["share"], axis=1)
        return pick, float(table["share"][rows, pick].sum())

    def dual(price):
        previous = np.concatenate([floor[:, None], table["t"][:, :-1]], axis=1)
        inner = np.minimum((weight[:, None] * previous + price * table["lower"]).min(axis=1), weight * table["t"][:, -1])
        return float(inner.sum()) - price

    def price_search():
        # Every price is a bound; every price whose choices fit in the band is an allocation.
        scale = float(np.dot(weight, table["t"][:, -1]))
        low, high = scale * 1e-12, scale * 1e12
        bound = dual(high)
        best_price, best_cost = high, math.inf
        for _ in range(100):
            mid = math.sqrt(low * high)
            bound = max(bound, dual(mid))
            pick, used = choose(mid)
            if used <= 1.0:
                high = mid
                cost = float(np.dot(weight, table["t"][rows, pick]))
                if cost < best_cost:
                    best_price, best_cost = mid, cost
            else:
                low = mid
        return best_price, bound

    add(grid)
    price, bound = price_search()
    for _ in range(refinements):
        pick = choose(price)[0]
        left = np.where(pick > 0, table["t"][rows, np.maximum(pick - 1, 0)], floor)
        right = table["t"][rows, np.minimum(pick + 1, table["t"].shape[1] - 1)]
        fraction = (np.arange(1, refine_points + 1) / (refine_points + 1))[None, :]
        add(left[:, None] * (right / left)[:, None] ** fraction)
        price, refined = price_search()
        bound = max(bound, refined)
    pick = choose(price)[0]
    chosen = table["share"][rows, pick]
    candidate = within_budgets(instance, SflAllocation(
        layer=table["layer"][rows, pick].astype(np.int64), share=within_band(chosen / chosen.sum()),
        cpu=table["cpu"][rows, pick], power=table["power"][rows, pick],
    ))
    costs = {
        "grid": float(np.dot(weight, round_costs(instance, candidate).latency)),
        "minmax": float(np.dot(weight, round_costs(instance, minmax.allocation).latency)),
    }
    allocation = candidate if costs["grid"] <= costs["minmax"] else minmax.allocation
    return WeightedSolution(allocation, min(costs.values()), bound)
