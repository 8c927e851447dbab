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

    ``cache=False`` compiles in every process: for a second compilation of one Python function
    under other options (numba's cache keys hold the function and the signature, not the
    options, so the two would share one cache entry).
    """
    from numba import njit  # here, so that importing the core does not import numba

    def wrap(function: _Function) -> _Function:
        settings = {"nogil": True, **options}
        if not settings.pop("cache", True):
            return njit(**settings)(function)
        try:
            return njit(cache=True, **settings)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(**settings)(function)

    return wrap
