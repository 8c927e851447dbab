"""The score report of an allocation of a split-federated-learning round."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gnnalloc.core import check_allocation_types, check_bound
from gnnalloc.families.sfl._allocation import SflAllocation
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import max_violation, round_costs

__all__ = ["SflScore", "objective", "score"]


def objective(instance: SflInstance, latency: np.ndarray) -> float:
    """The maximised objective: ``-max_n t_n`` (minmax) or ``-sum_n weight_n t_n`` (weighted_sum)."""
    if instance.objective == "minmax":
        return -float(latency.max())
    return -float(np.dot(instance.weight, latency))


@dataclass(frozen=True)
class SflScore:
    """Quality of one allocation (implements :class:`gnnalloc.core.Score`).

    Args:
        objective: ``-max_n t_n`` or ``-sum_n weight_n t_n`` (seconds; higher is better).
        gap: ``reference objective - objective`` when a reference allocation was given.
        gap_bound: ``upper_bound - objective``, a proven bound on the distance to the optimum,
            when an upper bound was given.
        max_violation: the largest relative constraint violation (0 = feasible).
        max_latency, mean_latency: over clients, in seconds.
        energy_use: mean over clients of ``e_n / energy_max_n``.
        max_energy_use: the largest ``e_n / energy_max_n``.
        bandwidth_use: ``sum_n beta_n``.
        ratio_to_reference: ``max_latency`` over the reference's (minmax) or the weighted sums'
            ratio (weighted_sum), when a reference was given (1 = as good as the reference).
    """

    objective: float
    gap: float | None
    gap_bound: float | None
    max_violation: float
    max_latency: float
    mean_latency: float
    energy_use: float
    max_energy_use: float
    bandwidth_use: float
    ratio_to_reference: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every metric by name."""
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` lines for the command line."""
        rows = [
            ("objective", f"{self.objective:.6g}"),
            ("max latency (s)", f"{self.max_latency:.6g}"),
            ("mean latency (s)", f"{self.mean_latency:.6g}"),
            ("energy use (mean / max of budget)", f"{self.energy_use:.4f} / {self.max_energy_use:.4f}"),
            ("bandwidth use", f"{self.bandwidth_use:.6f}"),
            ("max violation", f"{self.max_violation:.3g}"),
        ]
        if self.gap is not None:
            rows.append(("gap to reference", f"{self.gap:.6g}"))
        if self.ratio_to_reference is not None:
            rows.append(("ratio to reference", f"{self.ratio_to_reference:.6f}"))
        if self.gap_bound is not None:
            rows.append(("proven gap <=", f"{self.gap_bound:.6g}"))
        return rows


def score(
    instance: SflInstance, allocation: SflAllocation, reference: SflAllocation | None = None,
    upper_bound: float | None = None,
) -> SflScore:
    """Score ``allocation``; with ``reference`` (e.g. the exact solver's) its gap and ratio, with
    ``upper_bound`` (e.g. ``-T_lo``) the proven gap bound.

    Raises:
        AllocationError: naming ``allocation`` or ``reference`` when it is no
            :class:`SflAllocation`; when the allocation does not fit the instance or a client
            never finishes its upload (zero rate).
        ValueError: naming ``upper_bound`` when it is not a number or NaN.
    """
    check_allocation_types(allocation, reference, SflAllocation, "an SflAllocation")
    if upper_bound is not None:
        check_bound("upper_bound", upper_bound)
    costs = round_costs(instance, allocation)
    latency = costs.latency
    value = objective(instance, latency)
    gap = ratio = None
    if reference is not None:
        reference_value = objective(instance, round_costs(instance, reference).latency)
        gap = reference_value - value
        ratio = value / reference_value if reference_value != 0 else math.nan
    use = costs.energy / instance.energy_max
    return SflScore(
        objective=value, gap=gap,
        # An infinite bound proves nothing: no gap bound, as in the other families.
        gap_bound=None if upper_bound is None or not math.isfinite(upper_bound) else float(upper_bound) - value,
        max_violation=max_violation(instance, allocation, costs),
        max_latency=float(latency.max()), mean_latency=float(latency.mean()),
        energy_use=float(use.mean()), max_energy_use=float(use.max()),
        bandwidth_use=float(allocation.share.sum()), ratio_to_reference=ratio,
    )
