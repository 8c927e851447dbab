"""The edge workload allocation instance: servers, links, users, and their index arrays.

An instance is immutable. Besides the raw per-entity arrays it carries the *pair* index arrays that
every other part of the library shares (solvers, projections, graph builder, metrics):

* a pair ``p`` is a (user, candidate server) combination: ``pair_user[p]``, ``pair_server[p]``;
* ``pair_link[p]`` is the link a migrated workload travels over, ``-1`` for execution at home.

Pairs are sorted by user, so a user's candidates are a contiguous slice (see ``user_pair_ptr``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from gnnalloc.core import InstanceError, is_real
from gnnalloc.core import list_field, number_field, object_field, required_field, string_field
from gnnalloc.core import read_document
from gnnalloc.families.edge.problem import _loads as loads
from gnnalloc.families.edge.problem._utility import user_compute

__all__ = ["Instance", "INSTANCE_FORMAT", "load_instance", "save_instance"]

INSTANCE_FORMAT = "gnnalloc.instance/v1"
DEFAULT_PENALTY = 10.0
DEFAULT_ALPHA = 1.0
#: Largest magnitude of any number in an instance, and smallest positive minimum or weight: the
#: library multiplies and divides pairs of them (ratios, weighted utilities, squares in Jain's
#: index) in float64, whose range is 1e308. Measured: every method but the exact one (whose
#: Clarabel solve fails with a SolverError on some such mixes) and every metric stay finite on
#: mixes of 1e-100..1e100.
MAX_MAGNITUDE = 1e100
#: Largest fairness parameter. Beyond it the utility is max-min fairness for any practical
#: purpose, and the exact solver's power cones break down (cvxpy fails at alpha = 5,000).
MAX_ALPHA = 100.0


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A zero-copy tensor view of a NumPy array (float64 for values, int64 indices as they are),
    so the NumPy view of an instance computes its loads with the one tensor definition."""
    array = np.asarray(array)
    if array.dtype.kind == "f" or array.dtype.kind == "b" or array.dtype.kind == "O":
        array = array.astype(np.float64, copy=False)
    return torch.from_numpy(np.ascontiguousarray(array))


