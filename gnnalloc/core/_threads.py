"""How many threads one solve may use: chosen at the library's entry points, never on import.

Torch and the BLAS libraries default to one thread per core. That is the fastest choice on an
idle machine and the slowest on a busy one: every intra-op region waits for its slowest thread, so
a solve beside another busy process (a server's own pools, CI, a second solve) stalls on threads
the scheduler has put behind it. One thread per solve degrades only by the share of the core it
loses; parallelism comes from running several solves (server worker processes) instead.

The entry points (``gnnalloc`` commands, ``gnnalloc serve`` and its workers) call
:func:`configure_threads`; a program using the library directly keeps its own settings.
"""

from __future__ import annotations

import os

from gnnalloc.core._errors import InputError

__all__ = ["THREADS_ENV", "configure_threads"]

#: Environment variable overriding the default of one intra-op thread per solve.
THREADS_ENV = "GNNALLOC_THREADS"


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads and the BLAS/OpenMP pools to ``threads`` and return it.

    ``threads`` defaults to the ``GNNALLOC_THREADS`` environment variable, else 1.

    Raises:
        ValueError: naming ``GNNALLOC_THREADS`` (or ``threads``) when it is not a positive integer.
    """
    name = "threads"
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        name = THREADS_ENV
        try:
            threads = int(raw) if raw else 1
        except ValueError:
            raise InputError(f"{THREADS_ENV}: expected a positive integer, got {raw[:40]!r}") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"{name}: expected a positive integer, got {threads!r}")
    import torch

    torch.set_num_threads(threads)
    try:  # numpy's BLAS (scipy, cvxpy); optional
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=threads)
    return threads
