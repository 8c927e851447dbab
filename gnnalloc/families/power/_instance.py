"""The power-control instance (``gnnalloc.power/v1``): links, their gains, the noise and the utility.

Cross gains are stored sparsely, as the document's ``interference`` list is: arrays
``cross_rx``, ``cross_tx``, ``cross_gain`` in the document's order; a pair that is absent has
gain 0. :meth:`PowerInstance.gain_matrix` gives the dense ``(K, K)`` matrix the dense
functions and solvers take (row = receiver, column = transmitter, diagonal = direct gains).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gnnalloc.core import (
    InstanceError, is_real, list_field, number_field, object_field, read_document, required_field,
    string_field,
)
from gnnalloc.families.power.functional import UTILITIES

__all__ = [
    "DEFAULT_ALPHA", "DEFAULT_PENALTY", "INSTANCE_FORMAT", "MAX_ALPHA", "MAX_MAGNITUDE",
    "PowerInstance", "load_power_instance", "save_power_instance",
]

INSTANCE_FORMAT = "gnnalloc.power/v1"
DEFAULT_PENALTY = 10.0
DEFAULT_ALPHA = 1.0
#: Largest magnitude of any number, and smallest positive one: as in the edge format, products
#: and ratios of two numbers (a gain over the noise, times a power) must fit in float64.
MAX_MAGNITUDE = 1e100
#: Largest fairness parameter (beyond it the utility is max-min fairness for practical purposes).
MAX_ALPHA = 100.0


@dataclass(frozen=True, eq=False)
class PowerInstance:
    r"""K transmitter-receiver links sharing a band.

    Args:
        link_ids: unique link names, length ``K``.
        pmax: largest transmit power per link, ``(K,)``, ``> 0``.
        direct_gain: power gain :math:`g_{kk}` from each link's transmitter to its receiver,
            ``(K,)``, ``>= 0``.
        weight: utility weight :math:`w_k`, ``(K,)``, ``> 0``.
        rate_min: minimum rate :math:`m_k` (bits/s/Hz) per link, ``(K,)``, ``> 0``, or ``None``
            (allowed only for the ``sum_rate`` utility, which does not use it).
        noise: receiver noise power :math:`\sigma^2 > 0` (same units as gain times power).
        cross_rx, cross_tx: link indices of each cross gain's receiver and transmitter, ``(E,)``,
            distinct pairs, ``rx != tx``, in the document's order (so that ``interference[i]``
            names the same entry in errors).
        cross_gain: cross gains :math:`g_{rx,tx} \ge 0`, ``(E,)``.
        utility: ``"sum_rate"`` (:math:`\sum_k w_k r_k`) or ``"alpha_fair"``
            (:math:`\sum_k w_k f(r_k; m_k)`, see :func:`gnnalloc.core.resource_utility`).
        alpha: fairness parameter :math:`\alpha \in (0, 100]` of ``alpha_fair``.
        penalty: slope :math:`\ge 1` below the minimum rate of ``alpha_fair``.
    """

    link_ids: tuple[str, ...]
    pmax: np.ndarray
    direct_gain: np.ndarray
    weight: np.ndarray
    rate_min: np.ndarray | None
    noise: float
    cross_rx: np.ndarray
    cross_tx: np.ndarray
    cross_gain: np.ndarray
    utility: str = "sum_rate"
    alpha: float = DEFAULT_ALPHA
    penalty: float = DEFAULT_PENALTY

    def __post_init__(self) -> None:
        # The JSON parser names bad values one by one; instances built in code (generators,
        # users' scripts) get the same rules here, vectorised, with the same paths.
        if self.utility not in UTILITIES:
            raise InstanceError("utility", f"unknown {self.utility!r}, expected one of {', '.join(UTILITIES)}")
        if not (is_real(self.penalty) and 1 <= self.penalty <= MAX_MAGNITUDE):
            raise InstanceError("penalty", f"must be a number in [1, {MAX_MAGNITUDE:g}], got {self.penalty!r}")
        if not (is_real(self.alpha) and 0 < self.alpha <= MAX_ALPHA):
            raise InstanceError("alpha", f"must be a number in (0, {MAX_ALPHA:g}], got {self.alpha!r}")
        low = 1.0 / MAX_MAGNITUDE
        if not (is_real(self.noise) and low <= self.noise <= MAX_MAGNITUDE):
            raise InstanceError("noise", f"must be a number in [{low:g}, {MAX_MAGNITUDE:g}], got {self.noise!r}")
        k = len(self.link_ids)
        if k == 0:
            raise InstanceError("links", "at least one link is required")
        if len(set(self.link_ids)) != k:
            raise InstanceError("links", "link ids must be unique")
        if self.rate_min is None and self.utility == "alpha_fair":
            raise InstanceError("links[0].rate_min", "missing (required by the alpha_fair utility)")
        for path, values, strict in self.number_fields():
            # ndim first: a scalar (pmax=1.0) has no len().
            if np.ndim(values) != 1 or (not path.startswith("interference") and len(values) != k):
                expected = "a list of values" if path.startswith("interference") else f"{k} values"
                raise InstanceError(path.format("*"), f"expected {expected}, got shape {np.shape(values)}")
            bad = ~np.isfinite(values) | ((values <= 0) if strict else (values < 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                rule = "finite and > 0" if strict else "finite and >= 0"
                raise InstanceError(path.format(i), f"must be {rule}, got {float(values[i])!r}")
            bad = (values > MAX_MAGNITUDE) | ((values < low) & (values != 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InstanceError(
                    path.format(i),
                    f"must be 0 or in [{low:g}, {MAX_MAGNITUDE:g}] (products of two must fit in "
                    f"float64), got {float(values[i])!r}",
                )
        self._check_cross(k)

    def _check_cross(self, k: int) -> None:
        rx, tx = np.asarray(self.cross_rx), np.asarray(self.cross_tx)
        if rx.shape != tx.shape or rx.shape != np.shape(self.cross_gain) or rx.ndim != 1:
            raise InstanceError("interference", "cross_rx, cross_tx and cross_gain must be (E,) arrays")
        for name, index in (("rx", rx), ("tx", tx)):
            # Float indices would be truncated where they are used (0.9 -> link 0); an empty
            # list is float64 by numpy's default and names no link.
            if index.size and index.dtype.kind not in "iu":
                raise InstanceError(
                    f"interference[*].{name}", f"expected integer link indices, got dtype {index.dtype}"
                )
        for name, index in (("rx", rx), ("tx", tx)):
            bad = (index < 0) | (index >= k)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InstanceError(f"interference[{i}].{name}", f"link index {int(index[i])} out of range")
        if (rx == tx).any():
            i = int(np.flatnonzero(rx == tx)[0])
            raise InstanceError(f"interference[{i}].tx", f"self-interference of link {self.link_ids[int(rx[i])]!r}")
        key = rx.astype(np.int64) * k + tx
        # Strictly increasing keys (the order parsers and generators produce) are distinct pairs
        # already sorted the way the sparse forms need them; only other orders need a sort.
        in_order = bool((np.diff(key) > 0).all())
        object.__setattr__(self, "_pairs_in_order", in_order)
        if in_order:
            return
        unique, first = np.unique(key, return_index=True)
        if unique.size != key.size:
            seen = np.zeros(key.size, dtype=bool)
            seen[first] = True
            i = int(np.flatnonzero(~seen)[0])
            raise InstanceError(
                f"interference[{i}]",
                f"duplicate pair rx={self.link_ids[int(rx[i])]!r} tx={self.link_ids[int(tx[i])]!r}",
            )

    @property
    def pairs_in_order(self) -> bool:
        """Whether the cross gains are listed by receiver, then transmitter (as the sparse forms
        of :mod:`._links` need them; other orders are sorted there)."""
        return self._pairs_in_order

    def number_fields(self) -> tuple[tuple[str, np.ndarray, bool], ...]:
        """Every per-link and per-gain number: its JSON path template, its values, and whether it
        must be strictly positive. The one list validation and the server's range checks walk."""
        fields: list[tuple[str, np.ndarray, bool]] = [
            ("links[{}].pmax", _floats("links[*].pmax", self.pmax), True),
            ("links[{}].gain", _floats("links[*].gain", self.direct_gain), False),
            ("links[{}].weight", _floats("links[*].weight", self.weight), True),
        ]
        if self.rate_min is not None:
            fields.append(("links[{}].rate_min", _floats("links[*].rate_min", self.rate_min), True))
        fields.append(("interference[{}].gain", _floats("interference[*].gain", self.cross_gain), False))
        return tuple(fields)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        link_ids: Sequence[str],
        pmax: np.ndarray,
        gains: np.ndarray,
        noise: float,
        weight: np.ndarray | None = None,
        rate_min: np.ndarray | None = None,
        utility: str = "sum_rate",
        alpha: float = DEFAULT_ALPHA,
        penalty: float = DEFAULT_PENALTY,
    ) -> "PowerInstance":
        """An instance from a dense ``(K, K)`` gain matrix (row = receiver, column =
        transmitter); zero cross gains are left out of the sparse storage, the rest stored in
        (receiver, transmitter) order."""
        gains = np.asarray(gains, dtype=np.float64)
        k = len(link_ids)
        if gains.shape != (k, k):
            raise InstanceError("gain_matrix", f"expected shape ({k}, {k}), got {gains.shape}")
        off = gains.copy()
        np.fill_diagonal(off, 0.0)
        rx, tx = np.nonzero(off)  # row-major: sorted by (rx, tx)
        return cls(
            link_ids=tuple(link_ids),
            pmax=np.asarray(pmax, dtype=np.float64),
            direct_gain=np.diagonal(gains).copy(),
            weight=np.ones(k) if weight is None else np.asarray(weight, dtype=np.float64),
            rate_min=None if rate_min is None else np.asarray(rate_min, dtype=np.float64),
            noise=float(noise),
            cross_rx=rx.astype(np.int64),
            cross_tx=tx.astype(np.int64),
            cross_gain=off[rx, tx],
            utility=utility,
            alpha=float(alpha),
            penalty=float(penalty),
        )

    # ------------------------------------------------------------------ views
    @property
    def num_links(self) -> int:
        return len(self.link_ids)

    @property
    def num_cross(self) -> int:
        """Number of stored (nonzero or explicitly listed) cross gains."""
        return int(self.cross_gain.shape[0])

    def gain_matrix(self) -> np.ndarray:
        """Dense gains ``(K, K)``: row = receiver, column = transmitter, diagonal = direct."""
        out = np.zeros((self.num_links, self.num_links))
        out[self.cross_rx, self.cross_tx] = self.cross_gain
        out[np.arange(self.num_links), np.arange(self.num_links)] = self.direct_gain
        return out

    def __repr__(self) -> str:
        return (
            f"PowerInstance(links={self.num_links}, cross_gains={self.num_cross}, noise={self.noise:g}, "
            f"utility={self.utility!r}, alpha={self.alpha}, penalty={self.penalty})"
        )

    # ------------------------------------------------------------------ conversion
    @classmethod
    def from_dict(cls, data: Any) -> "PowerInstance":
        """Validate a ``gnnalloc.power/v1`` document and build the instance.

        Raises:
            InstanceError: naming the first offending field (``links[3].pmax``,
                ``interference[7].rx``, ``gain_matrix[2][1]``) and its value.
        """
        return _parse(data)

    def to_dict(self, dense: bool = False) -> dict[str, Any]:
        """The ``gnnalloc.power/v1`` document: per-link ``gain`` with the sparse
        ``interference`` list, or with ``dense=True`` the ``gain_matrix`` form."""
        links = []
        for k, lid in enumerate(self.link_ids):
            entry: dict[str, Any] = {"id": lid, "pmax": float(self.pmax[k])}
            if not dense:
                entry["gain"] = float(self.direct_gain[k])
            entry["weight"] = float(self.weight[k])
            if self.rate_min is not None:
                entry["rate_min"] = float(self.rate_min[k])
            links.append(entry)
        doc: dict[str, Any] = {
            "format": INSTANCE_FORMAT,
            "noise": float(self.noise),
            "utility": self.utility,
            "alpha": float(self.alpha),
            "penalty": float(self.penalty),
            "links": links,
        }
        if dense:
            doc["gain_matrix"] = self.gain_matrix().tolist()
        else:
            ids = self.link_ids
            doc["interference"] = [
                {"rx": ids[int(r)], "tx": ids[int(t)], "gain": float(g)}
                for r, t, g in zip(self.cross_rx, self.cross_tx, self.cross_gain)
            ]
        return doc


