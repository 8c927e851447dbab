r"""Normalised node and edge features of an instance: scale-free, log-compressed, always finite.

Every feature is a ratio of quantities in the same unit (a demand over a capacity, a value over
its mean over the instance), so multiplying all bandwidths, or all weights, or all compute
quantities together with all link capacities (link load is compute times data rate) by a constant
leaves the features unchanged. Ratios are compressed with one of two maps:

* ``lr(a, b) = ln a - ln b`` (signed, for strictly positive quantities such as demands);
* ``l1p(a, b) = ln(1 + a / b)`` (for non-negative quantities that may be zero, such as loads, and
  for ratios whose small end carries no information).

``lr`` is evaluated in log space, and ``l1p`` as ``log1p`` of the ratio except where the ratio
overflows, where it is ``ln a - ln b`` (equal to rounding there), so neither overflows;
denominators (and numerators of ``lr``) are floored at ``1e-9`` times the instance's typical
scale of that resource. A zero-capacity server thus gives
``l1p(c, 0) \approx ln(c / scale) + 20.7``: large but finite, and flagged separately. A ratio
anywhere in ``[1e-6, 1e6]`` maps to a value of magnitude at most 13.8.

The feature names below are in column order; see each tuple for the exact definitions.
"""

from __future__ import annotations

import numpy as np

from gnnalloc.families.edge.problem import Instance

__all__ = [
    "USER_FEATURES",
    "SERVER_FEATURES",
    "CANDIDATE_FEATURES",
    "LINK_FEATURES",
    "user_features",
    "server_features",
    "candidate_features",
    "link_features",
    "graph_features",
]

#: User features, ``(U, 15)``. ``c, b`` = compute/bandwidth minimum, ``C_h, B_h`` = capacities of
#: the home server, ``K_u`` = the user's candidate servers, bars are means over users.
USER_FEATURES: tuple[str, ...] = (
    "compute_min/home_compute",  # l1p(c, C_h)
    "bandwidth_min/home_bandwidth",  # l1p(b, B_h)
    "compute_min/candidate_compute",  # l1p(c, sum_{s in K_u} C_s)
    "compute_min/mean",  # lr(c, c_bar)
    "bandwidth_min/mean",  # lr(b, b_bar)
    "migration_load",  # l1p(data_rate * c, mean link capacity)
    "data_rate/mean",  # l1p(data_rate, data_rate_bar)
    "weight/mean",  # lr(w, w_bar)
    "num_candidates",  # ln(1 + |K_u|)
    "home_hosts_service",  # 1 if the home server is a candidate
    "no_candidate",  # 1 if |K_u| = 0
    "penalty",  # ln k (instance-level)
    "alpha",  # ln alpha (instance-level)
    "compute_load",  # lr(sum c, sum C) (instance-level)
    "bandwidth_load",  # lr(sum b, sum B) (instance-level)
)

#: Server features, ``(S, 11)``. ``H_s`` = users homed at ``s``, ``P_s`` = pairs with server ``s``.
SERVER_FEATURES: tuple[str, ...] = (
    "compute/mean",  # l1p(C_s, C_bar)
    "bandwidth/mean",  # l1p(B_s, B_bar)
    "home_compute_pressure",  # l1p(sum_{u in H_s} c_u, C_s)
    "home_bandwidth_pressure",  # l1p(sum_{u in H_s} b_u, B_s)
    "candidate_compute_pressure",  # l1p(sum_{p in P_s} c_u, C_s)
    "num_home_users",  # ln(1 + |H_s|)
    "num_candidate_pairs",  # ln(1 + |P_s|)
    "degree",  # ln(1 + number of links)
    "link_capacity/compute",  # l1p(sum of incident link capacities, C_s)
    "zero_compute",  # 1 if C_s = 0
    "zero_bandwidth",  # 1 if B_s = 0
)

#: Features of candidate pair ``p = (u, s)`` over link ``l`` (absent at home), ``(P, 5)``.
CANDIDATE_FEATURES: tuple[str, ...] = (
    "is_home",  # 1 if s is u's home server
    "link_capacity/mean",  # l1p(cap_l, mean link capacity); 0 at home
    "migration_load",  # l1p(data_rate_u * c_u, cap_l); 0 at home
    "server_pressure",  # home_compute_pressure of s
    "compute_min/server_compute",  # l1p(c_u, C_s)
)

#: Features of directed link ``a -> b`` (every link appears in both directions), ``(2L, 4)``.
LINK_FEATURES: tuple[str, ...] = (
    "capacity/mean",  # l1p(cap, mean link capacity)
    "capacity/source_compute",  # l1p(cap, C_a)
    "capacity/target_compute",  # l1p(cap, C_b)
    "migration_pressure",  # l1p(sum over pairs using the link of data_rate_u * c_u, cap)
)

_FLOOR = 1e-9


