r"""Loads of an allocation on each constraint: the one definition both instance views use.

With per-pair compute :math:`x_p` (pair :math:`p = (u, s)`), per-user bandwidth :math:`y_u` and
link load per unit compute :math:`d_p` (the user's data rate on a migrated pair, 0 at home):

.. math::  \text{server}_s = \sum_{p \text{ at } s} x_p, \qquad
    \text{access}_s = \sum_{u \text{ homed at } s} y_u, \qquad
    \text{link}_l = \sum_{p \text{ over } l} d_p x_p.

Pure tensor functions (batched over leading dimensions, differentiable); :class:`Instance`
calls them on its NumPy arrays and :class:`ProblemTensors` on its tensors.
"""

from __future__ import annotations

from torch import Tensor

from gnnalloc.ops import segment_sum

__all__ = ["link_load", "server_bandwidth_load", "server_compute_load"]


def server_compute_load(compute: Tensor, pair_server: Tensor, num_servers: int) -> Tensor:
    """Compute load per server, ``(..., P)`` -> ``(..., S)``."""
    return segment_sum(compute, pair_server, num_servers)


def server_bandwidth_load(bandwidth: Tensor, user_server: Tensor, num_servers: int) -> Tensor:
    """Access bandwidth load per home server, ``(..., U)`` -> ``(..., S)``."""
    return segment_sum(bandwidth, user_server, num_servers)


def link_load(compute: Tensor, pair_link: Tensor, pair_link_weight: Tensor, num_links: int) -> Tensor:
    """Data load per link, ``(..., P)`` -> ``(..., L)``; home pairs (``pair_link == -1``) load none."""
    migrated = pair_link >= 0
    return segment_sum((compute * pair_link_weight)[..., migrated], pair_link[migrated], num_links)
