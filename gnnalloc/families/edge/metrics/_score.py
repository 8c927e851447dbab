"""Score any allocation of an instance: the one report used by the CLI, evaluation and server."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from gnnalloc.metrics.functional import (
    jain_index,
    met_minimum_share,
    satisfaction,
    utility_gap,
    weighted_utility_variance,
)
from gnnalloc.core import AllocationError, check_allocation_types, check_bound
from gnnalloc.families.edge.problem import Allocation, Instance, max_violation, user_utility

__all__ = ["Score", "score", "user_utilities"]


@dataclass(frozen=True)
class Score:
    """Quality and fairness of one allocation.

    Args:
        objective: sum of user utilities.
        gap: mean per-user utility gap to the reference allocation, if one was given.
        gap_bound: a proven upper bound on the mean per-user gap to the optimum, from an upper
            bound on the optimal objective (:func:`gnnalloc.families.edge.solvers.lagrangian_bound`), if one
            was given.
        jain: Jain's index of per-user satisfaction.
        met_minimum: share of users meeting both minimum demands.
        min_utility: smallest per-user utility.
        utility_variance: variance of utility per unit weight.
        max_violation: largest relative constraint violation (0 = feasible).
        users_without_candidate: users no server can run.
    """

    objective: float
    gap: float | None
    jain: float
    met_minimum: float
    min_utility: float
    utility_variance: float
    max_violation: float
    users_without_candidate: int
    gap_bound: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` lines of the command line's summary."""
        gap = "n/a (pass --reference exact)" if self.gap is None else f"{self.gap:.6f}"
        rows = [("objective", f"{self.objective:.6f}"), ("gap to optimum (per unit weight)", gap)]
        if self.gap_bound is not None:
            rows.append(("proven gap bound (per unit weight)", f"{self.gap_bound:.6f}"))
        return rows + [
            ("Jain index (satisfaction)", f"{self.jain:.4f}"),
            ("met-minimum share", f"{self.met_minimum:.4f}"),
            ("min utility", f"{self.min_utility:.4f}"),
            ("utility variance per weight", f"{self.utility_variance:.4f}"),
            ("max relative violation", f"{self.max_violation:.2e}"),
            ("users without candidate", str(self.users_without_candidate)),
        ]


def user_utilities(instance: Instance, allocation: Allocation) -> np.ndarray:
    """Per-user utilities ``U_u`` of an allocation, ``(U,)``."""
    return _utilities(instance, allocation)[0].numpy()


def _utilities(instance: Instance, allocation: Allocation) -> tuple[torch.Tensor, torch.Tensor]:
    total = torch.from_numpy(instance.user_compute(allocation.compute))
    utility = user_utility(
        total,
        torch.from_numpy(allocation.bandwidth),
        torch.from_numpy(instance.compute_min),
        torch.from_numpy(instance.bandwidth_min),
        torch.from_numpy(instance.weight),
        instance.penalty,
        instance.alpha,
    )
    return utility, total


def score(
    instance: Instance,
    allocation: Allocation,
    reference: Allocation | None = None,
    upper_bound: float | None = None,
) -> Score:
    """Score ``allocation``; with ``reference`` (e.g. the exact optimum) also the utility gap,
    with ``upper_bound`` (an upper bound on the optimal objective, e.g. a
    :class:`~gnnalloc.families.edge.solvers.SolveResult`'s) also the gap bound (``None`` for an infinite
    bound, which proves nothing).

    Raises:
        AllocationError: naming ``allocation`` or ``reference`` when it is no
            :class:`~gnnalloc.families.edge.problem.Allocation`, ``compute``/``bandwidth``
            (``reference.`` for the reference) for arrays of the wrong shape or with non-finite
            entries.
    """
    check_allocation_types(allocation, reference, Allocation, "an Allocation")
    allocation.check(instance)
    if reference is not None:
        reference.check(instance, "reference.")
    utility, total = _utilities(instance, allocation)
    bandwidth = torch.from_numpy(allocation.bandwidth)
    cmin = torch.from_numpy(instance.compute_min)
    bmin = torch.from_numpy(instance.bandwidth_min)
    weight = torch.from_numpy(instance.weight)
    gap = None
    if reference is not None:
        ref_utility, _ = _utilities(instance, reference)
        gap = float(utility_gap(utility, ref_utility, weight))
    gap_bound = None
    if upper_bound is not None:
        check_bound("upper_bound", upper_bound)
    if upper_bound is not None and math.isfinite(upper_bound):
        # The bound is on the sum of utilities: the same gap with the sums as the only "users".
        objective = utility.sum().reshape(1)
        gap_bound = max(0.0, float(utility_gap(objective, objective.new_tensor([upper_bound]), weight)))
    result = Score(
        objective=float(utility.sum()),
        gap=gap,
        jain=float(jain_index(satisfaction((total, bandwidth), (cmin, bmin)))),
        met_minimum=float(met_minimum_share((total, bandwidth), (cmin, bmin))),
        min_utility=float(utility.min()) if utility.numel() else 0.0,
        utility_variance=float(weighted_utility_variance(utility, weight)),
        max_violation=max_violation(instance, allocation),
        users_without_candidate=int(instance.users_without_candidate.size),
        gap_bound=gap_bound,
    )
    # A figure that overflowed is no score: name it rather than print inf or nan.
    for key, value in result.as_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            raise AllocationError(
                "compute", f"the allocation's values overflow the metrics ({key} = {value})"
            )
    return result
