r"""Vectorised water-filling in torch: every group's closed-form optimum at once.

For groups :math:`g` (e.g. home servers) with capacity :math:`B_g` shared by their members,

.. math::  \max_{y \ge 0} \sum_i w_i f(y_i; m_i) \quad\text{s.t.}\quad \sum_{i \in g} y_i \le B_g,

the optimum is each member's response to the group's price :math:`\lambda_g`:
:math:`y_i = m_i (w_i/(\lambda m_i))^{1/\alpha}` while :math:`\lambda \le w_i/m_i` (above the
minimum), :math:`y_i = m_i` while :math:`w_i/m_i \le \lambda < k w_i/m_i` (at the minimum), and
:math:`0` beyond (the user is not served). The total response is non-increasing in
:math:`\lambda`; the price is found by bisection in :math:`\log\lambda` for all groups together,
and the capacity left at the price (users whose response jumps there from :math:`m_i` to 0 are
exactly indifferent) is given to those users in order of their minimum, as the numpy reference
:func:`gnnalloc.solvers.waterfill` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["waterfill_groups"]


def _response(lam: Tensor, minimum: Tensor, weight: Tensor, penalty: Tensor, alpha: Tensor) -> Tensor:
    ratio = weight / minimum
    above = minimum * torch.pow(torch.clamp(ratio / lam, min=1.0), 1.0 / alpha)
    return torch.where(lam <= ratio, above, torch.where(lam < penalty * ratio, minimum, torch.zeros_like(minimum)))


def waterfill_groups(
    capacity: Tensor,
    minimum: Tensor,
    weight: Tensor,
    group: Tensor,
    penalty: Tensor | float,
    alpha: Tensor | float = 1.0,
    iterations: int = 80,
) -> tuple[Tensor, Tensor]:
    """Optimal split of each group's capacity among its members (see module docstring).

    Args:
        capacity: ``(G,)`` capacities :math:`B_g \\ge 0`.
        minimum: ``(N,)`` minimum demands :math:`m_i > 0`.
        weight: ``(N,)`` weights :math:`w_i > 0`.
        group: ``(N,)`` group index of each member.
        penalty, alpha: scalars or ``(N,)`` tensors.
        iterations: bisection steps in :math:`\\log \\lambda` (80 resolve the price to ~1e-16 of
            its range).

    Returns:
        ``y (N,)`` summing to each group's capacity (or less where a group is empty), and the
        prices ``lam (G,)``.
    """
    dtype, device = minimum.dtype, minimum.device
    num_groups = capacity.shape[0]
    penalty = torch.as_tensor(penalty, dtype=dtype, device=device).expand_as(minimum)
    alpha = torch.as_tensor(alpha, dtype=dtype, device=device).expand_as(minimum)
    ratio = weight / minimum
    full = torch.full((num_groups,), float("inf"), dtype=dtype, device=device)
    low = full.scatter_reduce(0, group, ratio, "amin", include_self=True)
    high = (-full).scatter_reduce(0, group, penalty * ratio, "amax", include_self=True)
    present = torch.isfinite(low)
    # At lam -> 0 demand is unbounded; at lam = max k w/m every member is dropped: bracket.
    log_lo = torch.where(present, torch.log(low) - 60.0, torch.zeros_like(low))
    log_hi = torch.where(present, torch.log(high) + 1e-9, torch.zeros_like(high))

    def total(log_lam: Tensor) -> Tensor:
        lam = torch.exp(log_lam)[group]
        y = _response(lam, minimum, weight, penalty, alpha)
        return torch.zeros(num_groups, dtype=dtype, device=device).index_add(0, group, y)

    for _ in range(iterations):
        mid = 0.5 * (log_lo + log_hi)
        over = total(mid) > capacity
        log_lo = torch.where(over, mid, log_lo)
        log_hi = torch.where(over, log_hi, mid)

    lam_hi = torch.exp(log_hi)
    y = _response(lam_hi[group], minimum, weight, penalty, alpha)
    used = torch.zeros(num_groups, dtype=dtype, device=device).index_add(0, group, y)
    room = torch.clamp(capacity - used, min=0.0)
    # Members whose response drops from m to 0 inside the final bracket are indifferent at the
    # price: fill them, smallest index first, up to their minimum.
    lam_lo = torch.exp(log_lo)
    jump = (penalty * ratio >= lam_lo[group] * (1 - 1e-12)) & (penalty * ratio <= lam_hi[group] * (1 + 1e-12)) & (y == 0)
    if bool(jump.any()):
        take = torch.where(jump, minimum, torch.zeros_like(minimum))
        order = torch.argsort(group * (take.numel() + 1) + torch.arange(take.numel(), device=device))
        sorted_group = group[order]
        cumulative = torch.cumsum(take[order], 0)
        start = torch.zeros(num_groups, dtype=dtype, device=device).index_add(0, group, take)
        before_group = torch.cumsum(start, 0) - start
        within = cumulative - before_group[sorted_group]
        granted = torch.clamp(torch.minimum(take[order], room[sorted_group] - (within - take[order])), min=0.0)
        extra = torch.zeros_like(take).index_copy(0, order, granted)
        y = y + extra
    return y, torch.where(present, lam_hi, torch.zeros_like(lam_hi))
