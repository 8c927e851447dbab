"""Decoding JSON documents of the v1 formats so that every bad value is named by its field.

Python's json accepts ``NaN``/``Infinity`` literals, which the formats forbid, and integers of
any length, which overflow when converted to float. Rejecting them while parsing could only say
"somewhere in the document"; passing them on as values the validators refuse lets
``Instance.from_dict`` / ``Allocation.from_dict`` reject them at their exact path.
"""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["NonFiniteLiteral", "decode_json"]


class NonFiniteLiteral:
    """Stands in for a ``NaN``/``Infinity`` literal: not a number, so validation names its
    field ("expected a number, got NaN")."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _parse_int(text: str) -> int | float:
    # Beyond float range as a float: inf, which validation rejects by name (int() would
    # overflow later, inside a check, as an OverflowError).
    return int(text) if len(text) <= 300 else float(text)


def decode_json(text: str | bytes, on_constant: Callable[[str], None] | None = None) -> Any:
    """``json.loads`` with non-finite literals and huge integers passed on for validation.

    Raises:
        json.JSONDecodeError, RecursionError, UnicodeDecodeError: as ``json.loads``.
    """

    def constant(name: str) -> NonFiniteLiteral:
        if on_constant is not None:
            on_constant(name)
        return NonFiniteLiteral(name)

    return json.loads(text, parse_constant=constant, parse_int=_parse_int)
