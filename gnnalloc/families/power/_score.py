r"""Score a power allocation or frame: objective, gaps, feasibility, and the rate distribution.

A frame (:class:`~gnnalloc.families.power.PowerFrame`) is scored on its links' average rates
:math:`\bar r_k = \sum_t \theta_t r_k(p^{(t)})`; one power vector is a frame of one slot.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gnnalloc.core import AllocationError, check_allocation_types, check_bound
from gnnalloc.families.power._allocation import PowerAllocation, PowerFrame
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._links import LinkBatch, link_rates
from gnnalloc.families.power.functional import link_utility
from gnnalloc.metrics import jain_index, utility_gap

__all__ = [
    "OFF_FRACTION", "PowerScore", "allocation_rates", "allocation_utilities", "max_violation", "score", "slot_rates",
]

#: What :func:`score` and the rate functions take: one power vector or a frame of them.
Answer = PowerAllocation | PowerFrame

#: A link transmitting below this fraction of its ``pmax`` counts as switched off.
OFF_FRACTION = 1e-6


@dataclass(frozen=True)
class PowerScore:
    """Quality, fairness and feasibility of one power allocation or frame (a
    :class:`gnnalloc.core.Score`); a frame's rates are its links' average rates.

    Args:
        objective: the instance's objective :math:`\\sum_k U_k` (weighted sum rate or α-fair).
        gap: mean per-link utility gap to the reference allocation,
            :math:`\\sum_k (U^{ref}_k - U_k) / \\sum_k w_k`, if a reference was given.
        gap_bound: a proven bound on the same gap to the optimum, from an upper bound on the
            optimal objective, if one was given.
        max_violation: largest power outside ``[0, pmax]``, relative to ``pmax`` (0 = feasible).
        sum_rate: :math:`\\sum_k r_k` (bits/s/Hz, unweighted).
        mean_rate, min_rate: mean and smallest link rate.
        rate_p5: 5th percentile of the link rates (linear interpolation).
        jain: Jain's index of the rates.
        geomean_rate: geometric mean of the rates (0 if any link gets none).
        links_off: links below :data:`OFF_FRACTION` of their ``pmax`` (in a frame: in every
            slot that has time).
        slots: the frame's slots (1 for one power vector).
    """

    objective: float
    gap: float | None
    gap_bound: float | None
    max_violation: float
    sum_rate: float
    mean_rate: float
    min_rate: float
    rate_p5: float
    jain: float
    geomean_rate: float
    links_off: int
    slots: int = 1

    def as_dict(self) -> dict[str, Any]:
        """Every metric by name."""
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` lines for the command line's summary."""
        rows = [("objective", f"{self.objective:.6g}")]
        if self.gap is not None:
            rows.append(("gap to reference (per unit weight)", f"{self.gap:.4g}"))
        if self.gap_bound is not None:
            rows.append(("proven gap bound (per unit weight)", f"{self.gap_bound:.4g}"))
        rows += [
            ("sum rate (bits/s/Hz)", f"{self.sum_rate:.6g}"),
            ("mean / min / 5th-percentile rate", f"{self.mean_rate:.4g} / {self.min_rate:.4g} / {self.rate_p5:.4g}"),
            ("Jain's index of rates", f"{self.jain:.4f}"),
            ("geometric-mean rate", f"{self.geomean_rate:.4g}"),
            ("links switched off", str(self.links_off)),
            ("max violation", f"{self.max_violation:.3g}"),
        ]
        if self.slots > 1:
            rows.insert(1 + (self.gap is not None) + (self.gap_bound is not None),
                        ("time-shared slots (rates are frame averages)", str(self.slots)))
        return rows


def _shares(instance: PowerInstance, power: np.ndarray) -> Tensor:
    """Power shares of ``pmax``, ``(K,)`` or ``(K, T)``."""
    # A negative power is a violation (reported as such); as a signal it is no signal.
    pmax = instance.pmax if power.ndim == 1 else instance.pmax[:, None]
    return torch.as_tensor(np.clip(power, 0.0, None) / pmax, dtype=torch.float64)


def _power_rates(instance: PowerInstance, power: np.ndarray) -> Tensor:
    """The rates of one power vector ``(K,)``, or of each row of ``(T, K)`` powers as ``(K, T)``
    (one evaluation for all rows)."""
    power = np.asarray(power, dtype=np.float64)
    return link_rates(LinkBatch.of(instance), _shares(instance, power if power.ndim == 1 else power.T))


def _timed(allocation: Answer) -> np.ndarray:
    """Which slots have time, ``(T,)`` bool (a slot without time sends nothing)."""
    return np.asarray(allocation.time_share, dtype=np.float64) > 0


def _rates(instance: PowerInstance, allocation: Answer) -> Tensor:
    """The links' (average) rates, ``(K,)``: over the slots that have time."""
    if isinstance(allocation, PowerAllocation):  # one slot: its rates, not rates times 1.0
        return _power_rates(instance, allocation.power)
    timed = _timed(allocation)
    share = np.asarray(allocation.time_share, dtype=np.float64)[timed]
    return _power_rates(instance, np.asarray(allocation.power, dtype=np.float64)[timed]) @ torch.as_tensor(share)