def _mean(values: np.ndarray, default: float) -> float:
    """Mean of the positive entries (zeros would make a scale of 0), else ``default``."""
    positive = values[values > 0]
    return float(positive.mean()) if positive.size else default


def _lr(a: np.ndarray | float, b: np.ndarray | float, floor: float) -> np.ndarray:
    """``ln max(a, floor) - ln max(b, floor)``."""
    return np.log(np.maximum(a, floor)) - np.log(np.maximum(b, floor))


def _l1p(a: np.ndarray | float, b: np.ndarray | float, floor: float) -> np.ndarray:
    """``ln(1 + max(a, 0) / max(b, floor))``; ``ln max(a, 0) - ln max(b, floor)`` where the ratio
    overflows (the same to rounding there), so finite for finite inputs. ``log1p`` of the ratio
    costs a third of the equivalent ``softplus`` of the log ratio."""
    a, b = np.maximum(a, 0.0), np.maximum(b, floor)
    # ln 0 = -inf where a = 0 is only read where the ratio overflowed (a > 0 there).
    with np.errstate(over="ignore", divide="ignore"):
        ratio = a / b
        overflow = np.isinf(ratio)
        if not overflow.any():
            return np.log1p(ratio)
        return np.where(overflow, np.log(a) - np.log(b), np.log1p(ratio))


class _Scales:
    """Typical magnitudes of each resource, used for means and floors."""

    def __init__(self, instance: Instance) -> None:
        self.compute = _mean(instance.server_compute, _mean(instance.compute_min, 1.0))
        self.bandwidth = _mean(instance.server_bandwidth, _mean(instance.bandwidth_min, 1.0))
        # Link capacities are in link units: compute * data_rate.
        rate = _mean(instance.data_rate, 1.0)
        self.link = _mean(instance.link_capacity, self.compute * rate)
        self.rate = rate
        self.weight = _mean(instance.weight, 1.0)
        self.compute_min = _mean(instance.compute_min, self.compute)
        self.bandwidth_min = _mean(instance.bandwidth_min, self.bandwidth)


