"""Per-graph metrics of a batch of decisions, in tensors (for training and evaluation loops)."""

from __future__ import annotations

import torch
from torch import Tensor

from gnnalloc.metrics.functional import jain_index, met_minimum_share, satisfaction
from gnnalloc.families.edge.problem import ProblemTensors

__all__ = ["batch_metrics", "relative_violation"]


def _excess(load: Tensor, capacity: Tensor) -> Tensor:
    fallback = capacity.mean().clamp(min=1e-12) if capacity.numel() else capacity.new_tensor(1.0)
    scale = torch.where(capacity > 0, capacity, fallback)
    return torch.clamp(load - capacity, min=0) / scale


def relative_violation(problem: ProblemTensors, compute: Tensor, bandwidth: Tensor) -> Tensor:
    """Largest relative constraint violation of the whole batch (as :func:`max_violation`)."""
    parts = [
        _excess(problem.server_compute_load(compute), problem.server_compute),
        _excess(problem.server_bandwidth_load(bandwidth), problem.server_bandwidth),
        _excess(problem.link_load(compute), problem.link_capacity),
        torch.clamp(-compute, min=0) / problem.compute_min[problem.pair_user],
        torch.clamp(-bandwidth, min=0) / problem.bandwidth_min,
    ]
    values = [p.max() for p in parts if p.numel()]
    return torch.stack(values).max() if values else compute.new_tensor(0.0)


def batch_metrics(
    problem: ProblemTensors,
    compute: Tensor,
    bandwidth: Tensor,
    reference_utility: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-graph objective, gap (if a reference is given), Jain, met-minimum share, min utility.

    Returns:
        A dict of ``(G,)`` tensors plus the batch's ``max_violation`` (a scalar).
    """
    utility = problem.user_utility(compute, bandwidth)
    total = problem.user_compute(compute)
    graphs = problem.user_graph
    g = problem.num_graphs
    objective = utility.new_zeros(g).index_add(0, graphs, utility)
    weight = utility.new_zeros(g).index_add(0, graphs, problem.weight)
    out: dict[str, Tensor] = {"objective": objective}
    if reference_utility is not None:
        reference = utility.new_zeros(g).index_add(0, graphs, reference_utility.to(utility.dtype))
        out["gap"] = (reference - objective) / weight
    q = satisfaction(total, bandwidth, problem.compute_min, problem.bandwidth_min)
    jain, met, low = [], [], []
    for i in range(g):
        mask = graphs == i
        jain.append(jain_index(q[mask]))
        met.append(
            met_minimum_share(
                total[mask], bandwidth[mask], problem.compute_min[mask], problem.bandwidth_min[mask]
            )
        )
        low.append(utility[mask].min() if bool(mask.any()) else utility.new_tensor(0.0))
    out["jain"] = torch.stack(jain)
    out["met_minimum"] = torch.stack(met).to(utility.dtype)
    out["min_utility"] = torch.stack(low).to(utility.dtype)
    out["max_violation"] = relative_violation(problem, compute, bandwidth)
    return out
