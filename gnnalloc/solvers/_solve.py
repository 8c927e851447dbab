"""One entry point for every allocation method, used by the CLI, evaluation and the server."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnnalloc.problem._allocation import Allocation
from gnnalloc.problem._instance import Instance
from gnnalloc.solvers._baselines import equal_share, proportional_share
from gnnalloc.solvers._dual import solve_dual
from gnnalloc.solvers._exact import solve_exact

if TYPE_CHECKING:
    from gnnalloc.nn.allocator import Allocator

__all__ = ["METHODS", "SolveResult", "solve"]

METHODS = ("exact", "dual", "equal", "proportional", "gnn")


@dataclass(frozen=True)
class SolveResult:
    """An allocation with how it was obtained.

    Args:
        allocation: the allocation.
        method: the method's name.
        seconds: wall time.
        status: solver status (``"optimal"`` for a certified exact solve, ``"ok"`` otherwise).
        certified_optimal: whether the allocation is a certified global optimum.
        upper_bound: a proven upper bound on the optimal objective (``exact`` and ``dual``:
            :func:`~gnnalloc.solvers.lagrangian_bound` at their prices), else ``None``;
            ``(upper_bound - objective) / sum(weight)`` bounds the mean per-user gap.
    """

    allocation: Allocation
    method: str
    seconds: float
    status: str = "ok"
    certified_optimal: bool = False
    upper_bound: float | None = None


def solve(
    instance: Instance,
    method: str = "exact",
    *,
    allocator: "Allocator | None" = None,
    checkpoint: str | Path | None = None,
    time_limit: float | None = None,
    **options: Any,
) -> SolveResult:
    """Allocate ``instance`` with ``method``: ``exact``, ``dual``, ``equal``, ``proportional`` or
    ``gnn``.

    ``options`` go to :func:`solve_exact` or :func:`solve_dual`. ``gnn`` uses ``allocator`` or
    loads one from ``checkpoint``. ``time_limit`` bounds the exact solver (its result is then
    flagged as not certified).
    """
    if time_limit is not None and method != "exact":
        raise ValueError(f"time_limit: only method 'exact' takes a time limit, not {method!r}")
    if options and method not in ("exact", "dual"):
        raise ValueError(f"{next(iter(options))}: method {method!r} takes no solver options")
    if method == "exact":
        result = solve_exact(instance, time_limit=time_limit, **options)
        return SolveResult(
            result.allocation, method, result.seconds, result.status, result.certified, result.upper_bound
        )
    if method == "dual":
        dual = solve_dual(instance, **options)
        return SolveResult(dual.allocation, method, dual.seconds, upper_bound=dual.upper_bound)
    start = time.perf_counter()
    if method == "equal":
        allocation = equal_share(instance)
    elif method == "proportional":
        allocation = proportional_share(instance)
    elif method == "gnn":
        if allocator is None:
            if checkpoint is None:
                raise ValueError("checkpoint: required for method 'gnn' when no allocator is given")
            from gnnalloc.nn.allocator import Allocator

            allocator = Allocator.from_checkpoint(checkpoint)
        start = time.perf_counter()
        allocation = allocator.allocate(instance)
    else:
        raise ValueError(f"method: unknown {method!r}, expected one of {', '.join(METHODS)}")
    return SolveResult(allocation, method, time.perf_counter() - start)
