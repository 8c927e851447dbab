"""Capacities and demands for a topology: the documented distributions shared by all generators.

Given server positions, links and each user's home server, ``synthesise`` draws (all uniform
draws independent, from one seeded generator):

* server compute ``C_s ~ U(20, 60)`` and access bandwidth ``B_s ~ U(50, 150)``;
* services: three (``video``, ``ar``, ``analytics``); each server hosts each with probability 0.8
  (at least one); each user runs one, uniformly;
* link capacity ``~ U(0.1, 0.3) * mean(C)``: a link carries a tenth to a third of a mean server's
  compute at data rate 1;
* user raw demands ``~ LogNormal(0, 0.5)`` for compute and bandwidth, then scaled so that
  ``sum(compute_min) = load * sum(C)`` and ``sum(bandwidth_min) = load * sum(B)``;
* data rate ``~ U(0.2, 1.0)``, weight ``~ U(0.5, 2.0)``.

``load`` is thus total minimum demand over total capacity; hot spots make some servers far busier.
"""

from __future__ import annotations

import numpy as np

from gnnalloc.core import InputError, check_positive, is_real
from gnnalloc.families.edge.problem import Instance

__all__ = ["MAX_SERVERS", "MAX_USERS", "synthesise", "SERVICES", "hosted_services", "radius_links"]

SERVICES = ("video", "ar", "analytics")


#: The most users and servers the generators draw: far above what any solver here handles
#: (the server's default limit is 20,000 users), yet a typo such as ``--users 10**12`` is a
#: named error rather than an allocation of terabytes.
MAX_USERS, MAX_SERVERS = 10_000_000, 1_000_000


#: Loads the generators accept: far beyond any meaningful congestion either way, yet demands stay
#: well inside the instance's magnitude bounds.
LOAD_RANGE = (1e-6, 1e6)


def radius_links(positions: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Undirected links between servers closer than ``radius`` (same unit as ``positions``)."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(positions).query_pairs(radius, output_type="ndarray")
    if pairs.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def hosted_services(hosts: np.ndarray, rng: np.random.Generator) -> tuple[frozenset[str], ...]:
    """Each server's services from a boolean draw ``hosts`` ``(S, len(SERVICES))`` (column ``j``:
    :data:`SERVICES` ``[j]``); a server drawn with none hosts one, uniformly (``hosts`` is updated)."""
    empty = ~hosts.any(axis=1)
    hosts[empty, rng.integers(0, len(SERVICES), int(empty.sum()))] = True
    return tuple(frozenset(SERVICES[j] for j in np.flatnonzero(row)) for row in hosts)


def synthesise(
    rng: np.random.Generator,
    *,
    link_a: np.ndarray,
    link_b: np.ndarray,
    user_server: np.ndarray,
    num_servers: int,
    load: float,
    penalty: float = 10.0,
    alpha: float = 1.0,
) -> Instance:
    """Draw capacities, services and demands (see module docstring) and build the instance."""
    check_positive("load", load)
    # Their ranges: the Instance checks them by name; a non-number (None, a string, a bool)
    # would not reach it named.
    for name, value in (("penalty", penalty), ("alpha", alpha)):
        if not is_real(value):
            raise InputError(f"{name}: must be a number, got {value!r}")
    # Demands scale with the load: outside this range they leave the instance's magnitude bounds
    # and the Instance would blame a user's demand for what is a bad `load`.
    if not LOAD_RANGE[0] <= load <= LOAD_RANGE[1]:
        raise InputError(
            f"load: must be in [{LOAD_RANGE[0]:g}, {LOAD_RANGE[1]:g}] (total minimum demand / "
            f"total capacity), got {load!r}"
        )
    num_users = int(user_server.shape[0])
    compute = rng.uniform(20.0, 60.0, num_servers)
    bandwidth = rng.uniform(50.0, 150.0, num_servers)
    services = hosted_services(rng.random((num_servers, len(SERVICES))) < 0.8, rng)
    link_capacity = rng.uniform(0.1, 0.3, link_a.shape[0]) * compute.mean()

    user_service = rng.integers(0, len(SERVICES), num_users)
    raw_compute = rng.lognormal(0.0, 0.5, num_users)
    raw_bandwidth = rng.lognormal(0.0, 0.5, num_users)
    compute_min = raw_compute * load * compute.sum() / max(raw_compute.sum(), 1e-300)
    bandwidth_min = raw_bandwidth * load * bandwidth.sum() / max(raw_bandwidth.sum(), 1e-300)
    return Instance(
        server_ids=tuple(f"s{i}" for i in range(num_servers)),
        server_compute=compute,
        server_bandwidth=bandwidth,
        server_services=services,
        link_a=link_a,
        link_b=link_b,
        link_capacity=link_capacity,
        user_ids=tuple(f"u{i}" for i in range(num_users)),
        user_server=user_server.astype(np.int64),
        user_service=tuple(SERVICES[j] for j in user_service),
        compute_min=compute_min,
        bandwidth_min=bandwidth_min,
        data_rate=rng.uniform(0.2, 1.0, num_users),
        weight=rng.uniform(0.5, 2.0, num_users),
        penalty=float(penalty),
        alpha=float(alpha),
    )
