"""Reading the fields of a decoded JSON document, every failure an :class:`InstanceError` that
names the field by its JSON path (``users[3].compute_min``): the building blocks each family's
parser is made of."""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

from gnnalloc.core._errors import InstanceError

__all__ = [
    "entries_by_id", "list_field", "number_field", "object_field", "required_field", "string_field",
]


def number_field(value: Any, where: str, error: type[InstanceError] = InstanceError) -> float:
    """``value`` as a finite float (its range is the instance's to check, once, for parsed and
    hand-built instances alike); failures raise ``error`` (e.g. ``AllocationError`` when reading
    an allocation)."""
    # bool is an int subclass in Python; `true` is never a quantity.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(where, f"expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond float range, e.g. 10**400
        raise error(where, f"must be finite, got {str(value)[:40]}") from None
    if not math.isfinite(number):
        raise error(where, f"must be finite, got {value!r}")
    return number


def string_field(value: Any, where: str, error: type[InstanceError] = InstanceError) -> str:
    """``value`` as a non-empty string."""
    if not isinstance(value, str) or not value:
        raise error(where, f"expected a non-empty string, got {value!r}")
    return value


def list_field(value: Any, where: str, error: type[InstanceError] = InstanceError) -> list[Any]:
    """``value`` as a list."""
    if not isinstance(value, list):
        raise error(where, f"expected a list, got {type(value).__name__}")
    return value


def _child(where: str, key: str) -> str:
    # Top-level fields are named bare ("penalty"), as everywhere else (but "" needs its "$.").
    return key if where == "$" and key != "" else f"{where}.{key}"


def object_field(
    value: Any, where: str, allowed: Sequence[str], error: type[InstanceError] = InstanceError,
    required: Sequence[str] = (),
) -> Mapping[str, Any]:
    """``value`` as an object whose keys are all in ``allowed`` (the first unknown one named) and
    that has every key of ``required`` (the first missing one named)."""
    if not isinstance(value, dict):
        raise error(where, f"expected an object, got {value!r}")
    unknown = sorted(set(value) - set(allowed) - set(required))
    if unknown:
        raise error(_child(where, unknown[0]), "unknown field")
    missing = sorted(set(required) - set(value))
    if missing:
        raise error(_child(where, missing[0]), "missing")
    return value


def entries_by_id(
    entries: Any, where: str, ids: Sequence[str], kind: str, allowed: Sequence[str] | None = None,
    error: type[InstanceError] = InstanceError,
) -> Iterator[tuple[str, int, Mapping[str, Any]]]:
    """The entries of a list of objects that each name one of ``ids`` by their ``"id"`` (an
    allocation's ``users`` or ``links``): yields ``(path, position, entry)``, ``path`` being
    ``where[i]`` and ``position`` the id's index in ``ids``; every id must appear exactly once.

    Raises:
        error: naming ``where`` (not a list, an id missing), ``where[i]`` (not an object),
            ``where[i].<key>`` (a key outside ``allowed``, when given) or ``where[i].id`` (not
            a string, unknown, repeated); ``kind`` names the entries in messages (``"link"``).
    """
    index = {name: k for k, name in enumerate(ids)}
    seen = [False] * len(ids)
    for i, entry in enumerate(list_field(entries, where, error)):
        path = f"{where}[{i}]"
        if allowed is None:
            if not isinstance(entry, dict):
                raise error(path, f"expected an object, got {entry!r}")
        else:
            object_field(entry, path, ("id", *allowed), error)
        name = entry.get("id")
        if not isinstance(name, str):
            raise error(f"{path}.id", f"expected a string, got {name!r}")
        if name not in index:
            raise error(f"{path}.id", f"unknown {kind} id {name!r}")
        position = index[name]
        if seen[position]:
            raise error(f"{path}.id", f"{kind} {name!r} appears twice")
        seen[position] = True
        yield path, position, entry
    if not all(seen):
        raise error(where, f"{kind} {ids[seen.index(False)]!r} is missing")


def required_field(obj: Mapping[str, Any], key: str, where: str) -> Any:
    """``obj[key]``, named ``where.key`` (bare at the top level ``$``) when missing."""
    if key not in obj:
        raise InstanceError(f"{where}.{key}" if where != "$" else key, "missing")
    return obj[key]
