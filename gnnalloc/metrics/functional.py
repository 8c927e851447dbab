r"""Fairness and quality metrics as pure tensor functions.

Everything here takes per-user tensors (one per resource where a user has several: edge compute
and bandwidth, a link's rate) and returns tensors, so the same code serves every family's
evaluation tables, Lightning validation loops and the HTTP server.
"""

from __future__ import annotations

import torch
from typing import Sequence

from torch import Tensor

from gnnalloc.core import InputError

__all__ = [
    "jain_index",
    "satisfaction",
    "utility_gap",
    "met_minimum_share",
    "weighted_utility_variance",
]


def jain_index(values: Tensor) -> Tensor:
    r"""Jain's fairness index :math:`(\sum_i v_i)^2 / (n \sum_i v_i^2)`, in :math:`[1/n, 1]`.

    Four users with benefit 2 and six with benefit 1 give :math:`14^2/(10 \cdot 22) = 0.8909`.
    An all-zero vector is perfectly (if uselessly) fair and scores 1.
    """
    values = values.to(torch.float64)
    n = values.numel()
    if n == 0:
        return values.new_tensor(1.0)
    # Scale-free: dividing by the largest magnitude first keeps the squares from overflowing
    # (satisfactions of 1e160 are valid on instances with huge capacities).
    peak = values.abs().max()
    if peak == 0:
        return values.new_tensor(1.0)
    values = values / peak
    return values.sum() ** 2 / (n * (values * values).sum())


def satisfaction(amounts: Sequence[Tensor], minimums: Sequence[Tensor]) -> Tensor:
    r"""Per-user satisfaction :math:`q_u = \prod_{k=1}^{K} (r_{uk}/m_{uk})^{1/K}`, the geometric
    mean of each resource's amount over its minimum (edge:
    :math:`\sqrt{(X_u/m^c_u)(y_u/m^b_u)}`).

    Args:
        amounts: per-user amounts :math:`r_{uk}`, one tensor per resource.
        minimums: the matching minimum demands :math:`m_{uk} > 0`.
    """
    _check_resources(amounts, minimums)
    k = len(amounts)
    # The root of each ratio, then the product: the product of the ratios could overflow.
    roots = [
        ratio.sqrt() if k == 2 else ratio.pow(1.0 / k)
        for ratio in (torch.clamp(r / m, min=0) for r, m in zip(amounts, minimums))
    ]
    out = roots[0]
    for root in roots[1:]:
        out = out * root
    return out


def _check_resources(amounts: Sequence[Tensor], minimums: Sequence[Tensor]) -> None:
    if len(amounts) == 0 or len(amounts) != len(minimums):
        raise InputError(
            f"minimums: expected one per resource ({len(amounts)}), got {len(minimums)}"
            if amounts else "amounts: at least one resource is required"
        )


def utility_gap(utility: Tensor, reference: Tensor, weight: Tensor) -> Tensor:
    r"""Mean per-user utility gap :math:`\sum_u (U^{ref}_u - U_u) / \sum_u w_u`.

    Normalising by total weight makes the figure comparable across instance sizes: it is the
    average utility (in log units per unit weight) lost relative to the reference. With no
    users there is nothing to lose: 0.
    """
    # Weights are positive, so the total is 0 only with no users, where the sum above is 0 too
    # (no branch: no host synchronisation).
    total = weight.sum()
    return (reference - utility).sum() / total.clamp(min=torch.finfo(total.dtype).tiny)


def met_minimum_share(
    amounts: Sequence[Tensor], minimums: Sequence[Tensor], rtol: float = 1e-6
) -> Tensor:
    """Share of users whose every resource reaches its minimum (within ``rtol``)."""
    _check_resources(amounts, minimums)
    if amounts[0].numel() == 0:
        return amounts[0].new_tensor(1.0)
    met = amounts[0] >= minimums[0] * (1 - rtol)
    for amount, minimum in zip(amounts[1:], minimums[1:]):
        met = met & (amount >= minimum * (1 - rtol))
    return met.to(torch.float64).mean()


def weighted_utility_variance(utility: Tensor, weight: Tensor) -> Tensor:
    """Variance of utility per unit weight, ``var(U/w)`` (a FairMove-style profit fairness; 0 = equal)."""
    if utility.numel() == 0:
        return utility.new_tensor(0.0)
    return torch.var(utility / weight, unbiased=False)
