"""One entry point for every allocation method, used by the CLI, evaluation and the server."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gnnalloc.core import user_utility
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
        if result.certified:  # a certified optimum cannot be beaten: no floor needed
            return SolveResult(
                result.allocation, method, result.seconds, result.status, True, result.upper_bound
            )
        return _at_least_baselines(instance, SolveResult(
            result.allocation, method, result.seconds, result.status, False, result.upper_bound
        ))
    if method == "dual":
        dual = solve_dual(instance, **options)
        return _at_least_baselines(
            instance, SolveResult(dual.allocation, method, dual.seconds, upper_bound=dual.upper_bound)
        )
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
        return _at_least_baselines(
            instance, SolveResult(allocation, method, time.perf_counter() - start)
        )
    else:
        raise ValueError(f"method: unknown {method!r}, expected one of {', '.join(METHODS)}")
    return SolveResult(allocation, method, time.perf_counter() - start)


def _objective(instance: Instance, allocation: Allocation) -> float:
    """``sum_u U_u`` of a feasible allocation (the quantity every method maximises)."""
    total = torch.from_numpy(instance.user_compute(allocation.compute))
    return float(user_utility(
        total, torch.from_numpy(allocation.bandwidth), torch.from_numpy(instance.compute_min),
        torch.from_numpy(instance.bandwidth_min), torch.from_numpy(instance.weight),
        instance.penalty, instance.alpha,
    ).sum())


def _at_least_baselines(instance: Instance, result: SolveResult) -> SolveResult:
    """``result``, or the best of equal and proportional share when it beats it.

    Both baselines are feasible and cost a few vector operations, so no method returns less
    than they would (the smoothed dual and the model can, e.g. at alpha near 0 where utilities
    are nearly linear). The upper bound stays valid (it bounds the optimum); the status says
    which allocation was returned and the time includes the check.
    """
    start = time.perf_counter()
    best, name = _objective(instance, result.allocation), None
    for label, baseline in (("equal", equal_share), ("proportional", proportional_share)):
        candidate = baseline(instance)
        value = _objective(instance, candidate)
        # A relative margin: ties and rounding keep the method's own answer.
        if value > best + 1e-9 * max(1.0, abs(best)):
            best, name, allocation = value, label, candidate
    seconds = result.seconds + time.perf_counter() - start
    if name is None:
        return replace(result, seconds=seconds)
    return replace(
        result, allocation=allocation, seconds=seconds, certified_optimal=False,
        status=f"{result.status}; {name} share was better and is returned",
    )
