"""Compiling CPU kernels with numba: one decorator for every package part that has them."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

__all__ = ["compiled"]

_Function = TypeVar("_Function", bound=Callable[..., Any])


def compiled(**options: Any) -> Callable[[_Function], _Function]:
    """``numba.njit(nogil=True, **options)`` (``options`` may override ``nogil``) with its on-disk
    cache (the kernels compile once per machine) where numba finds a writable cache directory;
    without one (a read-only install and home, and no ``NUMBA_CACHE_DIR``) they compile in every
    process instead of failing at import.

    Pass ``fastmath=False`` explicitly to a kernel that others call: numba lets a callee compiled
    during its caller's compilation inherit the caller's fastmath flags, so the callee's rounding
    would otherwise depend on which kernel a process happened to compile first.
    """
    from numba import njit  # here, so that importing the core does not import numba

    def wrap(function: _Function) -> _Function:
        settings = {"nogil": True, **options}
        try:
            return njit(cache=True, **settings)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(**settings)(function)

    return wrap
