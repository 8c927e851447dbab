"""How far an allocation is from the feasible set, in relative terms."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gnnalloc.families.edge.problem._allocation import Allocation
from gnnalloc.families.edge.problem._instance import Instance
from gnnalloc.families.edge.problem._tensors import ProblemTensors

__all__ = [
    "constraint_slack", "fit_compute_to_capacity", "fit_to_capacity", "max_violation", "relative_violation",
    "shrink_factor",
]


def _excess(load: Tensor, capacity: Tensor) -> Tensor:
    # A zero capacity has no scale of its own; measure excess against the kind's mean capacity
    # so that a stray 1e-12 on a switched-off server reads as 1e-12, not as infinity.
    fallback = capacity.mean().clamp(min=1e-12) if capacity.numel() else capacity.new_tensor(1.0)
    scale = torch.where(capacity > 0, capacity, fallback)
    return torch.clamp(load - capacity, min=0) / scale


def relative_violation(problem: ProblemTensors, compute: Tensor, bandwidth: Tensor) -> Tensor:
    """Largest relative violation over every constraint of a (batch of) instance(s), a scalar.

    Per server ``(sum_u x[u,s] - C_s)_+ / C_s``, the same for access bandwidth and for links, and
    negative decisions relative to the user's minimum ``(-x)_+ / m``. 0 means feasible.
    """
    parts = [
        _excess(problem.server_compute_load(compute), problem.server_compute),
        _excess(problem.server_bandwidth_load(bandwidth), problem.server_bandwidth),
        _excess(problem.link_load(compute), problem.link_capacity),
        torch.clamp(-compute, min=0) / problem.compute_min[problem.pair_user],
        torch.clamp(-bandwidth, min=0) / problem.bandwidth_min,
    ]
    values = [p.max() for p in parts if p.numel()]
    return torch.stack(values).max() if values else compute.new_tensor(0.0)


def max_violation(instance: Instance, allocation: Allocation) -> float:
    """:func:`relative_violation` of one allocation (float64): 0 means feasible."""
    problem = ProblemTensors.from_instance(instance, dtype=torch.float64)
    compute = torch.as_tensor(np.asarray(allocation.compute, dtype=np.float64))
    bandwidth = torch.as_tensor(np.asarray(allocation.bandwidth, dtype=np.float64))
    return float(relative_violation(problem, compute, bandwidth)) + 0.0  # never a negative zero


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
    bandwidth = np.maximum(allocation.bandwidth, 0.0)
    access = shrink_factor(instance.server_bandwidth_load(bandwidth), instance.server_bandwidth)
    return Allocation(
        compute=fit_compute_to_capacity(instance, allocation.compute),
        bandwidth=bandwidth * access[instance.user_server],
    )


def fit_compute_to_capacity(instance: Instance, compute: np.ndarray) -> np.ndarray:
    """The compute part of :func:`fit_to_capacity`: each pair of ``compute`` ``(P,)``, clipped
    at 0, times the smallest factor of the server and the link it loads."""
    compute = np.maximum(compute, 0.0)
    server = shrink_factor(instance.server_compute_load(compute), instance.server_compute)
    link = shrink_factor(instance.link_load(compute), instance.link_capacity)
    factor = server[instance.pair_server]
    migrated = instance.pair_link >= 0
    factor[migrated] = np.minimum(factor[migrated], link[instance.pair_link[migrated]])
    return compute * factor


def shrink_factor(load: np.ndarray | Tensor, capacity: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """Per constraint ``min(1, capacity / load)``: the factor that fits ``load`` into
    ``capacity`` (1 where it already fits, 0 for a positive load on a zero capacity). NumPy
    arrays or torch tensors (the migration search's, on any device), the same arithmetic."""
    over = load > capacity
    if isinstance(load, Tensor):
        return torch.where(over, capacity / torch.where(over, load, 1.0), 1.0)
    return np.where(over, capacity / np.where(over, load, 1.0), 1.0)
