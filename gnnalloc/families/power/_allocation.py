r"""Power allocations: one transmit power per link (``gnnalloc.power-allocation/v1``), or a frame
of power vectors shared in time (``gnnalloc.power-frame/v1``).

A frame of :math:`T` slots with time shares :math:`\theta_t \ge 0`, :math:`\sum_t \theta_t = 1`,
gives link :math:`k` the average rate :math:`\bar r_k = \sum_t \theta_t r_k(p^{(t)})`; its
utility is the instance's utility of those average rates. One power vector is the frame of one
slot. :func:`parse_power_allocation` reads either document (the one parser of the CLI and the
server).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gnnalloc.core import (
    AllocationError, check_count, check_fraction, entries_by_id, list_field, number_field, object_field,
    read_document,
)
from gnnalloc.families.power._instance import PowerInstance

__all__ = [
    "ALLOCATION_FORMAT", "FRAME_FORMAT", "MAX_SLOTS", "PowerAllocation", "PowerFrame", "frame_time_shares",
    "load_power_allocation", "parse_power_allocation", "save_power_allocation",
]

ALLOCATION_FORMAT = "gnnalloc.power-allocation/v1"
FRAME_FORMAT = "gnnalloc.power-frame/v1"

#: The most slots a frame document may have (a frame's rates cost one evaluation per slot).
MAX_SLOTS = 1024

#: How far a frame's time shares may sum from 1: shares written to seven digits (thirds as
#: 0.3333333) pass, to six digits (0.333333) they do not, and are named.
TIME_SHARE_TOLERANCE = 1e-6


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
        real numbers (``name`` prefixes the field, e.g. ``reference.``)."""
        values = _real_array(f"{name}power", self.power)
        if values.shape != (instance.num_links,):
            raise AllocationError(f"{name}power", f"expected shape ({instance.num_links},), got {values.shape}")

    @property
    def slots(self) -> int:
        """1: one power vector is a frame of one slot."""
        return 1

    @property
    def time_share(self) -> np.ndarray:
        """``[1.0]``: one power vector holds the whole time."""
        return np.ones(1)

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
        return cls(power=_link_powers(instance, data.get("links"), "links"))


def _link_powers(instance: PowerInstance, links: Any, where: str) -> np.ndarray:
    """The powers of a document's ``links`` list (every link exactly once), ``(K,)``."""
    power = np.zeros(instance.num_links)
    for path, k, entry in entries_by_id(links, where, instance.link_ids, "link", ("power",), AllocationError):
        if "power" not in entry:
            raise AllocationError(f"{path}.power", "missing")
        power[k] = number_field(entry["power"], f"{path}.power", AllocationError)
    return power


@dataclass(frozen=True, eq=False)
class PowerFrame:
    """Transmit powers for ``T`` slots of a frame and the share of time each slot gets.

    Args:
        power: ``p^{(t)}_k`` per slot and link, ``(T, K)``.
        time_share: :math:`\\theta_t`, ``(T,)``, non-negative, summing to 1.
    """

    power: np.ndarray
    time_share: np.ndarray

    def check(self, instance: PowerInstance, name: str = "") -> None:
        """Raise :class:`AllocationError` naming ``power`` or ``time_share`` (``name`` prefixes
        them, e.g. ``reference.``) unless the shapes fit ``instance``, every value is a finite
        real number, and the time shares are non-negative and sum to 1 (within
        :data:`TIME_SHARE_TOLERANCE`)."""
        power = _real_array(f"{name}power", self.power)
        share = _real_array(f"{name}time_share", self.time_share)
        if power.ndim != 2 or power.shape[1] != instance.num_links or power.shape[0] < 1:
            raise AllocationError(
                f"{name}power", f"expected shape (T, {instance.num_links}) with T >= 1, got {power.shape}",
            )
        if share.shape != (power.shape[0],):
            raise AllocationError(f"{name}time_share", f"expected shape ({power.shape[0]},), got {share.shape}")
        if (share < 0).any():
            raise AllocationError(f"{name}time_share", "must be non-negative")
        if not _sums_to_one(share):
            raise AllocationError(f"{name}time_share", f"must sum to 1, got {float(share.sum())!r}")

    def to_dict(self, instance: PowerInstance) -> dict[str, Any]:
        """The ``gnnalloc.power-frame/v1`` document: each slot's time share and link powers."""
        return {
            "format": FRAME_FORMAT,
            "slots": [
                {"time_share": float(share), "links": PowerAllocation(power).to_dict(instance)["links"]}
                for share, power in zip(self.time_share, self.power)
            ],
        }

    @classmethod
    def from_dict(cls, instance: PowerInstance, data: Any) -> PowerFrame:
        """Validate a ``gnnalloc.power-frame/v1`` document against ``instance``: 1 to
        :data:`MAX_SLOTS` slots, each with a time share and every link's power exactly once; the
        time shares non-negative and summing to 1.

        Raises:
            AllocationError: naming the offending field (``slots[1].time_share``,
                ``slots[0].links[2].power``, ``slots`` for shares that do not sum to 1).
        """
        data = object_field(data, "$", ("format", "slots"), AllocationError, required=("format", "slots"))
        if data["format"] != FRAME_FORMAT:
            raise AllocationError("format", f"unsupported {data['format']!r}, expected {FRAME_FORMAT!r}")
        slots = list_field(data["slots"], "slots", AllocationError)
        if not 1 <= len(slots) <= MAX_SLOTS:
            raise AllocationError("slots", f"expected 1 to {MAX_SLOTS} slots, got {len(slots)}")
        power = np.zeros((len(slots), instance.num_links))
        share = np.zeros(len(slots))
        for t, slot in enumerate(slots):
            where = f"slots[{t}]"
            slot = object_field(slot, where, ("time_share", "links"), AllocationError, required=("time_share", "links"))
            share[t] = number_field(slot["time_share"], f"{where}.time_share", AllocationError)
            if share[t] < 0:
                raise AllocationError(f"{where}.time_share", f"must be non-negative, got {float(share[t])!r}")
            power[t] = _link_powers(instance, slot["links"], f"{where}.links")
        if not _sums_to_one(share):
            raise AllocationError("slots", f"the time shares must sum to 1, got {float(share.sum())!r}")
        return cls(power=power, time_share=share)

    @property
    def slots(self) -> int:
        """``T``, the number of slots."""
        return int(np.asarray(self.power).shape[0])

    def with_fair_time(self, fair_time: float) -> PowerFrame:
        """The same slots with the time shares of ``fair_time`` (:func:`frame_time_shares`): the
        trade-off is traced without asking the allocator again."""
        return replace(self, time_share=frame_time_shares(self.slots, fair_time))


