"""An allocation of a split-federated-learning round (``gnnalloc.sfl-allocation/v1``): per client
its split layer, bandwidth share, CPU frequency and transmit power."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gnnalloc.core import AllocationError, entries_by_id, object_field, string_field
from gnnalloc.families.sfl._instance import SflInstance, check_value

__all__ = ["ALLOCATION_FORMAT", "SflAllocation"]

ALLOCATION_FORMAT = "gnnalloc.sfl-allocation/v1"


@dataclass(frozen=True, eq=False)
class SflAllocation:
    """Decisions for every client of an instance, in the instance's client order.

    Args:
        layer: index of the split layer into ``instance.layer_names``, ``(N,)`` int.
        share: bandwidth share ``beta_n`` in ``[0, 1]``, ``(N,)``.
        cpu: CPU frequency ``f_n`` in cycles/s, ``(N,)``, ``> 0``.
        power: transmit power ``p_n`` in W, ``(N,)``, ``>= 0``.

    Boxes, budgets and ``sum share <= 1`` are *constraints* (measured by
    :func:`~gnnalloc.families.sfl.max_violation`), not validity: an allocation that breaks them is
    still an allocation.
    """

    layer: np.ndarray
    share: np.ndarray
    cpu: np.ndarray
    power: np.ndarray

    def __post_init__(self) -> None:
        layer = np.asarray(self.layer)
        if layer.dtype.kind not in "iu":
            raise AllocationError("clients[*].layer", f"expected integer layer indices, got dtype {layer.dtype}")
        if layer.ndim != 1:  # a scalar has no clients, an (N, 1) array would pass the other shapes
            raise AllocationError(
                "clients[*].layer", f"expected an (N,) array of layer indices, got shape {layer.shape}"
            )
        object.__setattr__(self, "layer", layer.astype(np.int64))
        n = layer.shape[0]
        for name, rule in (("share", "share"), ("cpu", "pos"), ("power", "nonneg")):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            object.__setattr__(self, name, values)
            if values.shape != (n,):
                raise AllocationError(f"clients[*].{_FIELD[name]}", f"expected shape ({n},), got {values.shape}")
            for i in np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > (1 if rule == "share" else np.inf))
                                    | ((values == 0) & (rule == "pos")))[:1]:
                check_value(f"clients[{i}].{_FIELD[name]}", float(values[i]), rule, AllocationError)

    @property
    def num_clients(self) -> int:
        return int(self.layer.shape[0])

    def check_fits(self, instance: SflInstance) -> None:
        """``AllocationError`` unless the allocation has one entry per client and known layers."""
        if self.num_clients != instance.num_clients:
            raise AllocationError("clients", f"expected {instance.num_clients} clients, got {self.num_clients}")
        bad = (self.layer < 0) | (self.layer >= instance.num_layers)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AllocationError(f"clients[{i}].layer", f"no layer with index {int(self.layer[i])}")

    @classmethod
    def from_dict(cls, instance: SflInstance, data: Any) -> "SflAllocation":
        """Parse a ``gnnalloc.sfl-allocation/v1`` document of ``instance``; every client must appear
        exactly once (in any order); ``AllocationError`` names the first bad field."""
        object_field(data, "$", (), AllocationError, required=("format", "clients"))
        if data["format"] != ALLOCATION_FORMAT:
            raise AllocationError("format", f"expected {ALLOCATION_FORMAT!r}, got {data['format']!r}")
        layer_index = {name: i for i, name in enumerate(instance.layer_names)}
        n = instance.num_clients
        layer = np.full(n, -1, dtype=np.int64)
        share, cpu, power = np.zeros(n), np.zeros(n), np.zeros(n)
        clients = entries_by_id(data["clients"], "clients", instance.client_ids, "client", error=AllocationError)
        for path, i, entry in clients:
            object_field(entry, path, ("id",), AllocationError, required=("layer", "bandwidth_share", "cpu", "power"))
            name = string_field(entry["layer"], f"{path}.layer", AllocationError)
            if name not in layer_index:
                raise AllocationError(f"{path}.layer", f"unknown layer {name!r}")
            layer[i] = layer_index[name]
            share[i] = check_value(f"{path}.bandwidth_share", entry["bandwidth_share"], "share", AllocationError)
            cpu[i] = check_value(f"{path}.cpu", entry["cpu"], "pos", AllocationError)
            power[i] = check_value(f"{path}.power", entry["power"], "nonneg", AllocationError)
        return cls(layer=layer, share=share, cpu=cpu, power=power)

    def to_dict(self, instance: SflInstance) -> dict[str, Any]:
        """The ``gnnalloc.sfl-allocation/v1`` document (``from_dict`` inverts it exactly)."""
        self.check_fits(instance)
        return {
            "format": ALLOCATION_FORMAT,
            "clients": [
                {
                    "id": cid, "layer": instance.layer_names[int(self.layer[i])],
                    "bandwidth_share": float(self.share[i]), "cpu": float(self.cpu[i]),
                    "power": float(self.power[i]),
                }
                for i, cid in enumerate(instance.client_ids)
            ],
        }


_FIELD = {"share": "bandwidth_share", "cpu": "cpu", "power": "power"}
