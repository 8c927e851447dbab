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

``layout="clustered"`` changes every shape again: servers in 3-8 Gaussian clusters, each linked to
its 2-4 nearest servers (a k-nearest graph, not a radius graph), compute and bandwidth each 4x
larger on a random quarter of the servers (two independent draws), Zipf popularity, demands
``LogNormal(0, 1)``, weights log-uniform in ``[0.3, 3]``, link capacities log-uniform in
``[0.02, 0.6] * mean(C)``, data rates ``U(0.3, 2)``, every service hosted with probability 0.5
(at least one).
"""

from __future__ import annotations

import math

import numpy as np

from gnnalloc.families.edge.generators import LINK_RADIUS_M, SERVICES, eua_positions, hosted_services, radius_links
from gnnalloc.families.edge.problem import Instance

__all__ = ["heldout_instance"]


def heldout_instance(
    users: int, load: float, seed: int, *, penalty: float = 10.0, alpha: float = 1.0, layout: str = "eua",
    servers: int | None = None,
) -> Instance:
    """One held-out instance (module docstring). ``servers`` applies to the ``random`` and
    ``clustered`` layouts (default: one per 6 users)."""
    rng = np.random.default_rng(10_000_019 + seed)
    from scipy.spatial import cKDTree

    if layout == "eua":
        sites, positions = eua_positions()
        chosen = positions[rng.integers(0, positions.shape[0], users)] + rng.normal(0.0, 30.0, (users, 2))
        _, home = cKDTree(sites).query(chosen)
        link_a, link_b = radius_links(sites, LINK_RADIUS_M)
        num_servers = sites.shape[0]
    elif layout == "clustered":
        return _clustered(users, load, rng, penalty, alpha, servers or max(2, users // 6))
    elif layout == "random":
        num_servers = servers or max(2, users // 6)
        points = rng.random((num_servers, 2))
        degree = rng.uniform(3.0, 6.0)
        link_a, link_b = radius_links(points, math.sqrt(degree / (math.pi * num_servers)))
        popularity = rng.lognormal(0.0, 1.5, num_servers)
        home = rng.choice(num_servers, size=users, p=popularity / popularity.sum())
    else:
        raise ValueError(f"layout: expected 'eua', 'random' or 'clustered', got {layout!r}")
    compute = rng.lognormal(math.log(40.0), 0.6, num_servers)
    bandwidth = rng.lognormal(math.log(100.0), 0.5, num_servers)
    services = hosted_services(rng.random((num_servers, len(SERVICES))) < rng.uniform(0.6, 0.95), rng)
    raw_compute = rng.pareto(1.5, users) + 1.0
    raw_bandwidth = rng.pareto(1.5, users) + 1.0
    # Keyword arguments evaluate left to right: the draws below keep this order.
    return _assemble(
        compute=compute, bandwidth=bandwidth, services=services, link_a=link_a, link_b=link_b,
        link_capacity=rng.uniform(0.05, 0.5, link_a.shape[0]) * compute.mean(), home=home,
        user_service=rng.integers(0, len(SERVICES), users), raw_compute=raw_compute,
        raw_bandwidth=raw_bandwidth, load=load, data_rate=rng.uniform(0.1, 1.5, users),
        weight=rng.uniform(0.5, 4.0, users), penalty=penalty, alpha=alpha,
    )


def _clustered(
    users: int, load: float, rng: np.random.Generator, penalty: float, alpha: float, num_servers: int,
) -> Instance:
    """The ``clustered`` layout (module docstring)."""
    clusters = int(rng.integers(3, 9))
    centres = rng.random((clusters, 2))
    member = rng.integers(0, clusters, num_servers)
    points = centres[member] + rng.normal(0.0, 0.05, (num_servers, 2))
    link_a, link_b = _nearest_links(points, int(rng.integers(2, 5)))
    compute = np.where(rng.random(num_servers) < 0.25, 4.0, 1.0) * rng.uniform(15.0, 25.0, num_servers)
    bandwidth = np.where(rng.random(num_servers) < 0.25, 4.0, 1.0) * rng.uniform(40.0, 60.0, num_servers)
    services = hosted_services(rng.random((num_servers, len(SERVICES))) < 0.5, rng)
    popularity = 1.0 / (1.0 + rng.permutation(num_servers)) ** rng.uniform(0.6, 1.2)
    home = rng.choice(num_servers, size=users, p=popularity / popularity.sum())
    raw_compute = rng.lognormal(0.0, 1.0, users)
    raw_bandwidth = rng.lognormal(0.0, 1.0, users)
    return _assemble(
        compute=compute, bandwidth=bandwidth, services=services, link_a=link_a, link_b=link_b,
        link_capacity=np.exp(rng.uniform(math.log(0.02), math.log(0.6), link_a.shape[0])) * compute.mean(),
        home=home, user_service=rng.integers(0, len(SERVICES), users), raw_compute=raw_compute,
        raw_bandwidth=raw_bandwidth, load=load, data_rate=rng.uniform(0.3, 2.0, users),
        weight=np.exp(rng.uniform(math.log(0.3), math.log(3.0), users)), penalty=penalty, alpha=alpha,
    )


def _assemble(
    *, compute: np.ndarray, bandwidth: np.ndarray, services: tuple[frozenset[str], ...], link_a: np.ndarray,
    link_b: np.ndarray, link_capacity: np.ndarray, home: np.ndarray, user_service: np.ndarray,
    raw_compute: np.ndarray, raw_bandwidth: np.ndarray, load: float, data_rate: np.ndarray, weight: np.ndarray,
    penalty: float, alpha: float,
) -> Instance:
    """The instance, with the raw demands scaled so that total minimum demand is ``load`` times
    total capacity (as the library's generators do)."""
    return Instance(
        server_ids=tuple(f"s{i}" for i in range(compute.shape[0])),
        server_compute=compute,
        server_bandwidth=bandwidth,
        server_services=services,
        link_a=link_a,
        link_b=link_b,
        link_capacity=link_capacity,
        user_ids=tuple(f"u{i}" for i in range(home.shape[0])),
        user_server=np.asarray(home, dtype=np.int64),
        user_service=tuple(SERVICES[j] for j in user_service),
        compute_min=raw_compute * load * compute.sum() / raw_compute.sum(),
        bandwidth_min=raw_bandwidth * load * bandwidth.sum() / raw_bandwidth.sum(),
        data_rate=data_rate,
        weight=weight,
        penalty=float(penalty),
        alpha=float(alpha),
    )


def _nearest_links(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Undirected links from every point to its ``k`` nearest others (sorted, no duplicates, no
    self-links; none for fewer than two points)."""
    from scipy.spatial import cKDTree

    k = min(k, points.shape[0] - 1)
    if k < 1:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, nearest = cKDTree(points).query(points, list(range(2, k + 2)))  # always (n, k): skip the point itself
    a = np.repeat(np.arange(points.shape[0]), k)
    b = nearest.reshape(-1)
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]  # coincident points: a point may be its own "nearest other"
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