def _home_sums(instance: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = instance.num_servers
    home = instance.user_server
    return (
        np.bincount(home, weights=instance.compute_min, minlength=s),
        np.bincount(home, weights=instance.bandwidth_min, minlength=s),
        np.bincount(home, minlength=s).astype(np.float64),
    )


def _home_compute_pressure(instance: Instance, scales: _Scales, home_compute: np.ndarray) -> np.ndarray:
    """``l1p(sum_{u in H_s} c_u, C_s)`` per server, float64: a server feature that every
    candidate pair at the server reads too."""
    return _l1p(home_compute, instance.server_compute, _FLOOR * scales.compute)


def user_features(instance: Instance) -> np.ndarray:
    """User feature matrix, ``(U, len(USER_FEATURES))`` float32 (see :data:`USER_FEATURES`)."""
    return _user_features(instance, _Scales(instance))


def server_features(instance: Instance) -> np.ndarray:
    """Server feature matrix, ``(S, len(SERVER_FEATURES))`` float32 (see
    :data:`SERVER_FEATURES`)."""
    scales, sums = _Scales(instance), _home_sums(instance)
    return _server_features(instance, scales, sums, _home_compute_pressure(instance, scales, sums[0]))


def candidate_features(instance: Instance) -> np.ndarray:
    """Candidate pair features in pair order, ``(P, len(CANDIDATE_FEATURES))`` float32."""
    scales = _Scales(instance)
    pressure = _home_compute_pressure(instance, scales, _home_sums(instance)[0])
    return _candidate_features(instance, scales, pressure)


def link_features(instance: Instance) -> np.ndarray:
    """Features of the directed links ``a -> b`` then ``b -> a``, ``(2L, len(LINK_FEATURES))``."""
    return _link_features(instance, _Scales(instance))


def graph_features(instance: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`user_features`, :func:`server_features`, :func:`candidate_features` and
    :func:`link_features` of ``instance``, the scales and per-server sums they share computed
    once (the graph builder calls this on every prediction)."""
    scales, sums = _Scales(instance), _home_sums(instance)
    pressure = _home_compute_pressure(instance, scales, sums[0])
    return (
        _user_features(instance, scales),
        _server_features(instance, scales, sums, pressure),
        _candidate_features(instance, scales, pressure),
        _link_features(instance, scales),
    )


def _user_features(instance: Instance, sc: _Scales) -> np.ndarray:
    fc, fb = _FLOOR * sc.compute, _FLOOR * sc.bandwidth
    n, home = instance.num_users, instance.user_server
    c, b = instance.compute_min, instance.bandwidth_min
    num_candidates = np.diff(instance.user_pair_ptr).astype(np.float64)
    candidate_compute = np.bincount(
        instance.pair_user, weights=instance.server_compute[instance.pair_server], minlength=n
    )
    is_home = instance.pair_server == home[instance.pair_user]
    home_hosts = np.bincount(instance.pair_user[is_home], minlength=n) > 0
    compute_load = _lr(c.sum(), instance.server_compute.sum(), fc)
    bandwidth_load = _lr(b.sum(), instance.server_bandwidth.sum(), fb)
    constant = np.ones(n)
    columns = [
        _l1p(c, instance.server_compute[home], fc),
        _l1p(b, instance.server_bandwidth[home], fb),
        _l1p(c, candidate_compute, fc),
        _lr(c, sc.compute_min, fc),
        _lr(b, sc.bandwidth_min, fb),
        _l1p(instance.data_rate * c, sc.link, _FLOOR * sc.link),
        _l1p(instance.data_rate, sc.rate, _FLOOR * sc.rate),
        _lr(instance.weight, sc.weight, _FLOOR * sc.weight),
        np.log1p(num_candidates),
        home_hosts.astype(np.float64),
        (num_candidates == 0).astype(np.float64),
        constant * np.log(instance.penalty),
        constant * np.log(instance.alpha),
        constant * compute_load,
        constant * bandwidth_load,
    ]
    return np.stack(columns, axis=1).astype(np.float32).reshape(n, len(USER_FEATURES))


def _server_features(
    instance: Instance, sc: _Scales, home_sums: tuple[np.ndarray, np.ndarray, np.ndarray], home_pressure: np.ndarray,
) -> np.ndarray:
    fc, fb = _FLOOR * sc.compute, _FLOOR * sc.bandwidth
    s = instance.num_servers
    C, B = instance.server_compute, instance.server_bandwidth
    _, home_b, home_n = home_sums
    cand_c = np.bincount(
        instance.pair_server, weights=instance.compute_min[instance.pair_user], minlength=s
    )
    cand_n = np.bincount(instance.pair_server, minlength=s).astype(np.float64)
    ends = np.concatenate([instance.link_a, instance.link_b])
    caps = np.concatenate([instance.link_capacity, instance.link_capacity])
    degree = np.bincount(ends, minlength=s).astype(np.float64)
    link_sum = np.bincount(ends, weights=caps, minlength=s)
    columns = [
        _l1p(C, sc.compute, fc),
        _l1p(B, sc.bandwidth, fb),
        home_pressure,
        _l1p(home_b, B, fb),
        _l1p(cand_c, C, fc),
        np.log1p(home_n),
        np.log1p(cand_n),
        np.log1p(degree),
        # Link capacity (link units) over compute: data_rate converts; use the typical rate.
        _l1p(link_sum / sc.rate, C, fc),
        (C <= 0).astype(np.float64),
        (B <= 0).astype(np.float64),
    ]
    return np.stack(columns, axis=1).astype(np.float32).reshape(s, len(SERVER_FEATURES))


def _candidate_features(instance: Instance, sc: _Scales, home_pressure: np.ndarray) -> np.ndarray:
    fc, fl = _FLOOR * sc.compute, _FLOOR * sc.link
    pu, ps, pl = instance.pair_user, instance.pair_server, instance.pair_link
    migrated = pl >= 0
    # Home pairs have no link: give them capacity 0 (their link columns are zeroed below).
    cap = np.zeros(pl.shape[0])
    cap[migrated] = instance.link_capacity[pl[migrated]]
    demand = instance.compute_min[pu]
    columns = [
        (~migrated).astype(np.float64),
        np.where(migrated, _l1p(cap, sc.link, fl), 0.0),
        np.where(migrated, _l1p(instance.data_rate[pu] * demand, cap, fl), 0.0),
        home_pressure[ps],
        _l1p(demand, instance.server_compute[ps], fc),
    ]
    p = instance.num_pairs
    return np.stack(columns, axis=1).astype(np.float32).reshape(p, len(CANDIDATE_FEATURES))


def _link_features(instance: Instance, sc: _Scales) -> np.ndarray:
    fc, fl = _FLOOR * sc.compute, _FLOOR * sc.link
    src = np.concatenate([instance.link_a, instance.link_b])
    dst = np.concatenate([instance.link_b, instance.link_a])
    cap = np.concatenate([instance.link_capacity, instance.link_capacity])
    migrated = instance.pair_link >= 0
    potential = np.bincount(
        instance.pair_link[migrated],
        weights=(instance.pair_link_weight * instance.compute_min[instance.pair_user])[migrated],
        minlength=instance.num_links,
    )
    potential = np.concatenate([potential, potential])
    C = instance.server_compute
    columns = [
        _l1p(cap, sc.link, fl),
        _l1p(cap / sc.rate, C[src], fc),
        _l1p(cap / sc.rate, C[dst], fc),
        _l1p(potential, cap, fl),
    ]
    return np.stack(columns, axis=1).astype(np.float32).reshape(src.shape[0], len(LINK_FEATURES))
