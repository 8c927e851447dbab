"""The exact solver's bisection started from a guess of the round time: a short bracket around
the guess instead of the cold doubling from the compute floor.

From a guess ``T0`` the bracket is grown geometrically, ``T0 (1 + d)^{\\pm k}`` with ``d``
doubling at each step, until one end is achieved (the least shares sum to at most 1) and the
other proven infeasible (their lower bounds sum above 1, or the compute floor of
:func:`gnnalloc.families.sfl._exact.solve_exact`); then it is bisected to ``tolerance``. The
result carries the same certificate as the cold solver, ``T_lo`` infeasible and ``T_hi``
achieved, so a bad guess only costs evaluations, never correctness.
"""

from __future__ import annotations

import math

import numpy as np

from gnnalloc.core import InstanceError
from gnnalloc.families.sfl._exact import ExactSolution, _allocation, check_energy_feasible, client_shares
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import cycles, fixed_time

__all__ = ["solve_from_guess"]


def solve_from_guess(
    instance: SflInstance, guess: float, spread: float = 0.05, tolerance: float = 1e-3,
    max_steps: int = 200,
) -> ExactSolution:
    """The min-max round time to ``tolerance`` relative by a bracket grown around ``guess``.

    Args:
        instance: the instance (min-max objective).
        guess: a round time in seconds (positive, finite); the better, the fewer evaluations.
        spread: the bracket's first relative half-width ``d``.
        tolerance: the relative bracket ``(T_hi - T_lo) / T_hi`` to stop at.
        max_steps: bound on the bracket-growing steps.

    Raises:
        ValueError: naming ``guess``, ``spread`` or ``tolerance`` when out of range.
        InstanceError: as :func:`solve_exact` for instances no allocation serves.
    """
    if not (math.isfinite(guess) and guess > 0):
        raise ValueError(f"guess: must be a positive finite round time, got {guess!r}")
    if not (math.isfinite(spread) and spread > 0):
        raise ValueError(f"spread: must be a positive number, got {spread!r}")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance: must be a number in (0, 1), got {tolerance!r}")
    check_energy_feasible(instance)
    t_lower = float((cycles(instance) / instance.cpu_max[:, None] + fixed_time(instance)).min(axis=1).max())
    evaluations = 0
    best, t_upper = None, math.inf

    def evaluate(t: float):
        nonlocal evaluations, best, t_upper, t_lower
        evaluations += 1
        found = client_shares(instance, t)
        if found.share.sum() <= 1.0:
            best, t_upper = found, t
            return True
        if found.lower.sum() > 1.0:
            t_lower = max(t_lower, t)
            return False
        return None  # undecided: the two sums straddle 1 within the search's accuracy

    t = max(guess, t_lower * (1.0 + spread))
    outcome = evaluate(t)
    step = spread
    for _ in range(max_steps):
        if best is not None and t_upper - t_lower <= max(spread, tolerance) * t_upper:
            break
        if outcome:  # achieved: look below
            t = max(t / (1.0 + step), math.sqrt(t_lower * t) if t_lower > 0 else 0.0)
            if t <= t_lower:
                break
        else:  # infeasible or undecided: look above
            if not math.isfinite(t * (1.0 + step)):
                break
            t = t * (1.0 + step)
        outcome = evaluate(t)
        if outcome is None and best is not None:
            break
        step *= 2.0
    if best is None:
        need = client_shares(instance, t).lower.sum()
        raise InstanceError(
            "server.bandwidth",
            f"the clients' energy budgets need {need:.6g} times the band even at a round time of {t:.3g} s",
        )
    status = "optimal"
    while t_upper - t_lower > tolerance * t_upper:
        mid = math.sqrt(t_lower * t_upper) if t_upper > 4.0 * t_lower > 0 else 0.5 * (t_lower + t_upper)
        if evaluate(mid) is None:
            status = "stalled"
            break
    return ExactSolution(_allocation(instance, best), t_lower, t_upper, evaluations, status)
