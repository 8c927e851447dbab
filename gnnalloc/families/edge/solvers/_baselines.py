"""Simple feasible baselines: equal share and demand-proportional share."""

from __future__ import annotations

import numpy as np

from gnnalloc.families.edge.problem import Allocation
from gnnalloc.families.edge.problem import Instance, shrink_factor

__all__ = ["equal_share", "proportional_share"]


def _share(instance: Instance, compute_claim: np.ndarray, bandwidth_claim: np.ndarray) -> Allocation:
    """Split each capacity in proportion to the claims on it, then fit the links.

    Server ``s`` gives pair ``p`` the fraction ``claim[p] / sum of claims at s`` of its compute, and
    the same for access bandwidth among users homed at ``s``. A link that would be overloaded by the
    migrated pairs crossing it scales them down uniformly, which keeps every server feasible.
    """
    server_claims = np.bincount(instance.pair_server, compute_claim, instance.num_servers)
    with np.errstate(divide="ignore", invalid="ignore"):
        compute = np.where(
            server_claims[instance.pair_server] > 0,
            instance.server_compute[instance.pair_server]
            * compute_claim
            / server_claims[instance.pair_server],
            0.0,
        )
        link_scale = shrink_factor(instance.link_load(compute), instance.link_capacity)
    migrated = instance.pair_link >= 0
    compute[migrated] *= link_scale[instance.pair_link[migrated]]

    home_claims = np.bincount(instance.user_server, bandwidth_claim, instance.num_servers)
    with np.errstate(divide="ignore", invalid="ignore"):
        bandwidth = np.where(
            home_claims[instance.user_server] > 0,
            instance.server_bandwidth[instance.user_server]
            * bandwidth_claim
            / home_claims[instance.user_server],
            0.0,
        )
    return Allocation(compute=compute, bandwidth=bandwidth)


def equal_share(instance: Instance) -> Allocation:
    """Every server splits its compute equally among the users that can run on it, and its
    access bandwidth equally among its home users."""
    return _share(instance, np.ones(instance.num_pairs), np.ones(instance.num_users))


def proportional_share(instance: Instance) -> Allocation:
    """Like :func:`equal_share`, but in proportion to each user's minimum demand."""
    return _share(
        instance, instance.compute_min[instance.pair_user], instance.bandwidth_min.copy()
    )
