"""Held-out edge instances drawn *outside* the library's generators, for judging learned methods.

The library's generators (:func:`gnnalloc.eua_instance`, :func:`gnnalloc.random_instance`) draw
light-tailed demands (``LogNormal(0, 0.5)``), weights ``U(0.5, 2)`` and ``C ~ U(20, 60)``; a model
trained on them can overfit those shapes. These instances change every distribution:

* topology: the EUA Melbourne CBD sites (``layout="eua"``) or servers uniform in a square with a
  random link radius giving mean degree 3-6 (``layout="random"``);
* server compute ``LogNormal(ln 40, 0.6)``, bandwidth ``LogNormal(ln 100, 0.5)``; each service
  hosted with probability ``U(0.6, 0.95)`` per instance;
* link capacity ``U(0.05, 0.5) * mean(C)``;
* demands Pareto with shape 1.5 (heavy-tailed: a few users ask for tens of times the median),
  scaled to the load as the library's generators do;
* weights ``U(0.5, 4)``, data rates ``U(0.1, 1.5)``; homes: the nearest site of a user position
  drawn from the dataset (EUA) or by ``LogNormal(0, 1.5)`` popularity (random).
"""

from __future__ import annotations

import math

import numpy as np

from gnnalloc.families.edge.generators import LINK_RADIUS_M, SERVICES, eua_positions, radius_links
from gnnalloc.families.edge.problem import Instance

__all__ = ["heldout_instance"]


def heldout_instance(
    users: int, load: float, seed: int, *, penalty: float = 10.0, alpha: float = 1.0, layout: str = "eua",
    servers: int | None = None,
) -> Instance:
    """One held-out instance (module docstring). ``servers`` applies to ``layout="random"``
    (default: one per 6 users)."""
    rng = np.random.default_rng(10_000_019 + seed)
    from scipy.spatial import cKDTree

    if layout == "eua":
        sites, positions = eua_positions()
        chosen = positions[rng.integers(0, positions.shape[0], users)] + rng.normal(0.0, 30.0, (users, 2))
        _, home = cKDTree(sites).query(chosen)
        link_a, link_b = radius_links(sites, LINK_RADIUS_M)
        num_servers = sites.shape[0]
    elif layout == "random":
        num_servers = servers or max(2, users // 6)
        points = rng.random((num_servers, 2))
        degree = rng.uniform(3.0, 6.0)
        link_a, link_b = radius_links(points, math.sqrt(degree / (math.pi * num_servers)))
        popularity = rng.lognormal(0.0, 1.5, num_servers)
        home = rng.choice(num_servers, size=users, p=popularity / popularity.sum())
    else:
        raise ValueError(f"layout: expected 'eua' or 'random', got {layout!r}")
    compute = rng.lognormal(math.log(40.0), 0.6, num_servers)
    bandwidth = rng.lognormal(math.log(100.0), 0.5, num_servers)
    hosts = rng.random((num_servers, len(SERVICES))) < rng.uniform(0.6, 0.95)
    empty = ~hosts.any(axis=1)
    hosts[empty, rng.integers(0, len(SERVICES), int(empty.sum()))] = True
    raw_compute = rng.pareto(1.5, users) + 1.0
    raw_bandwidth = rng.pareto(1.5, users) + 1.0
    return Instance(
        server_ids=tuple(f"s{i}" for i in range(num_servers)),
        server_compute=compute,
        server_bandwidth=bandwidth,
        server_services=tuple(frozenset(SERVICES[j] for j in np.flatnonzero(row)) for row in hosts),
        link_a=link_a,
        link_b=link_b,
        link_capacity=rng.uniform(0.05, 0.5, link_a.shape[0]) * compute.mean(),
        user_ids=tuple(f"u{i}" for i in range(users)),
        user_server=np.asarray(home, dtype=np.int64),
        user_service=tuple(SERVICES[j] for j in rng.integers(0, len(SERVICES), users)),
        compute_min=raw_compute * load * compute.sum() / raw_compute.sum(),
        bandwidth_min=raw_bandwidth * load * bandwidth.sum() / raw_bandwidth.sum(),
        data_rate=rng.uniform(0.1, 1.5, users),
        weight=rng.uniform(0.5, 4.0, users),
        penalty=float(penalty),
        alpha=float(alpha),
    )
