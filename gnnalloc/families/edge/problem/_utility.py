r"""The edge family's per-user utility, built on the engine's :func:`~gnnalloc.core.resource_utility`.

.. math::  U_u = w_u \big(f(X_u; m^c_u) + f(y_u; m^b_u)\big), \qquad X_u = \textstyle\sum_s x_{us}.
"""

from __future__ import annotations

from torch import Tensor

from gnnalloc.core import resource_utility

__all__ = ["user_compute", "user_utility"]


def user_compute(compute: Tensor, pair_user: Tensor, num_users: int) -> Tensor:
    """Total compute per user :math:`X_u = \\sum_s x_{us}` from per-pair compute ``(..., P)``."""
    out = compute.new_zeros(compute.shape[:-1] + (num_users,))
    return out.index_add(-1, pair_user, compute)


def user_utility(
    total_compute: Tensor,
    bandwidth: Tensor,
    compute_min: Tensor,
    bandwidth_min: Tensor,
    weight: Tensor,
    penalty: Tensor | float,
    alpha: Tensor | float = 1.0,
) -> Tensor:
    r""":math:`U_u = w_u (f(X_u; m^c_u) + f(y_u; m^b_u))`, elementwise over users.

    Args:
        total_compute: :math:`X_u`, ``(..., U)``.
        bandwidth: :math:`y_u`, ``(..., U)``.
        compute_min, bandwidth_min: minimum demands, ``(U,)``.
        weight: :math:`w_u`, ``(U,)``.
        penalty, alpha: scalars or per-user tensors (batched graphs carry one per user).
    """
    return weight * (
        resource_utility(total_compute, compute_min, penalty, alpha)
        + resource_utility(bandwidth, bandwidth_min, penalty, alpha)
    )