def _utilities(instance: PowerInstance, rates: Tensor) -> Tensor:
    rate_min = None if instance.rate_min is None else torch.as_tensor(instance.rate_min, dtype=torch.float64)
    return link_utility(
        rates, torch.as_tensor(instance.weight, dtype=torch.float64), rate_min, instance.alpha,
        instance.penalty, instance.utility,
    )


def slot_rates(instance: PowerInstance, allocation: Answer) -> np.ndarray:
    """Each slot's per-link rates (bits/s/Hz), ``(T, K)`` (one row for a power vector;
    negative powers count as 0)."""
    power = np.asarray(allocation.power, dtype=np.float64).reshape(-1, instance.num_links)
    return _power_rates(instance, power).numpy().T.copy()


def allocation_rates(instance: PowerInstance, allocation: Answer) -> np.ndarray:
    """Per-link rates (bits/s/Hz) of ``allocation``, ``(K,)``: a frame's are the time-weighted
    averages over its slots (negative powers count as 0)."""
    return _rates(instance, allocation).numpy()


def allocation_utilities(instance: PowerInstance, allocation: Answer) -> np.ndarray:
    """Per-link utilities :math:`U_k` of ``allocation``'s (average) rates, ``(K,)``."""
    return _utilities(instance, _rates(instance, allocation)).numpy()


def max_violation(instance: PowerInstance, allocation: Answer) -> float:
    """Largest power below 0 or above ``pmax``, relative to ``pmax`` (0 when feasible); in a
    frame, over every slot, those without time included (the document holds them)."""
    power = np.asarray(allocation.power, dtype=np.float64)
    excess = np.maximum(power - instance.pmax, 0.0) + np.maximum(-power, 0.0)
    return float((excess / instance.pmax).max())


def score(
    instance: PowerInstance,
    allocation: Answer,
    reference: Answer | None = None,
    upper_bound: float | None = None,
) -> PowerScore:
    """Score ``allocation`` (a power vector or a frame); with ``reference`` (e.g. WMMSE's) also
    the utility gap, with ``upper_bound`` (a proven bound on the optimal objective) also the gap
    bound.

    Raises:
        AllocationError: naming ``allocation`` or ``reference`` when it is neither a
            :class:`PowerAllocation` nor a :class:`PowerFrame`; naming ``power`` or a frame's
            ``time_share`` (``reference.power``...) for a wrong shape, non-finite entries or
            shares that are no distribution over slots.
        ValueError: naming ``upper_bound`` when it is not a number.
    """
    check_allocation_types(allocation, reference, (PowerAllocation, PowerFrame), "a PowerAllocation or a PowerFrame")
    allocation.check(instance)
    if reference is not None:
        reference.check(instance, "reference.")
    if upper_bound is not None:
        check_bound("upper_bound", upper_bound)
    rates = _rates(instance, allocation)
    utility = _utilities(instance, rates)
    weight = torch.as_tensor(instance.weight, dtype=torch.float64)
    objective = float(utility.sum())
    gap = None
    if reference is not None:
        gap = float(utility_gap(utility, _utilities(instance, _rates(instance, reference)), weight))
    gap_bound = None
    if upper_bound is not None and math.isfinite(upper_bound):
        total = utility.sum().reshape(1)
        gap_bound = max(0.0, float(utility_gap(total, total.new_tensor([upper_bound]), weight)))
    power = np.asarray(allocation.power, dtype=np.float64).reshape(-1, instance.num_links)
    slots_timed = np.flatnonzero(_timed(allocation))
    timed = power[slots_timed]
    off = (timed < OFF_FRACTION * instance.pmax).all(axis=0)  # silent whenever it has time
    result = PowerScore(
        objective=objective,
        gap=gap,
        gap_bound=gap_bound,
        max_violation=max_violation(instance, allocation),
        sum_rate=float(rates.sum()),
        mean_rate=float(rates.mean()),
        min_rate=float(rates.min()),
        rate_p5=float(torch.quantile(rates, 0.05)),
        jain=float(jain_index(rates)),
        geomean_rate=float(torch.exp(torch.log(rates).mean())),
        links_off=int(off.sum()),
        slots=allocation.slots,
    )
    # A figure that overflowed is no score: name it rather than print inf or nan.
    for key, value in result.as_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            row, worst = np.unravel_index(int(np.argmax(np.abs(timed) / instance.pmax)), timed.shape)
            where = f" in slot {int(slots_timed[row]) + 1}" if allocation.slots > 1 else ""
            raise AllocationError(
                "power", f"the allocation's values overflow the metrics ({key} = {value}; "
                f"largest power relative to pmax: link {instance.link_ids[int(worst)]!r}{where})",
            )
    return result
