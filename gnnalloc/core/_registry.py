"""The registry of problem families and the engine's single dispatch.

Families are found without a central list: every subpackage of :mod:`gnnalloc.families` that
exposes ``FAMILY`` is one, and other packages can add theirs with :func:`register_family` (or the
``gnnalloc.families`` entry-point group). Adding a family therefore touches only its own folder.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import threading
from collections.abc import Collection, Iterable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from gnnalloc.core._errors import InputError, InstanceError
from gnnalloc.core._family import Method, ProblemFamily, SolveResult
from gnnalloc.core._json import read_document

__all__ = [
    "allocation_formats", "families", "family_for_format", "family_of", "get_family", "load_instance", "parse_instance",
    "register_family", "score", "solve",
]

_FAMILIES: dict[str, ProblemFamily] = {}
_lock = threading.Lock()
_discovered = False


def allocation_formats(family: ProblemFamily) -> tuple[str, ...]:
    """Every ``format`` of ``family``'s allocation documents: ``allocation_format`` first, then
    the optional ``extra_allocation_formats`` (e.g. the power family's time-sharing frames)."""
    return (family.allocation_format, *getattr(family, "extra_allocation_formats", ()))


def _document_formats(family: ProblemFamily) -> tuple[str, ...]:
    """Every ``format`` string ``family``'s documents carry (instance and allocations)."""
    return (family.instance_format, *allocation_formats(family))


def register_family(family: ProblemFamily) -> ProblemFamily:
    """Add ``family`` to the registry (idempotent for the same object).

    Raises:
        TypeError: if ``family`` does not implement :class:`ProblemFamily`.
        ValueError: if another family already uses its name or one of its formats.
    """
    if not isinstance(family, ProblemFamily):
        raise TypeError(f"family: {family!r} does not implement ProblemFamily")
    extra = getattr(family, "extra_allocation_formats", ())
    if not isinstance(extra, tuple) or not all(isinstance(f, str) for f in extra):
        raise TypeError(f"family: {family.name!r}'s extra_allocation_formats must be a tuple of strings, got {extra!r}")
    formats = _document_formats(family)
    if len(set(formats)) != len(formats):
        raise InputError(f"family: {family.name!r} uses one format twice: {formats}")
    with _lock:
        for other in _FAMILIES.values():
            if other is family:
                return family
            clash = {other.name, *_document_formats(other)} & {family.name, *formats}
            if clash:
                raise InputError(f"family: {family.name!r} clashes with {other.name!r} on {sorted(clash)}")
        _FAMILIES[family.name] = family
    return family


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("gnnalloc.families")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "FAMILY"):
            register_family(module.FAMILY)
    for entry in metadata.entry_points(group="gnnalloc.families"):
        register_family(entry.load())


def families() -> Mapping[str, ProblemFamily]:
    """Every registered family by name."""
    _discover()
    return dict(_FAMILIES)


def get_family(name: str) -> ProblemFamily:
    """The family called ``name``; ``ValueError`` naming ``family`` if there is none."""
    known = families()
    if name not in known:
        raise InputError(f"family: unknown {name!r}, expected one of {', '.join(sorted(known))}")
    return known[name]


def family_for_format(fmt: Any, where: str = "format") -> ProblemFamily:
    """The family whose instance or allocation documents carry ``format`` = ``fmt``.

    Raises:
        InstanceError: naming ``where`` when no family reads ``fmt``.
    """
    for family in families().values():
        if fmt in _document_formats(family):
            return family
    known = ", ".join(sorted(f.instance_format for f in families().values()))
    raise InstanceError(where, f"unknown format {fmt!r}, expected one of {known}")


def family_of(instance: Any) -> ProblemFamily:
    """The family of an instance object; ``TypeError`` if it belongs to none."""
    for family in families().values():
        if isinstance(instance, family.instance_type):
            return family
    raise TypeError(f"instance: {type(instance).__name__} is no registered family's instance")


def parse_instance(data: Any) -> Any:
    """An instance of whichever family ``data['format']`` names."""
    if not isinstance(data, dict):
        raise InstanceError("$", f"expected a JSON object, got {type(data).__name__}")
    if "format" not in data:
        raise InstanceError("format", "missing")
    return family_for_format(data["format"]).parse_instance(data)


def load_instance(path: str | Path) -> Any:
    """Read an instance file of any family (the ``format`` field chooses the family)."""
    return parse_instance(read_document(path))


def check_method(family: ProblemFamily, method: str) -> None:
    """Raise :class:`InputError` naming ``method`` unless ``family`` has a method of that name
    (the message lists its methods): :func:`solve`'s rule, which the command line and the
    server apply before their own work."""
    if method not in family.methods:
        raise InputError(
            f"method: unknown {method!r} for the {family.name} family, expected one of "
            f"{', '.join(family.methods)}"
        )


def offered_options(method: Method, offered: Collection[str] | None = None) -> list[str]:
    """``method``'s options that an interface passing only ``offered`` can give (all without),
    in the method's order: what ``/v1/methods`` and :func:`check_options`' message list."""
    return [o for o in method.options if offered is None or o in offered]


def check_options(
    family: ProblemFamily, method: str, options: Iterable[str], offered: Collection[str] | None = None,
    kind: str = "solver options",
) -> None:
    """Raise :class:`InputError` naming the first of ``options`` that ``family``'s ``method``
    (one of its methods) does not take, saying which method does, or else which options it
    takes: :func:`solve`'s rule. ``offered``: the options the caller's interface can pass (the
    server's query parameters), the only ones the message then lists; ``kind``: what they are
    called there.
    """
    entry = family.methods[method]
    for key in options:
        if key in entry.options:
            continue
        owners = [m.name for m in family.methods.values() if key in m.options]
        if owners:
            which = " or ".join(repr(o) for o in owners)
            raise InputError(f"{key}: only method {which} takes it, not {method!r}")
        accepted = offered_options(entry, offered)
        if not accepted:
            raise InputError(f"{key}: method {method!r} takes no {kind}")
        raise InputError(f"{key}: method {method!r} takes no such option (it takes: {', '.join(accepted)})")


def solve(instance: Any, method: str | None = None, **options: Any) -> SolveResult:
    """Allocate ``instance`` with one of its family's methods, the one dispatch of the library.

    Args:
        instance: an instance of any registered family.
        method: a name from ``family_of(instance).methods``; default: the family's reference.
        options: passed to the method (each family documents its methods' options).

    Raises:
        ValueError: naming ``method`` when the family has no such method, or the option that
            the method does not take.
    """
    family = family_of(instance)
    name = family.reference_method if method is None else method
    check_method(family, name)
    check_options(family, name, options)
    result = family.methods[name].run(instance, **options)
    if result.upper_bound is not None and math.isinf(result.upper_bound) and result.upper_bound > 0:
        # An infinite bound (a non-finite intermediate, e.g. a zero price of a resource whose
        # utility is unbounded) proves nothing: reported as no bound, never as a figure. (A NaN
        # one would be a bug, left for the score's check to name.)
        result = replace(result, upper_bound=None)
    return result


def score(
    instance: Any, allocation: Any, reference: Any | None = None, upper_bound: float | None = None
) -> Any:
    """Quality and fairness of ``allocation`` by its instance's family (see
    :meth:`ProblemFamily.score`)."""
    return family_of(instance).score(instance, allocation, reference, upper_bound)
