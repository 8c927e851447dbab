r"""Fairness and quality metrics as pure tensor functions.

Everything here takes per-user tensors and returns tensors, so the same code serves the
evaluation tables, the Lightning validation loop and the HTTP server.
"""

from __future__ import annotations

import torch
from torch import Tensor

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


def satisfaction(
    total_compute: Tensor, bandwidth: Tensor, compute_min: Tensor, bandwidth_min: Tensor
) -> Tensor:
    r"""Per-user satisfaction :math:`q_u = \sqrt{(X_u/m^c_u)(y_u/m^b_u)}` (geometric mean of ratios)."""
    # sqrt of each ratio, then the product: the product of two ratios could overflow.
    compute_ratio = torch.clamp(total_compute / compute_min, min=0)
    bandwidth_ratio = torch.clamp(bandwidth / bandwidth_min, min=0)
    return torch.sqrt(compute_ratio) * torch.sqrt(bandwidth_ratio)


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
    total_compute: Tensor,
    bandwidth: Tensor,
    compute_min: Tensor,
    bandwidth_min: Tensor,
    rtol: float = 1e-6,
) -> Tensor:
    """Share of users whose compute and bandwidth both reach their minimum (within ``rtol``)."""
    if total_compute.numel() == 0:
        return total_compute.new_tensor(1.0)
    met = (total_compute >= compute_min * (1 - rtol)) & (bandwidth >= bandwidth_min * (1 - rtol))
    return met.to(torch.float64).mean()


def weighted_utility_variance(utility: Tensor, weight: Tensor) -> Tensor:
    """Variance of utility per unit weight, ``var(U/w)`` (a FairMove-style profit fairness; 0 = equal)."""
    if utility.numel() == 0:
        return utility.new_tensor(0.0)
    return torch.var(utility / weight, unbiased=False)
