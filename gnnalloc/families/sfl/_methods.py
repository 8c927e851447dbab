"""The ``exact`` method: the certified min-max solver, or the Lagrangian method for the weighted
sum, as a :class:`SolveResult`."""

from __future__ import annotations

import math
import time

from gnnalloc.core import SolveResult, SolverError
from gnnalloc.families.sfl._exact import CERTIFIED_GAP, solve_exact
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._weighted import solve_weighted

__all__ = ["run_exact"]


def run_exact(instance: SflInstance, tolerance: float = 1e-9) -> SolveResult:
    """The ``exact`` method as a :class:`SolveResult`.

    For ``objective = "minmax"``: :func:`solve_exact`, bound ``-T_lo``, certified when the bracket
    is within :data:`CERTIFIED_GAP`. For ``"weighted_sum"``: the Lagrangian method of
    :mod:`gnnalloc.families.sfl._weighted` with its proven but not tight bound (the method is
    exact only for min-max; ``tolerance`` applies to its min-max solve).
    """
    start = time.perf_counter()
    if instance.objective == "minmax":
        solution = solve_exact(instance, tolerance)
        allocation, bound = solution.allocation, -solution.t_lower
        certified, status = solution.relative_gap <= CERTIFIED_GAP, solution.status
    else:
        weighted = solve_weighted(instance, tolerance=tolerance)
        allocation, bound = weighted.allocation, -weighted.lower_bound
        certified, status = False, "ok"
    if not math.isfinite(bound):
        raise SolverError("the exact solver's bound is not finite")
    return SolveResult(
        allocation=allocation, method="exact", seconds=time.perf_counter() - start, status=status,
        certified_optimal=certified, upper_bound=bound,
    )
