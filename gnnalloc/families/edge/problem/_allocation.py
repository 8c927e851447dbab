"""An allocation: compute per (user, candidate server) pair and access bandwidth per user."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gnnalloc.core import AllocationError, entries_by_id, number_field, object_field
from gnnalloc.families.edge.problem._instance import MAX_MAGNITUDE, Instance
from gnnalloc.core import read_document

__all__ = ["Allocation", "ALLOCATION_FORMAT", "load_allocation", "save_allocation"]

ALLOCATION_FORMAT = "gnnalloc.allocation/v1"


@dataclass(frozen=True, eq=False)
class Allocation:
    """Decisions for one instance, in the instance's pair order.

    Args:
        compute: ``x[p]`` for every pair ``p`` of the instance, ``(P,)``.
        bandwidth: ``y[u]`` for every user, ``(U,)``.
    """

    compute: np.ndarray
    bandwidth: np.ndarray

    def check(self, instance: Instance, name: str = "") -> None:
        """Raise :class:`AllocationError` unless both arrays have ``instance``'s shapes and are
        finite (``name`` prefixes the field, e.g. ``reference.``)."""
        for field, values, size in (
            ("compute", self.compute, instance.num_pairs), ("bandwidth", self.bandwidth, instance.num_users)
        ):
            values = np.asarray(values)
            if values.shape != (size,):
                raise AllocationError(f"{name}{field}", f"expected shape ({size},), got {values.shape}")
            if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
                raise AllocationError(f"{name}{field}", "must be finite numbers")
            # Metrics add and square these values: beyond an instance's own largest magnitude
            # they would overflow to inf/nan instead of being scored.
            big = np.flatnonzero(np.abs(values) > MAX_MAGNITUDE)
            if big.size:
                i = int(big[0])
                user = instance.user_ids[int(instance.pair_user[i] if field == "compute" else i)]
                raise AllocationError(
                    f"{name}{field}",
                    f"user {user!r}: {float(values[i])!r} is beyond the largest magnitude "
                    f"{MAX_MAGNITUDE:g} an allocation may hold",
                )

    def to_dict(self, instance: Instance) -> dict[str, Any]:
        """The ``gnnalloc.allocation/v1`` document; compute keyed by candidate server id."""
        ptr = instance.user_pair_ptr
        server_ids = instance.server_ids
        users = []
        for u, uid in enumerate(instance.user_ids):
            lo, hi = int(ptr[u]), int(ptr[u + 1])
            users.append(
                {
                    "id": uid,
                    "bandwidth": float(self.bandwidth[u]),
                    "compute": {
                        server_ids[int(s)]: float(x)
                        for s, x in zip(instance.pair_server[lo:hi], self.compute[lo:hi])
                    },
                }
            )
        return {"format": ALLOCATION_FORMAT, "users": users}

    @classmethod
    def from_dict(cls, instance: Instance, data: Any) -> "Allocation":
        """Validate an allocation document against ``instance``.

        Every user must appear exactly once; compute only at candidate servers (a missing candidate
        counts as 0); values must be finite numbers; no field outside the format.

        Raises:
            AllocationError: naming the offending field.
        """
        if not isinstance(data, dict):
            raise AllocationError("$", f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != ALLOCATION_FORMAT:  # first: another document is named by its format
            raise AllocationError(
                "format", f"unsupported {data.get('format')!r}, expected {ALLOCATION_FORMAT!r}"
            )
        # Unknown fields are refused, as in every format (a misspelt "computee" would count as 0).
        object_field(data, "$", ("format", "users"), AllocationError)
        ptr = instance.user_pair_ptr
        compute = np.zeros(instance.num_pairs)
        bandwidth = np.zeros(instance.num_users)
        for where, u, entry in entries_by_id(
            data.get("users"), "users", instance.user_ids, "user", allowed=("bandwidth", "compute"), error=AllocationError,
        ):
            bandwidth[u] = number_field(entry.get("bandwidth"), f"{where}.bandwidth", AllocationError)
            per_server = entry.get("compute", {})
            if not isinstance(per_server, dict):
                raise AllocationError(f"{where}.compute", f"expected an object, got {per_server!r}")
            lo, hi = int(ptr[u]), int(ptr[u + 1])
            slots = {instance.server_ids[int(s)]: lo + j for j, s in enumerate(instance.pair_server[lo:hi])}
            for sid, value in per_server.items():
                if sid not in slots:
                    raise AllocationError(
                        f"{where}.compute.{sid}", f"server {sid!r} is not a candidate for user {entry['id']!r}"
                    )
                compute[slots[sid]] = number_field(value, f"{where}.compute.{sid}", AllocationError)
        return cls(compute=compute, bandwidth=bandwidth)


def load_allocation(instance: Instance, path: str | Path) -> Allocation:
    """Read and validate an allocation file for ``instance`` (:func:`gnnalloc.core.read_document`'s
    rule)."""
    return Allocation.from_dict(instance, read_document(path, AllocationError))


def save_allocation(instance: Instance, allocation: Allocation, path: str | Path) -> None:
    """Write ``allocation`` as a ``gnnalloc.allocation/v1`` JSON file."""
    Path(path).write_text(json.dumps(allocation.to_dict(instance), indent=1) + "\n")
