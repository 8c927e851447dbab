"""Reading the fields of a decoded JSON document, every failure an :class:`InstanceError` that
names the field by its JSON path (``users[3].compute_min``): the building blocks each family's
parser is made of."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from gnnalloc.core._errors import InstanceError

__all__ = ["list_field", "number_field", "object_field", "required_field", "string_field"]


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


def string_field(value: Any, where: str) -> str:
    """``value`` as a non-empty string."""
    if not isinstance(value, str) or not value:
        raise InstanceError(where, f"expected a non-empty string, got {value!r}")
    return value


def list_field(value: Any, where: str) -> list[Any]:
    """``value`` as a list."""
    if not isinstance(value, list):
        raise InstanceError(where, f"expected a list, got {type(value).__name__}")
    return value


def object_field(value: Any, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    """``value`` as an object whose keys are all in ``allowed`` (the first unknown one named)."""
    if not isinstance(value, dict):
        raise InstanceError(where, f"expected an object, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        # Top-level fields are named bare ("penalty"), as everywhere else (but "" needs its "$.").
        bare = where == "$" and unknown[0] != ""
        raise InstanceError(unknown[0] if bare else f"{where}.{unknown[0]}", "unknown field")
    return value


def required_field(obj: Mapping[str, Any], key: str, where: str) -> Any:
    """``obj[key]``, named ``where.key`` (bare at the top level ``$``) when missing."""
    if key not in obj:
        raise InstanceError(f"{where}.{key}" if where != "$" else key, "missing")
    return obj[key]
