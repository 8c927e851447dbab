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


from gnnalloc.core import InputError, InstanceError
from gnnalloc.families.sfl._exact import (
    ExactSolution, _allocation, check_energy_feasible, client_shares, near_probes,
)
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import cycles, fixed_time

__all__ = ["solve_from_guess"]


def solve_from_guess(
    instance: SflInstance, guess: float, spread: float = 0.01, tolerance: float = 1e-3,
    max_steps: int = 200, lower: float = 0.0,
) -> ExactSolution:
    """The min-max round time to ``tolerance`` relative by a bracket grown around ``guess``.

    Args:
        instance: the instance (min-max objective).
        guess: a round time in seconds (positive, finite); the better, the fewer evaluations.
        spread: the bracket's first relative half-width ``d``.
        tolerance: the relative bracket ``(T_hi - T_lo) / T_hi`` to stop at.
        max_steps: bound on the bracket-growing steps.
        lower: a round time the caller has proven infeasible (such as
            :func:`gnnalloc.families.sfl._relaxed.relaxed_round`'s), the bracket's first lower end.

    Raises:
        ValueError: naming ``guess``, ``spread`` or ``tolerance`` when out of range.
        InstanceError: as :func:`solve_exact` for instances no allocation serves.
    """
    if not (math.isfinite(guess) and guess > 0):
        raise InputError(f"guess: must be a positive finite round time, got {guess!r}")
    if not (math.isfinite(spread) and spread > 0):
        raise InputError(f"spread: must be a positive number, got {spread!r}")
    if not 0 < tolerance < 1:
        raise InputError(f"tolerance: must be a number in (0, 1), got {tolerance!r}")
    check_energy_feasible(instance)
    t_lower = float((cycles(instance) / instance.cpu_max[:, None] + fixed_time(instance)).min(axis=1).max())
    t_lower = max(t_lower, float(lower))
    evaluations = 0
    best, t_upper = None, math.inf
    sums = {"lower": math.nan, "upper": math.nan}  # the share sums at the two ends, once evaluated

    def evaluate(t: float):
        nonlocal evaluations, best, t_upper, t_lower
        evaluations += 1
        found = client_shares(instance, t)
        total = float(found.share.sum())
        if total <= 1.0:
            best, t_upper, sums["upper"] = found, t, total
            return True
        if found.lower.sum() > 1.0:
            if t > t_lower:
                t_lower, sums["lower"] = t, total
            return False
        return None  # undecided: the two sums straddle 1 within the search's accuracy

    t = guess if guess > t_lower else t_lower * (1.0 + spread)
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
    moved, widths = True, [t_upper - t_lower]
    while t_upper - t_lower > tolerance * t_upper:
        mid = math.sqrt(t_lower * t_upper) if t_upper > 4.0 * t_lower > 0 else 0.5 * (t_lower + t_upper)
        # The share sum falls smoothly with T: interpolate log-sum against log-T between the ends
        # (regula falsi), aiming a quarter tolerance past the root toward the end that has not
        # moved, so both ends close in; a bisection step whenever two steps did not halve the
        # bracket keeps the worst case that of the bisection.
        slow = len(widths) >= 3 and widths[-1] > 0.5 * widths[-3]
        if math.isfinite(sums["lower"]) and sums["upper"] > 0 and not slow:
            a, b = math.log(t_lower), math.log(t_upper)
            fa, fb = math.log(sums["lower"]), math.log(sums["upper"])
            root = a + (b - a) * fa / (fa - fb) if fa > fb else 0.5 * (a + b)
            aim = root + (0.25 if moved else -0.25) * tolerance
            mid = math.exp(min(max(aim, a + 0.01 * (b - a)), b - 0.01 * (b - a)))
        outcome = evaluate(mid)
        if outcome is None:
            # Undecided (module _exact): probe just above and below; give up only if a probe is
            # undecided too or the bracket did not shrink.
            width_before = t_upper - t_lower
            probed = [evaluate(probe) for probe in near_probes(mid, tolerance, t_lower, t_upper)]
            if any(found is None for found in probed) or t_upper - t_lower >= width_before:
                status = "stalled"
                break
        moved = not outcome  # the lower end moved: aim above the root next
        widths.append(t_upper - t_lower)
    return ExactSolution(_allocation(instance, best), t_lower, t_upper, evaluations, status)
