"""Uniform samples of an instance's users, the network scaled to the share kept."""

from __future__ import annotations

import dataclasses

import numpy as np

from gnnalloc.core import check_count
from gnnalloc.families.edge.problem._instance import MAX_MAGNITUDE, Instance

__all__ = ["sample_user_indices", "sample_users"]


def sample_user_indices(num_users: int, count: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(count, num_users)`` of ``num_users`` users drawn uniformly without
    replacement with ``seed``: the same draw for the same arguments.

    Raises:
        ValueError: naming ``count`` or ``num_users`` if either is not a non-negative integer.
    """
    check_count("num_users", num_users)
    check_count("count", count)
    if count >= num_users:
        return np.arange(num_users)
    return np.sort(np.random.default_rng(seed).choice(num_users, size=count, replace=False))


def sample_users(instance: Instance, count: int, seed: int = 0) -> Instance:
    r"""``instance`` with a uniform sample of ``count`` of its users (:func:`sample_user_indices`;
    all of them if it has no more) and every capacity, of servers and links, scaled by the share
    kept :math:`f = \text{count} / U`: the same network at the same load per unit of capacity.

    With many users per server the sample's optimal prices are close to the whole instance's
    (each server's price clears :math:`f` times its capacity among about :math:`f` times its
    users), at :math:`f` of the cost of anything that reads every user. A scaled capacity
    that would fall below the smallest an instance accepts keeps that smallest instead.

    Raises:
        ValueError: naming ``count`` if it is not a positive integer.
    """
    check_count("count", count, minimum=1)
    kept = sample_user_indices(instance.num_users, count, seed)
    if kept.shape[0] == instance.num_users:
        return instance
    share = kept.shape[0] / instance.num_users

    def scaled(capacity: np.ndarray) -> np.ndarray:
        return np.where(capacity > 0, np.maximum(capacity * share, 1.0 / MAX_MAGNITUDE), 0.0)

    return dataclasses.replace(
        instance,
        server_compute=scaled(instance.server_compute),
        server_bandwidth=scaled(instance.server_bandwidth),
        link_capacity=scaled(instance.link_capacity),
        user_ids=tuple(instance.user_ids[i] for i in kept),
        user_server=instance.user_server[kept],
        user_service=tuple(instance.user_service[i] for i in kept),
        compute_min=instance.compute_min[kept],
        bandwidth_min=instance.bandwidth_min[kept],
        data_rate=instance.data_rate[kept],
        weight=instance.weight[kept],
    )
