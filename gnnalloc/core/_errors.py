"""Errors raised on bad input. Every message names the offending field and its value.

:class:`InputError` is what the library raises when it refuses an input: an option, a setting,
a size or an instance it does not accept, or a valid document a method cannot allocate. It is a
``ValueError``, so ``except ValueError`` still catches it; a ``ValueError`` of another type that
leaves the library comes from a bug (a numpy or torch error inside a method), and the CLI and the
server report it as one (exit 1, HTTP 500), never as the caller's mistake.
"""

from __future__ import annotations

import math
import re
import numbers

__all__ = [
    "MAX_TIME_LIMIT", "InputError", "InstanceError", "AllocationError", "SolverError", "check_bound", "check_count",
    "check_fraction", "check_time_limit",
    "check_nonnegative", "check_positive", "cut_message",
]

#: Longest error message shown (CLI line, HTTP error body): messages echo offending values, and an
#: echoed megabyte of junk helps nobody.
MAX_MESSAGE = 300


def cut_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line, without terminal colour codes, and at most ``limit`` characters
    (cut with "...")."""
    if "\x1b" in text:  # ANSI escape sequences, e.g. from a library's coloured warning
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\x1b", "")
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The largest count :func:`check_count` accepts without a ``maximum`` of its own: any count a
#: computation can hold in a 64-bit integer with room for arithmetic on it (a larger one, typed on
#: a command line, overflowed a compiled kernel's argument instead of being named).
MAX_COUNT = 2**62


def check_count(name: str, value: object, minimum: int = 0, maximum: int | None = None) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is an ``int`` of at least
    ``minimum`` (counts such as ``search_rounds`` arrive from configs, checkpoints and the command
    line) and at most ``maximum`` (sizes and counts whose arrays would not fit in memory; the
    message then gives the range), else at most :data:`MAX_COUNT`."""
    if maximum is not None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= maximum:
            raise InputError(f"{name}: must be an integer in [{minimum}, {maximum}], got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a non-negative integer" if minimum <= 0 else f"an integer of at least {minimum}"
        raise InputError(f"{name}: must be {kind}, got {value!r}")
    if value < 0 and minimum <= 0:
        raise InputError(f"{name}: must be a non-negative integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name}: must be at least {minimum}, got {value!r}")
    if value > MAX_COUNT:
        raise InputError(f"{name}: must be at most 2^62, got {value!r}")


#: The largest seed :func:`check_seed` accepts: numpy's generators take any non-negative
#: integer, and 128 bits is what ``SeedSequence`` draws for its own entropy.
MAX_SEED = 2**128 - 1


def check_seed(value: object, name: str = "seed") -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is an integer in
    [0, :data:`MAX_SEED`]: the one check of a generator's seed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_SEED:
        raise InputError(f"{name}: must be an integer in [0, 2^128), got {cut_message(repr(value), 60)}")


def check_fraction(name: str, value: object) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is a real number in ``[0, 1]``."""
    _check_real(name, value, allow_zero=True)
    if value > 1:  # type: ignore[operator]  # a real number, checked above
        raise InputError(f"{name}: must be in [0, 1], got {value!r}")


def check_positive(name: str, value: object) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is a positive, finite real number."""
    _check_real(name, value, allow_zero=False)


def check_nonnegative(name: str, value: object) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is a non-negative, finite real number."""
    _check_real(name, value, allow_zero=True)


#: The longest time limit a solve accepts, in seconds (about 32 years): any limit a user means is
#: below it, and an anytime solver's iteration budget (seconds left over seconds per iteration)
#: stays a finite integer (1e308 overflowed it).
MAX_TIME_LIMIT = 1e9


def check_time_limit(value: object, name: str = "time_limit") -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is a positive finite number of
    seconds, at most :data:`MAX_TIME_LIMIT`: the one check of every method's time limit."""
    check_positive(name, value)
    if value > MAX_TIME_LIMIT:  # type: ignore[operator]  # a real number, checked above
        raise InputError(f"{name}: must be at most {MAX_TIME_LIMIT:g} seconds, got {value!r}")


def check_bound(name: str, value: object) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is a real number other than NaN (a
    bound on an optimum, such as a score's ``upper_bound``: an infinite one bounds nothing, but a
    NaN would turn the gap it certifies into NaN)."""
    try:  # an int beyond float's range (400 digits) cannot enter a gap either
        number = float(value) if is_real(value) else math.nan  # type: ignore[arg-type]  # a real number
    except OverflowError:
        number = math.nan
    if math.isnan(number):
        raise InputError(f"{name}: must be a number (inf: no bound), got {cut_message(repr(value), 40)}")


def check_allocation_types(
    allocation: object, reference: object, types: type | tuple[type, ...], expected: str,
) -> None:
    """Raise :class:`AllocationError` naming ``allocation`` (never ``None``) or ``reference``
    (``None``: no reference) when it is not one of a family's allocation ``types``
    (``expected`` names them in the message): a score's first check in every family."""
    for name, answer in (("allocation", allocation), ("reference", reference)):
        if (answer is not None or name == "allocation") and not isinstance(answer, types):
            raise AllocationError(name, f"expected {expected}, got {type(answer).__name__}")


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number (numpy scalars included). bool is an int subclass, but
    ``true`` for a capacity or rate is a typo, not 1."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range (e.g. 400 digits typed on a command line)
        return False


def _check_real(name: str, value: object, allow_zero: bool) -> None:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(value) >= 2**63:
        # A real-valued option given as an integer beyond 64 bits would overflow the first
        # tensor or kernel argument it reaches.
        raise InputError(f"{name}: an integer beyond 64 bits; write it as a float, got {cut_message(repr(value), 60)}")
    if not (is_real(value) and _finite(value) and (value > 0 or (allow_zero and value == 0))):
        kind = "non-negative" if allow_zero else "positive"
        raise InputError(f"{name}: must be a {kind} finite number, got {value!r}")


class InputError(ValueError):
    """An input the library refuses (module docstring). Its message starts with the field it
    names (``"iterations: must be ..."``), or with the method where no field is at fault.

    Args:
        message: the whole message, ``"field: what is wrong"``.
    """


class InstanceError(InputError):
    """A network instance is malformed.

    Args:
        field: JSON path of the offending field, e.g. ``users[3].compute_min``.
        message: what is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class AllocationError(InstanceError):
    """An allocation does not fit its instance (unknown user, non-candidate server, ...)."""


class SolverError(RuntimeError):
    """A solver failed or returned a result that is not certified optimal."""
