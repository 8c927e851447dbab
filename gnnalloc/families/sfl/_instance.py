"""The split-federated-learning instance (``gnnalloc.sfl/v1``): a server, candidate split layers
and the clients that train the model's first layers.

Client ``n`` splits the model after a candidate layer ``l``; the layer table gives per *sample*
the forward+backward FLOPs on each side of the split (``device_flops``, ``server_flops``), the
activation and gradient sizes crossing it (``activation_bits``, ``gradient_bits``) and, per
round, the client-side model uploaded for aggregation (``device_model_bits``). The latency and
energy model over these numbers is in :mod:`gnnalloc.families.sfl._model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gnnalloc.core import InstanceError, list_field, number_field, object_field, string_field

__all__ = [
    "INSTANCE_FORMAT", "MAX_MAGNITUDE", "OBJECTIVES", "SflInstance", "CLIENT_FIELDS",
    "LAYER_FIELDS", "SERVER_FIELDS",
]

INSTANCE_FORMAT = "gnnalloc.sfl/v1"
OBJECTIVES = ("minmax", "weighted_sum")
#: Largest magnitude of any number, and smallest positive one: the model multiplies up to three
#: of them (``kappa * f**2 * cycles``) in float64.
MAX_MAGNITUDE = 1e60

# (field, rule, default): rule "pos" means finite and > 0, "nonneg" finite and >= 0.
SERVER_FIELDS: tuple[tuple[str, str, float | None], ...] = (
    ("bandwidth", "pos", None), ("noise_psd", "pos", None), ("cpu", "pos", None),
    ("downlink_rate", "pos", None),
)
LAYER_FIELDS: tuple[tuple[str, str, float | None], ...] = (
    ("device_flops", "pos", None), ("server_flops", "nonneg", None),
    ("activation_bits", "pos", None), ("gradient_bits", "nonneg", None),
    ("device_model_bits", "nonneg", None),
)
CLIENT_FIELDS: tuple[tuple[str, str, float | None], ...] = (
    ("samples", "pos", None), ("gain", "pos", None), ("cpu_min", "pos", None),
    ("cpu_max", "pos", None), ("power_min", "nonneg", None), ("power_max", "pos", None),
    ("energy_max", "pos", None), ("kappa", "pos", None), ("cycles_per_flop", "pos", 1.0),
    ("weight", "pos", 1.0),
)
#: (low field, high field) pairs of a client's boxes.
CLIENT_RANGES = (("cpu_min", "cpu_max"), ("power_min", "power_max"))


def check_value(path: str, value: Any, rule: str, error: type[InstanceError] = InstanceError) -> float:
    """``value`` as a float if it is a finite number (:func:`~gnnalloc.core.number_field`) obeying
    ``rule`` ("pos", "nonneg", "share") and within :data:`MAX_MAGNITUDE`; otherwise
    ``error(path, ...)``."""
    number = number_field(value, path, error)
    if rule == "pos" and not number > 0:
        raise error(path, f"must be > 0, got {value!r}")
    if rule in ("nonneg", "share") and number < 0:
        raise error(path, f"must be >= 0, got {value!r}")
    if rule == "share" and number > 1:
        raise error(path, f"must be in [0, 1], got {value!r}")
    if abs(number) > MAX_MAGNITUDE or (0 < abs(number) < 1 / MAX_MAGNITUDE):
        raise error(path, f"must be 0 or have a magnitude in [{1 / MAX_MAGNITUDE:g}, {MAX_MAGNITUDE:g}], got {value!r}")
    return number


def _table(
    entries: Any, key: str, fields: tuple[tuple[str, str, float | None], ...], id_field: str,
) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    if not list_field(entries, key):
        raise InstanceError(key, "must list at least one entry")
    required = {id_field} | {name for name, _, default in fields if default is None}
    optional = {name for name, _, default in fields if default is not None}
    names: list[str] = []
    seen: set[str] = set()
    columns: dict[str, list[float]] = {name: [] for name, _, _ in fields}
    for i, entry in enumerate(entries):
        path = f"{key}[{i}]"
        object_field(entry, path, tuple(optional), required=tuple(required))
        name = string_field(entry[id_field], f"{path}.{id_field}")
        if name in seen:
            raise InstanceError(f"{path}.{id_field}", f"duplicate {id_field} {name!r}")
        seen.add(name)
        names.append(name)
        for field, rule, default in fields:
            value = entry.get(field, default)
            columns[field].append(check_value(f"{path}.{field}", value, rule))
    return tuple(names), {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


@dataclass(frozen=True, eq=False)
class SflInstance:
    """A split-federated-learning round to schedule.

    Args:
        objective: ``"minmax"`` (minimise the round time ``max_n t_n``) or ``"weighted_sum"``
            (minimise ``sum_n weight_n t_n``).
        bandwidth: the shared uplink band ``W`` in Hz.
        noise_psd: noise power spectral density ``N0`` in W/Hz.
        server_cpu: the server's speed in FLOP/s.
        downlink_rate: the gradient broadcast rate in bits/s.
        layer_names: candidate split layers, length ``L``.
        device_flops, server_flops: per-sample forward+backward FLOPs before/after the split, ``(L,)``.
        activation_bits, gradient_bits: per-sample bits crossing the split up/down, ``(L,)``.
        device_model_bits: bits of the client-side model uploaded once per round, ``(L,)``.
        client_ids: unique client names, length ``N``.
        samples: samples per round ``S_n``; gain: channel power gain ``g_n``; cpu_min/cpu_max:
            frequency box in cycles/s; power_min/power_max: transmit power box in W;
            energy_max: energy budget per round in J; kappa: effective switched capacitance;
            cycles_per_flop: CPU cycles per FLOP; weight: weight in the weighted sum. All ``(N,)``.
    """

    objective: str
    bandwidth: float
    noise_psd: float
    server_cpu: float
    downlink_rate: float
    layer_names: tuple[str, ...]
    device_flops: np.ndarray
    server_flops: np.ndarray
    activation_bits: np.ndarray
    gradient_bits: np.ndarray
    device_model_bits: np.ndarray
    client_ids: tuple[str, ...]
    samples: np.ndarray
    gain: np.ndarray
    cpu_min: np.ndarray
    cpu_max: np.ndarray
    power_min: np.ndarray
    power_max: np.ndarray
    energy_max: np.ndarray
    kappa: np.ndarray
    cycles_per_flop: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        # Instances built in code (generators, scripts) obey the parser's rules, by the same names.
        if self.objective not in OBJECTIVES:
            raise InstanceError("objective", f"must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        for name, rule, _ in SERVER_FIELDS:
            check_value(f"server.{name}", getattr(self, _SERVER_ATTR[name]), rule)
        for key, ids, fields in (("layers", self.layer_names, LAYER_FIELDS), ("clients", self.client_ids, CLIENT_FIELDS)):
            if len(ids) == 0:
                raise InstanceError(key, "must list at least one entry")
            if len(set(ids)) != len(ids):
                i = next(i for i, name in enumerate(ids) if ids.index(name) != i)
                raise InstanceError(f"{key}[{i}].{'name' if key == 'layers' else 'id'}", f"duplicate {ids[i]!r}")
            for name, rule, _ in fields:
                values = np.asarray(getattr(self, name), dtype=np.float64)
                object.__setattr__(self, name, values)
                if values.shape != (len(ids),):
                    raise InstanceError(f"{key}[*].{name}", f"expected shape ({len(ids)},), got {values.shape}")
                bad = ~np.isfinite(values) | ((values <= 0) if rule == "pos" else (values < 0))
                bad |= (np.abs(values) > MAX_MAGNITUDE) | ((values != 0) & (np.abs(values) < 1 / MAX_MAGNITUDE))
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    check_value(f"{key}[{i}].{name}", float(values[i]), rule)
        for low, high in CLIENT_RANGES:
            bad = getattr(self, low) > getattr(self, high)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InstanceError(
                    f"clients[{i}].{low}",
                    f"must be <= {high} ({getattr(self, high)[i]!r}), got {getattr(self, low)[i]!r}",
                )

    # ------------------------------------------------------------------ sizes
    @property
    def num_clients(self) -> int:
        return len(self.client_ids)

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    def __repr__(self) -> str:
        return f"SflInstance(objective={self.objective!r}, clients={self.num_clients}, layers={self.num_layers})"

    def number_fields(self) -> tuple[tuple[str, np.ndarray], ...]:
        """Every number with its JSON path template (``"clients[{}].gain"``): the one list the
        server's range checks walk."""
        server = tuple(
            (f"server.{name}", np.array([getattr(self, _SERVER_ATTR[name])])) for name, _, _ in SERVER_FIELDS
        )
        layers = tuple((f"layers[{{}}].{name}", getattr(self, name)) for name, _, _ in LAYER_FIELDS)
        clients = tuple((f"clients[{{}}].{name}", getattr(self, name)) for name, _, _ in CLIENT_FIELDS)
        return server + layers + clients

    # ------------------------------------------------------------------- JSON
    @classmethod
    def from_dict(cls, data: Any) -> "SflInstance":
        """Parse a ``gnnalloc.sfl/v1`` document; ``InstanceError`` names the first bad field."""
        object_field(data, "$", ("objective",), required=("format", "server", "layers", "clients"))
        if data["format"] != INSTANCE_FORMAT:
            raise InstanceError("format", f"expected {INSTANCE_FORMAT!r}, got {data['format']!r}")
        objective = data.get("objective", "minmax")
        if objective not in OBJECTIVES:
            raise InstanceError("objective", f"must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        server = object_field(data["server"], "server", (), required=tuple(name for name, _, _ in SERVER_FIELDS))
        server_values = {
            _SERVER_ATTR[name]: check_value(f"server.{name}", server[name], rule) for name, rule, _ in SERVER_FIELDS
        }
        layer_names, layers = _table(data["layers"], "layers", LAYER_FIELDS, "name")
        client_ids, clients = _table(data["clients"], "clients", CLIENT_FIELDS, "id")
        return cls(
            objective=objective, **server_values, layer_names=layer_names, **layers,
            client_ids=client_ids, **clients,
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``gnnalloc.sfl/v1`` document (``from_dict`` inverts it exactly)."""
        return {
            "format": INSTANCE_FORMAT,
            "objective": self.objective,
            "server": {name: float(getattr(self, _SERVER_ATTR[name])) for name, _, _ in SERVER_FIELDS},
            "layers": [
                {"name": name, **{f: float(getattr(self, f)[i]) for f, _, _ in LAYER_FIELDS}}
                for i, name in enumerate(self.layer_names)
            ],
            "clients": [
                {"id": cid, **{f: float(getattr(self, f)[i]) for f, _, _ in CLIENT_FIELDS}}
                for i, cid in enumerate(self.client_ids)
            ],
        }


_SERVER_ATTR = {"bandwidth": "bandwidth", "noise_psd": "noise_psd", "cpu": "server_cpu", "downlink_rate": "downlink_rate"}
