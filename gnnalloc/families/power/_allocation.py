"""A power allocation (``gnnalloc.power-allocation/v1``): one transmit power per link."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gnnalloc.core import AllocationError, entries_by_id, number_field, read_document
from gnnalloc.families.power._instance import PowerInstance

__all__ = ["ALLOCATION_FORMAT", "PowerAllocation", "load_power_allocation", "save_power_allocation"]

ALLOCATION_FORMAT = "gnnalloc.power-allocation/v1"


@dataclass(frozen=True, eq=False)
class PowerAllocation:
    """Transmit powers in the instance's link order.

    Whether they lie in ``[0, pmax]`` is a question of feasibility (``max_violation`` of the
    score), not of format: an allocation slightly above ``pmax`` parses and is reported.

    Args:
        power: ``p_k`` per link, ``(K,)``.
    """

    power: np.ndarray

    def check(self, instance: PowerInstance, name: str = "") -> None:
        """Raise :class:`AllocationError` unless ``power`` has ``instance``'s shape and is finite
        (``name`` prefixes the field, e.g. ``reference.``)."""
        values = np.asarray(self.power)
        if values.shape != (instance.num_links,):
            raise AllocationError(f"{name}power", f"expected shape ({instance.num_links},), got {values.shape}")
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            raise AllocationError(f"{name}power", "must be finite numbers")

    def to_dict(self, instance: PowerInstance) -> dict[str, Any]:
        """The ``gnnalloc.power-allocation/v1`` document."""
        return {
            "format": ALLOCATION_FORMAT,
            "links": [{"id": lid, "power": float(p)} for lid, p in zip(instance.link_ids, self.power)],
        }

    @classmethod
    def from_dict(cls, instance: PowerInstance, data: Any) -> "PowerAllocation":
        """Validate an allocation document against ``instance``: every link exactly once, each
        power a finite number.

        Raises:
            AllocationError: naming the offending field (``links[2].power``, ``links[0].id``).
        """
        if not isinstance(data, dict):
            raise AllocationError("$", f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"format", "links"})
        if unknown:
            raise AllocationError(unknown[0], "unknown field")
        if data.get("format") != ALLOCATION_FORMAT:
            raise AllocationError("format", f"unsupported {data.get('format')!r}, expected {ALLOCATION_FORMAT!r}")
        power = np.zeros(instance.num_links)
        for where, k, entry in entries_by_id(
            data.get("links"), "links", instance.link_ids, "link", ("power",), AllocationError
        ):
            if "power" not in entry:
                raise AllocationError(f"{where}.power", "missing")
            power[k] = number_field(entry["power"], f"{where}.power", AllocationError)
        return cls(power=power)


def load_power_allocation(instance: PowerInstance, path: str | Path) -> PowerAllocation:
    """Read and validate an allocation file for ``instance``."""
    return PowerAllocation.from_dict(instance, read_document(path, AllocationError))


def save_power_allocation(instance: PowerInstance, allocation: PowerAllocation, path: str | Path) -> None:
    """Write ``allocation`` as a ``gnnalloc.power-allocation/v1`` JSON file."""
    Path(path).write_text(json.dumps(allocation.to_dict(instance), indent=1) + "\n")
