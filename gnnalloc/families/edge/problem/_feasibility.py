"""How far an allocation is from the feasible set, in relative terms."""

from __future__ import annotations

import numpy as np

from gnnalloc.families.edge.problem._allocation import Allocation
from gnnalloc.families.edge.problem._instance import Instance

__all__ = ["max_violation", "constraint_slack", "fit_to_capacity", "shrink_factor"]


def _relative_excess(load: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    # A zero capacity has no scale of its own; measure excess against the kind's mean capacity
    # so that a stray 1e-12 on a switched-off server reads as 1e-12, not as infinity.
    fallback = max(float(capacity.mean()) if capacity.size else 1.0, 1e-12)
    scale = np.where(capacity > 0, capacity, fallback)
    return np.maximum(load - capacity, 0.0) / scale


def max_violation(instance: Instance, allocation: Allocation) -> float:
    """Largest relative violation over every constraint of the instance.

    Per server ``(sum_u x[u,s] - C_s)_+ / C_s``, the same for access bandwidth and for links, and
    negative decisions relative to the user's minimum ``(-x)_+ / m``. 0 means feasible.
    """
    parts = [
        _relative_excess(instance.server_compute_load(allocation.compute), instance.server_compute),
        _relative_excess(
            instance.server_bandwidth_load(allocation.bandwidth), instance.server_bandwidth
        ),
        _relative_excess(instance.link_load(allocation.compute), instance.link_capacity),
        np.maximum(-allocation.compute, 0.0) / instance.compute_min[instance.pair_user],
        np.maximum(-allocation.bandwidth, 0.0) / instance.bandwidth_min,
    ]
    return float(max((p.max() for p in parts if p.size), default=0.0))


def constraint_slack(instance: Instance, allocation: Allocation) -> dict[str, np.ndarray]:
    """Capacity minus load for every constraint family (negative entries are violations)."""
    return {
        "server_compute": instance.server_compute - instance.server_compute_load(allocation.compute),
        "server_bandwidth": instance.server_bandwidth
        - instance.server_bandwidth_load(allocation.bandwidth),
        "link": instance.link_capacity - instance.link_load(allocation.compute),
    }


def fit_to_capacity(instance: Instance, allocation: Allocation) -> Allocation:
    r"""Scale decisions down just enough that every constraint holds to round-off.

    Each pair is multiplied by the smallest :math:`\min(1, \text{capacity}/\text{load})` of the
    constraints it loads (its server, and its link if migrated), each user's bandwidth by its
    home server's, and negatives are clipped to 0. Every constraint is a packing constraint
    (non-negative coefficients), so shrinking one pair only lowers other loads: the result is
    feasible in one pass, and an already feasible allocation is returned unchanged.

    Why it exists: the learned and dual pipelines are feasible by construction, but on
    instances mixing quantities many orders of magnitude apart (capacities of 1e12 beside
    minimums of 1e-12) their water-fillings' round-off can exceed a small server's capacity.
    """
    compute = np.maximum(allocation.compute, 0.0)
    bandwidth = np.maximum(allocation.bandwidth, 0.0)
    server = shrink_factor(instance.server_compute_load(compute), instance.server_compute)
    link = shrink_factor(instance.link_load(compute), instance.link_capacity)
    factor = server[instance.pair_server]
    migrated = instance.pair_link >= 0
    factor[migrated] = np.minimum(factor[migrated], link[instance.pair_link[migrated]])
    access = shrink_factor(instance.server_bandwidth_load(bandwidth), instance.server_bandwidth)
    return Allocation(compute=compute * factor, bandwidth=bandwidth * access[instance.user_server])


def shrink_factor(load: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Per constraint ``min(1, capacity / load)``: the factor that fits ``load`` into
    ``capacity`` (1 where it already fits, 0 for a positive load on a zero capacity)."""
    over = load > capacity
    return np.where(over, capacity / np.where(over, load, 1.0), 1.0)