def _sums_to_one(share: np.ndarray) -> bool:
    """Whether time shares sum to 1, within :data:`TIME_SHARE_TOLERANCE`."""
    return math.isclose(float(share.sum()), 1.0, rel_tol=0.0, abs_tol=TIME_SHARE_TOLERANCE)


def _real_array(name: str, values: object) -> np.ndarray:
    """``values`` as a float64 array; :class:`AllocationError` naming ``name`` unless it is a
    rectangular array of finite real numbers."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nested lists
        raise AllocationError(name, "must be a rectangular array of numbers") from None
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise AllocationError(name, "must be real numbers")
    if not np.isfinite(array).all():
        raise AllocationError(name, "must be finite numbers")
    return array.astype(np.float64)


def frame_time_shares(slots: int, fair_time: float) -> np.ndarray:
    r"""The time shares of a ``slots``-slot frame at ``fair_time`` :math:`\lambda`: slot 1
    :math:`1 - \lambda + \lambda / T`, each other :math:`\lambda / T`, ``(T,)``.

    Raises:
        ValueError: naming ``slots`` (an integer >= 1) or ``fair_time`` (in [0, 1]).
    """
    check_count("slots", slots, minimum=1)
    check_fraction("fair_time", fair_time)
    share = np.full(slots, fair_time / slots)
    share[0] += 1.0 - fair_time
    return share


def parse_power_allocation(instance: PowerInstance, data: Any) -> PowerAllocation | PowerFrame:
    """A ``gnnalloc.power-allocation/v1`` or ``gnnalloc.power-frame/v1`` document, by its
    ``format``, validated against ``instance``.

    Raises:
        AllocationError: naming the offending field (``format``, ``slots[1].links[2].power``).
    """
    if isinstance(data, dict) and data.get("format") == FRAME_FORMAT:
        return PowerFrame.from_dict(instance, data)
    if isinstance(data, dict) and data.get("format") not in (ALLOCATION_FORMAT, FRAME_FORMAT):
        raise AllocationError(
            "format", f"unsupported {data.get('format')!r}, expected {ALLOCATION_FORMAT!r} or {FRAME_FORMAT!r}",
        )
    return PowerAllocation.from_dict(instance, data)


def load_power_allocation(instance: PowerInstance, path: str | Path) -> PowerAllocation | PowerFrame:
    """Read and validate an allocation or frame file for ``instance``
    (:func:`parse_power_allocation`)."""
    return parse_power_allocation(instance, read_document(path, AllocationError))


def save_power_allocation(instance: PowerInstance, allocation: PowerAllocation | PowerFrame, path: str | Path) -> None:
    """Write ``allocation`` as a ``gnnalloc.power-allocation/v1`` (a frame: ``gnnalloc.power-frame/v1``)
    JSON file."""
    Path(path).write_text(json.dumps(allocation.to_dict(instance), indent=1) + "\n")