def _floats(field: str, values: Any) -> np.ndarray:
    """``values`` as float64, or :class:`InstanceError` naming ``field`` (text or objects in an
    array built in code would otherwise fail with numpy's unnamed error)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InstanceError(field, f"expected numbers, got {type(values).__name__}") from None


# ---------------------------------------------------------------- parsing
_number, _string, _list, _object, _required = (
    number_field, string_field, list_field, object_field, required_field
)


_TOP_FIELDS = ("format", "noise", "utility", "alpha", "penalty", "links", "interference", "gain_matrix")
_LINK_FIELDS = ("id", "pmax", "gain", "weight", "rate_min")
_CROSS_FIELDS = ("rx", "tx", "gain")


def _parse(data: Any) -> PowerInstance:
    if not isinstance(data, dict):
        raise InstanceError("$", f"expected a JSON object, got {type(data).__name__}")
    data = _object(data, "$", _TOP_FIELDS)
    fmt = _required(data, "format", "$")
    if fmt != INSTANCE_FORMAT:
        raise InstanceError("format", f"unsupported {fmt!r}, expected {INSTANCE_FORMAT!r}")
    noise = _number(_required(data, "noise", "$"), "noise")
    utility = data.get("utility", "sum_rate")
    if utility not in UTILITIES:
        raise InstanceError("utility", f"unknown {utility!r}, expected one of {', '.join(UTILITIES)}")
    alpha = _number(data.get("alpha", DEFAULT_ALPHA), "alpha")
    penalty = _number(data.get("penalty", DEFAULT_PENALTY), "penalty")
    dense = "gain_matrix" in data

    raw_links = _list(_required(data, "links", "$"), "links")
    if not raw_links:
        raise InstanceError("links", "at least one link is required")
    index: dict[str, int] = {}
    pmax, direct, weight, rate_min = [], [], [], []
    with_min: bool | None = None
    for i, raw in enumerate(raw_links):
        where = f"links[{i}]"
        obj = _object(raw, where, _LINK_FIELDS)
        lid = _string(_required(obj, "id", where), f"{where}.id")
        if lid in index:
            raise InstanceError(f"{where}.id", f"duplicate link id {lid!r}")
        index[lid] = i
        pmax.append(_number(_required(obj, "pmax", where), f"{where}.pmax"))
        if dense and "gain" in obj:
            raise InstanceError(f"{where}.gain", "give either gain_matrix or per-link gain, not both")
        if not dense:
            if "gain" not in obj:
                raise InstanceError(f"{where}.gain", "missing (give per-link gain or a gain_matrix)")
            direct.append(_number(obj["gain"], f"{where}.gain"))
        weight.append(_number(obj.get("weight", 1.0), f"{where}.weight"))
        has_min = "rate_min" in obj
        if has_min:
            rate_min.append(_number(obj["rate_min"], f"{where}.rate_min"))
        elif utility == "alpha_fair":
            raise InstanceError(f"{where}.rate_min", "missing (required by the alpha_fair utility)")
        if with_min is not None and has_min != with_min:
            raise InstanceError(f"{where}.rate_min", "give rate_min on every link or on none")
        with_min = has_min
    k = len(index)

    weights = np.asarray(weight, dtype=np.float64)
    minimum = np.asarray(rate_min, dtype=np.float64) if with_min else None
    if dense:
        if "interference" in data:
            raise InstanceError("interference", "give either gain_matrix or interference, not both")
        gains = _parse_matrix(data["gain_matrix"], k)
        _check_matrix_values(gains)
        return PowerInstance.build(
            tuple(index), np.asarray(pmax), gains, noise, weights, minimum, utility, alpha, penalty
        )
    rx, tx, cross = _parse_interference(data.get("interference", []), index)
    return PowerInstance(
        link_ids=tuple(index),
        pmax=np.asarray(pmax, dtype=np.float64),
        direct_gain=np.asarray(direct, dtype=np.float64),
        weight=weights,
        rate_min=minimum,
        noise=noise,
        cross_rx=rx,
        cross_tx=tx,
        cross_gain=cross,
        utility=utility,
        alpha=alpha,
        penalty=penalty,
    )


def _parse_interference(value: Any, index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rxs, txs, cross = [], [], []
    seen: set[tuple[int, int]] = set()
    for i, raw in enumerate(_list(value, "interference")):
        where = f"interference[{i}]"
        obj = _object(raw, where, _CROSS_FIELDS)
        ends = []
        for end in ("rx", "tx"):
            name = _string(_required(obj, end, where), f"{where}.{end}")
            if name not in index:
                raise InstanceError(f"{where}.{end}", f"unknown link id {name!r}")
            ends.append(index[name])
        rx, tx = ends
        if rx == tx:
            raise InstanceError(f"{where}.tx", f"self-interference of link {obj['rx']!r} (its gain is links[{rx}].gain)")
        if (rx, tx) in seen:
            raise InstanceError(where, f"duplicate pair rx={obj['rx']!r} tx={obj['tx']!r}")
        seen.add((rx, tx))
        gain = _number(_required(obj, "gain", where), f"{where}.gain")
        rxs.append(rx)
        txs.append(tx)
        cross.append(gain)
    return (
        np.asarray(rxs, dtype=np.int64), np.asarray(txs, dtype=np.int64), np.asarray(cross, dtype=np.float64)
    )


def _parse_matrix(value: Any, k: int) -> np.ndarray:
    rows = _list(value, "gain_matrix")
    if len(rows) != k:
        raise InstanceError("gain_matrix", f"expected {k} rows (one per link), got {len(rows)}")
    out = np.zeros((k, k))
    for r, row in enumerate(rows):
        row = _list(row, f"gain_matrix[{r}]")
        if len(row) != k:
            raise InstanceError(f"gain_matrix[{r}]", f"expected {k} columns (one per link), got {len(row)}")
        for c, entry in enumerate(row):
            out[r, c] = _number(entry, f"gain_matrix[{r}][{c}]")
    return out


def _range_error(where: str, value: float) -> InstanceError | None:
    low = 1.0 / MAX_MAGNITUDE
    if value < 0:
        return InstanceError(where, f"must be finite and >= 0, got {value!r}")
    if value > MAX_MAGNITUDE or 0 < value < low:
        return InstanceError(
            where, f"must be 0 or in [{low:g}, {MAX_MAGNITUDE:g}] (products of two must fit in float64), got {value!r}"
        )
    return None


def _check_matrix_values(gains: np.ndarray) -> None:
    """Name bad gains by their matrix path (the instance would name the sparse one)."""
    for r, c in zip(*np.nonzero((gains < 0) | (gains > MAX_MAGNITUDE) | ((gains > 0) & (gains < 1 / MAX_MAGNITUDE)))):
        error = _range_error(f"gain_matrix[{r}][{c}]", float(gains[r, c]))
        if error is not None:
            raise error


def load_power_instance(path: str | Path) -> PowerInstance:
    """Read and validate a ``gnnalloc.power/v1`` file (``InstanceError`` names the bad field)."""
    return PowerInstance.from_dict(read_document(path))


def save_power_instance(instance: PowerInstance, path: str | Path, dense: bool = False) -> None:
    """Write ``instance`` as a ``gnnalloc.power/v1`` JSON file."""
    Path(path).write_text(json.dumps(instance.to_dict(dense=dense), indent=1) + "\n")
