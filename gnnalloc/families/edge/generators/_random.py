"""Random geometric topologies."""

from __future__ import annotations

import math

import numpy as np

from gnnalloc.families.edge.generators._synthesis import MAX_SERVERS, MAX_USERS, radius_links, synthesise
from gnnalloc.core import check_count, check_seed
from gnnalloc.families.edge.problem import Instance

__all__ = ["random_instance"]


def random_instance(
    users: int, servers: int, load: float = 1.0, seed: int = 0, *, penalty: float = 10.0,
    alpha: float = 1.0,
) -> Instance:
    """A random geometric network.

    Servers lie uniformly in the unit square and are linked when closer than
    ``sqrt(4 / (pi * servers))`` (mean degree about 4). Users pick home servers with
    ``LogNormal(0, 1)`` popularity, so some servers are hot spots. Capacities and demands follow
    :func:`gnnalloc.families.edge.generators.synthesise`.

    Args:
        users: number of users, 1 to :data:`MAX_USERS`.
        servers: number of servers, 1 to :data:`MAX_SERVERS`.
        load: total minimum demand / total capacity.
        seed: random seed; the same arguments give the same instance.
    """
    check_count("users", users, 1, MAX_USERS)
    check_count("servers", servers, 1, MAX_SERVERS)
    check_seed(seed)
    rng = np.random.default_rng(seed)
    positions = rng.random((servers, 2))
    link_a, link_b = radius_links(positions, math.sqrt(4.0 / (math.pi * servers)))
    popularity = rng.lognormal(0.0, 1.0, servers)
    user_server = rng.choice(servers, size=users, p=popularity / popularity.sum())
    return synthesise(
        rng, link_a=link_a, link_b=link_b, user_server=user_server, num_servers=servers,
        load=load, penalty=penalty, alpha=alpha,
    )
