"""Instances on the real EUA Melbourne CBD topology (125 base-station sites, 816 user positions).

Data: ``datasets/eua/`` (EUA dataset, MIT licence, see its README). Sites become servers, linked
when within ``LINK_RADIUS_M`` = 200 m of each other (432 links, mean degree 6.9). Users take the
dataset's positions: for ``users <= 816`` a seeded sample without replacement; beyond that, positions
drawn with replacement and jittered by a Gaussian of ``JITTER_M`` = 30 m, so that larger instances
keep the real spatial density pattern. Each user's home is its nearest site. Capacities and demands
follow :func:`gnnalloc.families.edge.generators.synthesise`.
"""

from __future__ import annotations

import csv
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from gnnalloc.families.edge.generators._synthesis import MAX_USERS, radius_links, synthesise
from gnnalloc.core import check_count, check_seed
from gnnalloc.families.edge.problem import Instance

__all__ = ["eua_instance", "eua_data_dir", "LINK_RADIUS_M", "JITTER_M"]

LINK_RADIUS_M = 200.0
JITTER_M = 30.0
_EARTH_RADIUS_M = 6_371_000.0


def eua_data_dir() -> Path:
    """Where the EUA CSV files are: ``$GNNALLOC_EUA_DIR``, else ``datasets/eua`` of the checkout."""
    if "GNNALLOC_EUA_DIR" in os.environ:
        return Path(os.environ["GNNALLOC_EUA_DIR"])
    return Path(__file__).resolve().parents[4] / "datasets" / "eua"


def _to_metres(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    # Equirectangular projection: exact to well under a metre over a 2 km area.
    x = np.radians(lon - lon0) * math.cos(math.radians(lat0)) * _EARTH_RADIUS_M
    y = np.radians(lat - lat0) * _EARTH_RADIUS_M
    return np.stack([x, y], axis=1)


@lru_cache(maxsize=1)
def _positions() -> tuple[np.ndarray, np.ndarray]:
    directory = eua_data_dir()
    try:
        with open(directory / "site-optus-melbCBD.csv", newline="") as f:
            sites = [(float(r["LATITUDE"]), float(r["LONGITUDE"])) for r in csv.DictReader(f)]
        with open(directory / "users-melbcbd-generated.csv", newline="") as f:
            users = [(float(r["Latitude"]), float(r["Longitude"])) for r in csv.DictReader(f)]
    except (OSError, KeyError, ValueError) as exc:
        raise FileNotFoundError(
            f"EUA data not readable in {directory} ({exc}); set GNNALLOC_EUA_DIR"
        ) from None
    site_arr, user_arr = np.asarray(sites), np.asarray(users)
    lat0, lon0 = site_arr[:, 0].mean(), site_arr[:, 1].mean()
    return (
        _to_metres(site_arr[:, 0], site_arr[:, 1], lat0, lon0),
        _to_metres(user_arr[:, 0], user_arr[:, 1], lat0, lon0),
    )


def eua_positions() -> tuple[np.ndarray, np.ndarray]:
    """The dataset's site positions ``(S, 2)`` and user positions ``(N, 2)`` in metres (a local
    plane around the CBD), for building instances on the real topology outside
    :func:`eua_instance`'s distributions."""
    sites, users = _positions()
    return sites.copy(), users.copy()


def eua_instance(
    users: int = 816,
    load: float = 1.0,
    seed: int = 0,
    *,
    sites: int | None = None,
    penalty: float = 10.0,
    alpha: float = 1.0,
) -> Instance:
    """An instance on the EUA Melbourne CBD sites (see module docstring).

    Args:
        users: number of users, 1 to :data:`MAX_USERS`.
        load: total minimum demand / total capacity.
        seed: random seed.
        sites: if given, a real sub-region: the ``sites`` sites nearest to a random site, with the
            dataset's users whose nearest site is among them (resampled with jitter if too few).
            Used to train on small instances as dense as the full area.
    """
    check_count("users", users, 1, MAX_USERS)
    check_seed(seed)
    from scipy.spatial import cKDTree

    all_sites, positions = _positions()
    rng = np.random.default_rng(seed)
    if sites is not None:
        check_count("sites", sites, 1, all_sites.shape[0])
        centre = all_sites[rng.integers(all_sites.shape[0])]
        _, keep = cKDTree(all_sites).query(centre, k=sites)
        keep = np.sort(np.atleast_1d(keep))
        _, nearest = cKDTree(all_sites).query(positions)
        positions = positions[np.isin(nearest, keep)]
        if positions.shape[0] == 0:
            positions = all_sites[keep]
        all_sites = all_sites[keep]
    if users <= positions.shape[0]:
        chosen = positions[rng.choice(positions.shape[0], size=users, replace=False)]
    else:
        chosen = positions[rng.integers(0, positions.shape[0], users)]
        chosen = chosen + rng.normal(0.0, JITTER_M, chosen.shape)
    _, home = cKDTree(all_sites).query(chosen)
    link_a, link_b = radius_links(all_sites, LINK_RADIUS_M)
    return synthesise(
        rng, link_a=link_a, link_b=link_b, user_server=np.asarray(home),
        num_servers=all_sites.shape[0], load=load, penalty=penalty, alpha=alpha,
    )
