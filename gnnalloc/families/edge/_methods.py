"""The edge family's allocation methods, each returning the engine's :class:`SolveResult`.

``gnn`` is one of them: the solvers never import the model, the family wires both in.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnnalloc.core import Method, SolveResult
from gnnalloc.families.edge.problem import Instance
from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.edge.solvers import equal_share, proportional_share, solve_dual, solve_exact

if TYPE_CHECKING:
    from gnnalloc.families.edge.nn import Allocator

__all__ = ["METHODS", "default_checkpoint", "shipped_allocator"]

#: The shipped model of ``gnn``: ``checkpoints/default.ckpt`` of the source tree this package
#: belongs to, whatever the working directory.
_DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "checkpoints" / "default.ckpt"

_shipped: dict[tuple[str, float], "Allocator"] = {}
_shipped_lock = threading.Lock()


def default_checkpoint() -> Path:
    """Path of the shipped checkpoint of the edge family's ``gnn`` method."""
    return _DEFAULT_CHECKPOINT


def shipped_allocator() -> "Allocator":
    """The shipped model, loaded once per process (again if the file changes)."""
    from gnnalloc.families.edge.nn import Allocator

    path = _DEFAULT_CHECKPOINT
    key = (str(path), path.stat().st_mtime if path.is_file() else 0.0)
    with _shipped_lock:
        if key not in _shipped:
            _shipped.clear()
            _shipped[key] = Allocator.from_checkpoint(path)
        return _shipped[key]


def _objective(instance: Instance, allocation: Any) -> float:
    """``sum_u U_u`` of an allocation (the quantity every method maximises)."""
    return float(user_utilities(instance, allocation).sum())


def _at_least_baselines(instance: Instance, result: SolveResult) -> SolveResult:
    """``result``, or the best of equal and proportional share when it beats it.

    Both baselines are feasible and cost a few vector operations, so no method returns less
    than they would (the smoothed dual and the model can, e.g. at alpha near 0 where utilities
    are nearly linear). The upper bound stays valid (it bounds the optimum); the status says
    which allocation was returned and the time includes the check.
    """
    start = time.perf_counter()
    best, name, allocation = _objective(instance, result.allocation), None, result.allocation
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


def _exact(instance: Instance, **options: Any) -> SolveResult:
    result = solve_exact(instance, **options)
    answer = SolveResult(
        result.allocation, "exact", result.seconds, result.status, result.certified, result.upper_bound
    )
    # A certified optimum cannot be beaten; an uncertified one is held to the baselines.
    return answer if result.certified else _at_least_baselines(instance, answer)


def _dual(instance: Instance, **options: Any) -> SolveResult:
    result = solve_dual(instance, **options)
    return _at_least_baselines(
        instance,
        SolveResult(result.allocation, "dual", result.seconds, result.status, upper_bound=result.upper_bound),
    )


def _timed(name: str, fn: Any, instance: Instance) -> SolveResult:
    start = time.perf_counter()
    allocation = fn(instance)
    return SolveResult(allocation, name, time.perf_counter() - start)


def _equal(instance: Instance) -> SolveResult:
    return _timed("equal", equal_share, instance)


def _proportional(instance: Instance) -> SolveResult:
    return _timed("proportional", proportional_share, instance)


def _gnn(
    instance: Instance,
    *,
    allocator: "Allocator | None" = None,
    checkpoint: str | Path | None = None,
    search_rounds: int | None = None,
) -> SolveResult:
    if allocator is None:
        if checkpoint is None:
            allocator = shipped_allocator()
        else:
            from gnnalloc.families.edge.nn import Allocator

            allocator = Allocator.from_checkpoint(checkpoint)
    start = time.perf_counter()  # model loading excluded
    allocation = allocator.allocate(instance, search_rounds=search_rounds)
    return _at_least_baselines(instance, SolveResult(allocation, "gnn", time.perf_counter() - start))


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "exact", _exact,
            "global optimum of the conic program (Clarabel), with a Lagrangian bound",
            ("time_limit", "formulation", "tolerance", "verbose", "fallback"), "reference",
        ),
        Method(
            "dual", _dual,
            "smoothed dual ascent: near-optimal in seconds at 20,000 users, with its own bound; "
            "anytime with gap_tol / time_limit",
            (
                "iterations", "temperature", "search_rounds", "bound_iterations", "device", "start",
                "gap_tol", "time_limit",
            ),
            "classical",
        ),
        Method("equal", _equal, "equal shares of every capacity", (), "baseline"),
        Method("proportional", _proportional, "shares proportional to minimum demands", (), "baseline"),
        Method(
            "gnn", _gnn,
            "the learned allocator (the shipped checkpoint unless checkpoint or allocator is given)",
            ("allocator", "checkpoint", "search_rounds"), "learned",
        ),
    )
}