@dataclass(frozen=True, eq=False)
class Instance:
    """An edge network with users to serve.

    Args:
        server_ids: unique server names, length ``S``.
        server_compute: compute capacity per server, ``(S,)``, ``>= 0``.
        server_bandwidth: access bandwidth capacity per server, ``(S,)``, ``>= 0``.
        server_services: per server the set of hosted services, or ``None`` for every service.
        link_a, link_b: endpoints (server indices) of the undirected links, ``(L,)``.
        link_capacity: capacity per link, ``(L,)``, ``>= 0``.
        user_ids: unique user names, length ``U``.
        user_server: home server index per user, ``(U,)``.
        user_service: per user its service, or ``None`` if any server may run it.
        compute_min, bandwidth_min: minimum demands, ``(U,)``, ``> 0``.
        data_rate: data shipped over a link per unit of migrated compute, ``(U,)``, ``>= 0``.
        weight: utility weight, ``(U,)``, ``> 0``.
        penalty: slope ``k >= 1`` of the linear penalty below a minimum (relative units).
        alpha: fairness parameter ``alpha > 0`` of the utility above the minimum (1 = log).
    """

    server_ids: tuple[str, ...]
    server_compute: np.ndarray
    server_bandwidth: np.ndarray
    server_services: tuple[frozenset[str] | None, ...]
    link_a: np.ndarray
    link_b: np.ndarray
    link_capacity: np.ndarray
    user_ids: tuple[str, ...]
    user_server: np.ndarray
    user_service: tuple[str | None, ...]
    compute_min: np.ndarray
    bandwidth_min: np.ndarray
    data_rate: np.ndarray
    weight: np.ndarray
    penalty: float = DEFAULT_PENALTY
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        # The JSON parser checks values one by one with their paths; instances built in code
        # (generators, users' scripts) get the same rules here, vectorised, with the same names.
        self._check_structure()
        if not (is_real(self.penalty) and 1 <= self.penalty <= MAX_MAGNITUDE):
            raise InstanceError("penalty", f"must be a number in [1, {MAX_MAGNITUDE:g}], got {self.penalty!r}")
        if not (is_real(self.alpha) and 0 < self.alpha <= MAX_ALPHA):
            raise InstanceError("alpha", f"must be a number in (0, {MAX_ALPHA:g}], got {self.alpha!r}")
        for path, values, strict in self.number_fields():
            bad = ~np.isfinite(values) | ((values <= 0) if strict else (values < 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                rule = "finite and > 0" if strict else "finite and >= 0"
                raise InstanceError(path.format(i), f"must be {rule}, got {float(values[i])!r}")
            # Zero stays allowed where it is (an absent resource); a nonzero value below
            # 1/MAX_MAGNITUDE (down to subnormals such as 5e-324) breaks ratios and the exact
            # solver's scaling as surely as a huge one.
            lowest = 1.0 / MAX_MAGNITUDE
            bad = (values > MAX_MAGNITUDE) | ((values < lowest) & ((values != 0) | strict))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                allowed = (f"[{lowest:g}, {MAX_MAGNITUDE:g}]" if strict
                           else f"0 or [{lowest:g}, {MAX_MAGNITUDE:g}]")
                raise InstanceError(
                    path.format(i),
                    f"must be {allowed} (products of two must fit in float64), "
                    f"got {float(values[i])!r}",
                )

    def _check_structure(self) -> None:
        """The parser's structural rules for instances built in code: one entry per entity in
        every per-entity field, integer server indices in range, no self-link or duplicate link,
        unique ids; else solvers fail later on a shape or index they cannot name."""
        num_servers, num_links, num_users = len(self.server_ids), np.shape(self.link_a), len(self.user_ids)
        sizes = (
            ("servers", num_servers, ("server_compute", "server_bandwidth", "server_services")),
            ("links", num_links[0] if len(num_links) == 1 else -1, ("link_a", "link_b", "link_capacity")),
            ("users", num_users, ("user_server", "user_service", "compute_min", "bandwidth_min", "data_rate",
                                  "weight")),
        )
        for entity, count, names in sizes:
            for name in names:
                value = getattr(self, name)
                # Per-entity tuples of objects (service sets, service names) count by len: a
                # tuple of equal-length lists is not a 2-D array here.
                per_entity_objects = name in ("server_services", "user_service")
                shape = (len(value),) if per_entity_objects and isinstance(value, (tuple, list)) else np.shape(value)
                if count < 0 or shape != (count,):
                    expected = f"({count},), one per entry of {entity}" if count >= 0 else "(L,)"
                    raise InstanceError(name, f"expected shape {expected}, got {shape}")
        for name, ids, where in (("server", self.server_ids, "servers"), ("user", self.user_ids, "users")):
            if len(set(ids)) != len(ids):
                seen: set[str] = set()
                i = next(i for i, x in enumerate(ids) if x in seen or seen.add(x))
                raise InstanceError(f"{where}[{i}].id", f"duplicate {name} id {ids[i]!r}")
        for field, values, where in (("user_server", self.user_server, "users[{}].server"),
                                     ("link_a", self.link_a, "links[{}].a"), ("link_b", self.link_b, "links[{}].b")):
            values = np.asarray(values)
            if values.size and values.dtype.kind not in "iu":
                raise InstanceError(field, f"expected integer server indices, got {values.dtype}")
            bad = (values < 0) | (values >= num_servers)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InstanceError(where.format(i), f"server index {int(values[i])} out of range [0, {num_servers})")
        a, b = np.asarray(self.link_a, dtype=np.int64), np.asarray(self.link_b, dtype=np.int64)
        if (a == b).any():
            i = int(np.flatnonzero(a == b)[0])
            raise InstanceError(f"links[{i}].b", f"self-link on server {self.server_ids[int(a[i])]!r}")
        pairs = np.minimum(a, b) * max(num_servers, 1) + np.maximum(a, b)
        unique, first = np.unique(pairs, return_index=True)
        if unique.size != pairs.size:
            i = int(np.setdiff1d(np.arange(pairs.size), first)[0])
            raise InstanceError(
                f"links[{i}]", f"duplicate link {self.server_ids[int(a[i])]!r}-{self.server_ids[int(b[i])]!r}"
            )

    def number_fields(self) -> tuple[tuple[str, np.ndarray, bool], ...]:
        """Every per-entity number: its JSON path template (``"users[{}].weight"``), its values,
        and whether it must be strictly positive (minimums and weights) rather than >= 0. The
        one list the validation here and the server's range checks walk."""
        return (
            ("servers[{}].compute", self.server_compute, False),
            ("servers[{}].bandwidth", self.server_bandwidth, False),
            ("links[{}].capacity", self.link_capacity, False),
            ("users[{}].compute_min", self.compute_min, True),
            ("users[{}].bandwidth_min", self.bandwidth_min, True),
            ("users[{}].data_rate", self.data_rate, False),
            ("users[{}].weight", self.weight, True),
        )

    # ------------------------------------------------------------------ sizes
    @property
    def num_servers(self) -> int:
        return len(self.server_ids)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_links(self) -> int:
        return int(self.link_a.shape[0])

    @property
    def num_pairs(self) -> int:
        return int(self.pair_user.shape[0])

    def __repr__(self) -> str:
        return (
            f"Instance(servers={self.num_servers}, links={self.num_links}, users={self.num_users}, "
            f"pairs={self.num_pairs}, penalty={self.penalty}, alpha={self.alpha})"
        )

    # ---------------------------------------------------------- index arrays
    @cached_property
    def _pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Enumerate (user, candidate server, link) without a Python loop over users."""
        num_servers, num_links = self.num_servers, self.num_links
        # Each server's neighbourhood: itself (link -1) plus both directions of every link.
        src = np.concatenate([np.arange(num_servers), self.link_a, self.link_b])
        dst = np.concatenate([np.arange(num_servers), self.link_b, self.link_a])
        lnk = np.concatenate([np.full(num_servers, -1), np.arange(num_links), np.arange(num_links)])
        order = np.lexsort((dst, src))
        src, dst, lnk = src[order], dst[order], lnk[order]
        ptr = np.zeros(num_servers + 1, dtype=np.int64)
        np.add.at(ptr, src + 1, 1)
        ptr = np.cumsum(ptr)
        degree = ptr[1:] - ptr[:-1]

        home = self.user_server
        counts = degree[home]
        pair_user = np.repeat(np.arange(self.num_users), counts)
        offsets = np.arange(pair_user.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        slot = ptr[home][pair_user] + offsets
        pair_server, pair_link = dst[slot], lnk[slot]

        keep = self._hosts(pair_user, pair_server)
        return (
            pair_user[keep].astype(np.int64),
            pair_server[keep].astype(np.int64),
            pair_link[keep].astype(np.int64),
        )

    def _hosts(self, pair_user: np.ndarray, pair_server: np.ndarray) -> np.ndarray:
        """Whether each candidate server hosts its user's service."""
        services = sorted(
            {s for s in self.user_service if s is not None}
            | {s for hosted in self.server_services if hosted is not None for s in hosted}
        )
        index = {name: i for i, name in enumerate(services)}
        hosts = np.ones((self.num_servers, len(services) + 1), dtype=bool)
        for s, hosted in enumerate(self.server_services):
            if hosted is not None:
                hosts[s, : len(services)] = False
                hosts[s, [index[name] for name in hosted]] = True
        # The last column stands for "no service requested": every server qualifies.
        user_code = np.array(
            [len(services) if name is None else index[name] for name in self.user_service],
            dtype=np.int64,
        )
        if self.num_users == 0:
            user_code = np.zeros(0, dtype=np.int64)
        return hosts[pair_server, user_code[pair_user]]

    @property
    def pair_user(self) -> np.ndarray:
        """User of each (user, candidate server) pair, ``(P,)``, sorted."""
        return self._pairs[0]

    @property
    def pair_server(self) -> np.ndarray:
        """Candidate server of each pair, ``(P,)``."""
        return self._pairs[1]

    @property
    def pair_link(self) -> np.ndarray:
        """Link used by each pair, ``(P,)``; ``-1`` when the pair is the user's home server."""
        return self._pairs[2]

    @cached_property
    def user_pair_ptr(self) -> np.ndarray:
        """CSR pointer: user ``u``'s pairs are ``pair_ptr[u]:pair_ptr[u+1]``, ``(U+1,)``."""
        counts = np.bincount(self.pair_user, minlength=self.num_users)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @cached_property
    def users_without_candidate(self) -> np.ndarray:
        """Indices of users no server can run (they can only be penalised)."""
        return np.flatnonzero(np.diff(self.user_pair_ptr) == 0)

    @cached_property
    def pair_link_weight(self) -> np.ndarray:
        """Link load per unit of compute on each pair: ``data_rate`` if migrated, else 0."""
        return np.where(self.pair_link >= 0, self.data_rate[self.pair_user], 0.0)

    # ------------------------------------------------------------ loads
    def server_compute_load(self, compute: np.ndarray) -> np.ndarray:
        """``sum_u x[u,s]`` per server, ``(S,)`` (:func:`._loads.server_compute_load`)."""
        return loads.server_compute_load(_tensor(compute), _tensor(self.pair_server), self.num_servers).numpy()

    def server_bandwidth_load(self, bandwidth: np.ndarray) -> np.ndarray:
        """``sum of y[u]`` over users homed at each server, ``(S,)``."""
        return loads.server_bandwidth_load(_tensor(bandwidth), _tensor(self.user_server), self.num_servers).numpy()

    def link_load(self, compute: np.ndarray) -> np.ndarray:
        """``sum data_rate[u] * x[u,s]`` over migrated pairs of each link, ``(L,)``."""
        return loads.link_load(
            _tensor(compute), _tensor(self.pair_link), _tensor(self.pair_link_weight), self.num_links,
        ).numpy()

    def user_compute(self, compute: np.ndarray) -> np.ndarray:
        """Total compute ``X[u] = sum_s x[u,s]`` per user, ``(U,)``."""
        return user_compute(_tensor(compute), _tensor(self.pair_user), self.num_users).numpy()

    # ---------------------------------------------------------- conversion
    @classmethod
    def from_dict(cls, data: Any) -> "Instance":
        """Validate a ``gnnalloc.instance/v1`` document and build the instance.

        Raises:
            InstanceError: naming the first offending field and its value.
        """
        return _parse(data)

    def to_dict(self) -> dict[str, Any]:
        """The ``gnnalloc.instance/v1`` document of this instance."""
        servers = []
        for s, sid in enumerate(self.server_ids):
            entry: dict[str, Any] = {
                "id": sid,
                "compute": float(self.server_compute[s]),
                "bandwidth": float(self.server_bandwidth[s]),
            }
            if self.server_services[s] is not None:
                entry["services"] = sorted(self.server_services[s])
            servers.append(entry)
        links = [
            {
                "a": self.server_ids[int(a)],
                "b": self.server_ids[int(b)],
                "capacity": float(c),
            }
            for a, b, c in zip(self.link_a, self.link_b, self.link_capacity)
        ]
        users = []
        for u, uid in enumerate(self.user_ids):
            entry = {"id": uid, "server": self.server_ids[int(self.user_server[u])]}
            if self.user_service[u] is not None:
                entry["service"] = self.user_service[u]
            entry.update(
                compute_min=float(self.compute_min[u]),
                bandwidth_min=float(self.bandwidth_min[u]),
                data_rate=float(self.data_rate[u]),
                weight=float(self.weight[u]),
            )
            users.append(entry)
        return {
            "format": INSTANCE_FORMAT,
            "penalty": float(self.penalty),
            "alpha": float(self.alpha),
            "servers": servers,
            "links": links,
            "users": users,
        }


# ---------------------------------------------------------------- parsing
_number, _string, _object, _required = number_field, string_field, object_field, required_field


def _list(data: Mapping[str, Any], key: str, *, required: bool) -> list[Any]:
    if key not in data:
        if required:
            raise InstanceError(key, "missing")
        return []
    return list_field(data[key], key)


_SERVER_FIELDS = ("id", "compute", "bandwidth", "services")
_LINK_FIELDS = ("a", "b", "capacity")
_USER_FIELDS = (
    "id", "server", "service", "compute_min", "bandwidth_min", "data_rate", "weight",
)
_TOP_FIELDS = ("format", "penalty", "alpha", "servers", "links", "users")


def _parse(data: Any) -> Instance:
    if not isinstance(data, dict):
        raise InstanceError("$", f"expected a JSON object, got {type(data).__name__}")
    data = _object(data, "$", _TOP_FIELDS)
    if "format" not in data:
        raise InstanceError("format", "missing")
    if data["format"] != INSTANCE_FORMAT:
        raise InstanceError("format", f"unsupported {data['format']!r}, expected {INSTANCE_FORMAT!r}")
    penalty = _number(data.get("penalty", DEFAULT_PENALTY), "penalty")
    alpha = _number(data.get("alpha", DEFAULT_ALPHA), "alpha")

    server_index: dict[str, int] = {}
    compute, bandwidth, services = [], [], []
    for i, raw in enumerate(_list(data, "servers", required=True)):
        where = f"servers[{i}]"
        obj = _object(raw, where, _SERVER_FIELDS)
        sid = _string(_required(obj, "id", where), f"{where}.id")
        if sid in server_index:
            raise InstanceError(f"{where}.id", f"duplicate server id {sid!r}")
        server_index[sid] = i
        compute.append(_number(_required(obj, "compute", where), f"{where}.compute"))
        bandwidth.append(
            _number(_required(obj, "bandwidth", where), f"{where}.bandwidth")
        )
        if "services" in obj and obj["services"] is not None:
            hosted = obj["services"]
            if not isinstance(hosted, list):
                raise InstanceError(f"{where}.services", f"expected a list, got {hosted!r}")
            names = [_string(s, f"{where}.services[{j}]") for j, s in enumerate(hosted)]
            services.append(frozenset(names))
        else:
            services.append(None)

    def server_ref(value: Any, where: str) -> int:
        name = _string(value, where)
        if name not in server_index:
            raise InstanceError(where, f"unknown server id {name!r}")
        return server_index[name]

    link_a, link_b, capacity = [], [], []
    seen_links: set[tuple[int, int]] = set()
    for i, raw in enumerate(_list(data, "links", required=False)):
        where = f"links[{i}]"
        obj = _object(raw, where, _LINK_FIELDS)
        a = server_ref(_required(obj, "a", where), f"{where}.a")
        b = server_ref(_required(obj, "b", where), f"{where}.b")
        if a == b:
            raise InstanceError(f"{where}.b", f"self-link on server {obj['a']!r}")
        key = (min(a, b), max(a, b))
        if key in seen_links:
            raise InstanceError(where, f"duplicate link {obj['a']!r}-{obj['b']!r}")
        seen_links.add(key)
        link_a.append(a)
        link_b.append(b)
        capacity.append(_number(_required(obj, "capacity", where), f"{where}.capacity"))

    user_ids: list[str] = []
    seen_users: set[str] = set()
    home, service, cmin, bmin, rate, weight = [], [], [], [], [], []
    for i, raw in enumerate(_list(data, "users", required=True)):
        where = f"users[{i}]"
        obj = _object(raw, where, _USER_FIELDS)
        uid = _string(_required(obj, "id", where), f"{where}.id")
        if uid in seen_users:
            raise InstanceError(f"{where}.id", f"duplicate user id {uid!r}")
        seen_users.add(uid)
        user_ids.append(uid)
        home.append(server_ref(_required(obj, "server", where), f"{where}.server"))
        svc = obj.get("service")
        service.append(None if svc is None else _string(svc, f"{where}.service"))
        cmin.append(_number(_required(obj, "compute_min", where), f"{where}.compute_min"))
        bmin.append(_number(_required(obj, "bandwidth_min", where), f"{where}.bandwidth_min"))
        rate.append(_number(obj.get("data_rate", 0.0), f"{where}.data_rate"))
        weight.append(_number(obj.get("weight", 1.0), f"{where}.weight"))

    return Instance(
        server_ids=tuple(server_index),
        server_compute=np.asarray(compute, dtype=np.float64),
        server_bandwidth=np.asarray(bandwidth, dtype=np.float64),
        server_services=tuple(services),
        link_a=np.asarray(link_a, dtype=np.int64),
        link_b=np.asarray(link_b, dtype=np.int64),
        link_capacity=np.asarray(capacity, dtype=np.float64),
        user_ids=tuple(user_ids),
        user_server=np.asarray(home, dtype=np.int64),
        user_service=tuple(service),
        compute_min=np.asarray(cmin, dtype=np.float64),
        bandwidth_min=np.asarray(bmin, dtype=np.float64),
        data_rate=np.asarray(rate, dtype=np.float64),
        weight=np.asarray(weight, dtype=np.float64),
        penalty=penalty,
        alpha=alpha,
    )


def load_instance(path: str | Path) -> Instance:
    """Read and validate an instance JSON file (:func:`gnnalloc.core.read_document`'s rule).

    Raises:
        InstanceError: for unreadable JSON or any invalid field.
    """
    return Instance.from_dict(read_document(path))


def save_instance(instance: Instance, path: str | Path) -> None:
    """Write ``instance`` as a ``gnnalloc.instance/v1`` JSON file."""
    Path(path).write_text(json.dumps(instance.to_dict(), indent=1) + "\n")
