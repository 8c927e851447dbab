"""Decoding JSON documents of the v1 formats so that every bad value is named by its field.

Python's json accepts ``NaN``/``Infinity`` literals, which the formats forbid, and integers of
any length, which overflow when converted to float. Rejecting them while parsing could only say
"somewhere in the document"; passing them on as values the validators refuse lets
``Instance.from_dict`` / ``Allocation.from_dict`` reject them at their exact path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from gnnalloc.core._errors import InstanceError

__all__ = ["NonFiniteLiteral", "decode_json", "parse_document", "read_document"]


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


class _DuplicateKeys(dict):  # type: ignore[type-arg]
    """An object in which ``key`` appeared more than once (json keeps the last silently)."""

    key: str


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    marked = _DuplicateKeys(result)
    marked.key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return marked


def _duplicate_path(data: Any) -> str | None:
    """The path (``users[0].compute_min``; top-level keys bare) of the first duplicated key."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _DuplicateKeys):
            return f"{path}.{node.key}" if path else node.key
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path or '$'}[{i}]") for i, v in reversed(list(enumerate(node))))
    return None


def decode_json(text: str | bytes, on_constant: Callable[[str], None] | None = None) -> Any:
    """``json.loads`` with non-finite literals and huge integers passed on for validation.

    Raises:
        json.JSONDecodeError, RecursionError, UnicodeDecodeError: as ``json.loads``.
        InstanceError: at the path of a key repeated in one object (``{"a": NaN, "a": 1}``
            would otherwise pass as ``1``).
    """

    def constant(name: str) -> NonFiniteLiteral:
        if on_constant is not None:
            on_constant(name)
        return NonFiniteLiteral(name)

    data = json.loads(
        text, parse_constant=constant, parse_int=_parse_int, object_pairs_hook=_object
    )
    where = _duplicate_path(data)
    if where is not None:
        raise InstanceError(where, "duplicate key")
    return data


def parse_document(raw: str | bytes, error: type[InstanceError] = InstanceError) -> Any:
    """Decode a JSON document of any gnnalloc format, the one rule for files and HTTP bodies.

    Bytes are decoded as JSON text is (RFC 8259: UTF-8, with a byte-order mark tolerated; UTF-16
    and UTF-32 recognised by their byte patterns, as :func:`json.loads` does). Non-finite literals
    and huge integers are passed on for the validators to name (:func:`decode_json`).

    Raises:
        error: at ``$`` for text that is not JSON (with line and column), not decodable, or
            nested too deeply; at the key's path for a key repeated in one object.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode(json.detect_encoding(raw))
        except (UnicodeDecodeError, LookupError) as exc:
            where = f" at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else ""
            raise error("$", f"not UTF-8/16/32 text{where}") from None
    if raw.startswith("\ufeff"):
        raw = raw[1:]
    try:
        return decode_json(raw)
    except InstanceError as exc:  # a duplicate key, in the caller's error class
        raise error(exc.field, exc.message) from None
    except json.JSONDecodeError as exc:
        raise error("$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise error("$", "JSON nested too deeply") from None


def read_document(path: str | Path, error: type[InstanceError] = InstanceError) -> Any:
    """Read and decode the JSON file at ``path`` with :func:`parse_document`'s rule.

    Raises:
        error: at ``$`` naming the path when it cannot be read, or as :func:`parse_document`.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise error("$", f"cannot read {str(path)!r}: {exc.strerror}") from None
    return parse_document(raw, error)
