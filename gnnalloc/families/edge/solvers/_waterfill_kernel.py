r"""A compiled CPU kernel for the water-filling prices of many groups at once.

The math is :func:`~gnnalloc.families.edge.solvers.functional.waterfill_groups`' (see
:mod:`gnnalloc.families.edge.solvers.functional`) without offsets and without the allocation:
each group's events (a member's above-minimum regime ends at :math:`w/m`, it drops at
:math:`k w/m`) are sorted by price, the first after which the total fits the capacity brackets
the price, and inside the bracket :math:`\lambda = (A / (B - C))^\alpha` with :math:`A, C`
summed afresh over the members' regimes at an interior point. The torch version stays the
reference (differentiable, on any device, and the allocation besides the prices); it sums over
all groups at once, each group scaled to magnitudes below 2 first, where this kernel sums each
group alone, so the two agree to rounding whatever the groups' (finite) magnitudes. This one exists
because :func:`~gnnalloc.families.edge.solvers.functional.waterfill_prices` runs once per
solve over every pair, where the torch version's sorts and per-operation overhead cost
milliseconds (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import math

import numpy as np

from gnnalloc.core import compiled

__all__ = ["group_prices"]


# error_model="numpy" on both kernels: a power that underflows to 0 (alpha 1/2 at a price near
# 1e-162, which the instance limits allow) divides to inf, as in torch, instead of raising
# ZeroDivisionError.
@compiled(fastmath=False, error_model="numpy")
def _power(base, exponent):  # pragma: no cover - compiled
    # No general power where a cheaper exact operation does (alpha 1, 2 and 1/2): a power is
    # most of the kernel's cost. Within a rounding of the torch version's.
    if exponent == 1.0:
        return base
    if exponent == -1.0:
        return 1.0 / base
    if exponent == 0.0:
        return 1.0
    if exponent == 0.5:
        return math.sqrt(base)
    if exponent == -0.5:
        return 1.0 / math.sqrt(base)
    if exponent == 2.0:
        return base * base
    if exponent == -2.0:
        return 1.0 / (base * base)
    return base ** exponent


@compiled(fastmath=False, error_model="numpy")
def group_prices(capacity, minimum, weight, group, penalty, alpha):  # pragma: no cover - compiled
    r"""Each group's water-filling price ``(G,)`` (0 for a group without members) for members
    ``(N,)`` with minimums, weights, group indices, penalties and alphas (alpha constant within
    a group), holding nothing beforehand: the prices
    :func:`~gnnalloc.families.edge.solvers.functional.waterfill_groups` returns for them."""
    num_groups, num_members = capacity.shape[0], minimum.shape[0]
    # Members by group, in index order within each (a counting sort).
    start = np.zeros(num_groups + 1, dtype=np.int64)
    for i in range(num_members):
        start[group[i] + 1] += 1
    largest = 0
    for g in range(num_groups):
        largest = max(largest, start[g + 1])
        start[g + 1] += start[g]
    members = np.empty(num_members, dtype=np.int64)
    fill = start[:-1].copy()
    for i in range(num_members):
        members[fill[group[i]]] = i
        fill[group[i]] += 1
    # Each member's term A = m^(1 - 1/a) w^(1/a) of the total A lam^(-1/a) above its minimum.
    coefficient = np.empty(num_members)
    for i in range(num_members):
        a = alpha[i]
        coefficient[i] = _power(minimum[i], 1.0 - 1.0 / a) * _power(weight[i], 1.0 / a)
    event_price = np.empty(2 * largest)
    prices = np.zeros(num_groups)
    tiny = np.finfo(np.float64).tiny
    for g in range(num_groups):
        first, last = start[g], start[g + 1]
        count = last - first
        if count == 0:
            continue
        a_total = 0.0
        for j in range(count):
            i = members[first + j]
            ratio = weight[i] / minimum[i]
            # Two events: the above-minimum regime ends at w/m (A loses the member's term, C
            # gains its minimum), and the member drops at k w/m (C loses it).
            event_price[2 * j] = ratio
            event_price[2 * j + 1] = penalty[i] * ratio
            a_total += coefficient[i]
        order = np.argsort(event_price[:2 * count], kind="mergesort")  # ties in index order
        exponent = -1.0 / alpha[members[first]]
        # As the price rises from 0 every member is above its minimum: the total is
        # A lam^(-1/a) + C with A the sum of the terms and C = 0, until the first event.
        a_after, c_after = a_total, 0.0
        bracket = 2 * count - 1
        jump = False
        for t in range(2 * count):
            e = order[t]
            i = members[first + e // 2]
            scale = _power(event_price[e], exponent)
            total_before = a_after * scale + c_after
            if e % 2 == 0:
                a_after -= coefficient[i]
                c_after += minimum[i]
            else:
                c_after -= minimum[i]
            if a_after * scale + c_after <= capacity[g] or t == 2 * count - 1:
                bracket = t
                jump = total_before > capacity[g]  # the capacity falls inside the event's jump
                break
        hi = event_price[order[bracket]]
        lo = event_price[order[bracket - 1]] if bracket > 0 else 0.0
        # Regimes strictly inside (lo, hi], read at an interior point, and their sums afresh.
        probe = math.sqrt(lo * hi) if lo > 0.0 else 0.5 * hi
        a_sum, c_sum = 0.0, 0.0
        for j in range(count):
            i = members[first + j]
            ratio = weight[i] / minimum[i]
            if probe < ratio:
                a_sum += coefficient[i]
            elif probe < penalty[i] * ratio:
                c_sum += minimum[i]
        room = capacity[g] - c_sum
        price = hi
        if a_sum > 0.0 and room > 0.0 and not jump:
            price = min(max(_power(a_sum / room, alpha[members[first]]), lo), hi)
        prices[g] = max(price, tiny)
    return prices
