r"""Proportional-fair time sharing: a frame of power vectors whose average rates serve every link.

One power vector that maximises the sum rate switches about half of the links of a dense layout
off, and no single power vector measured keeps most of that sum rate while serving the weakest
links (``benchmarks/RESULTS.md``: rate floors, α-fair training, constrained re-optimisation). Over
a frame of :math:`T` slots with time shares :math:`\theta_t` (:math:`\sum_t \theta_t = 1`) each
link gets the average

.. math::  \bar r_k = \sum_t \theta_t\, r_k(p^{(t)}),

so a link silent in one slot can transmit in another, where the links that drown it out are
silent. The slots are chosen by the classical proportional-fair scheduler (Kelly 1997; with a
learned per-slot allocator as in Cui, Shen and Yu, "Spatial deep learning for wireless
scheduling", 2019): slot 1 is the allocator's answer to the instance's own weights
:math:`w_k`, and slot :math:`t > 1` its answer to the weighted sum rate with

.. math::  w^{(t)}_k \propto w_k \big(\bar r^{(<t)}_k + \epsilon\big)^{-\beta},

:math:`\bar r^{(<t)}` the mean rate over the slots before and :math:`\epsilon` a thousandth of
slot 1's mean rate (a link served nothing so far gets a large finite weight, not an infinite one).
:math:`\beta` (``fairness``) = 1 is proportional fairness; larger serves the weakest sooner. The
frame gives slot 1 the time share :math:`1 - \lambda + \lambda / T` and every other slot
:math:`\lambda / T`: ``fair_share`` :math:`\lambda` = 0 is the allocator's own answer, 1 the
proportional-fair frame alone, and the values between trace the trade-off between sum rate and
the bottom of the rate distribution.

Any per-slot allocator fits (``allocate``: a power-control instance in, a
:class:`~gnnalloc.families.power.PowerAllocation` out), the learned one or WMMSE; each slot is a
weighted-sum-rate instance (the instance's own utility is not used).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from gnnalloc.core import AllocationError, check_count, check_fraction, check_nonnegative
from gnnalloc.families.power._allocation import PowerAllocation
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._score import allocation_rates

__all__ = ["PowerFrame", "fair_slot_weights", "frame_rates", "frame_time_shares", "proportional_fair_frame"]

#: :math:`\epsilon`: added to every link's mean rate so far, as this fraction of slot 1's mean rate.
RATE_FLOOR_FRACTION = 1e-3


@dataclass(frozen=True, eq=False)
class PowerFrame:
    """Transmit powers for ``T`` slots of a frame and the share of time each slot gets.

    Args:
        power: ``p^{(t)}_k`` per slot and link, ``(T, K)``.
        time_share: :math:`\\theta_t`, ``(T,)``, non-negative, summing to 1.
    """

    power: np.ndarray
    time_share: np.ndarray

    def check(self, instance: PowerInstance) -> None:
        """Raise :class:`AllocationError` naming ``power`` or ``time_share`` unless the shapes fit
        ``instance``, every value is finite, and the time shares are non-negative and sum to 1."""
        power, share = np.asarray(self.power), np.asarray(self.time_share)
        if power.ndim != 2 or power.shape[1] != instance.num_links or power.shape[0] < 1:
            raise AllocationError("power", f"expected shape (T, {instance.num_links}) with T >= 1, got {power.shape}")
        if not np.issubdtype(power.dtype, np.number) or not np.isfinite(power).all():
            raise AllocationError("power", "must be finite numbers")
        if share.shape != (power.shape[0],):
            raise AllocationError("time_share", f"expected shape ({power.shape[0]},), got {share.shape}")
        if not np.issubdtype(share.dtype, np.number) or not np.isfinite(share).all() or (share < 0).any():
            raise AllocationError("time_share", "must be finite non-negative numbers")
        if not math.isclose(float(share.sum()), 1.0, rel_tol=0.0, abs_tol=1e-9):
            raise AllocationError("time_share", f"must sum to 1, got {float(share.sum())!r}")

    @property
    def slots(self) -> int:
        """``T``, the number of slots."""
        return int(np.asarray(self.power).shape[0])


def frame_rates(instance: PowerInstance, frame: PowerFrame) -> np.ndarray:
    r"""Each link's average rate over the frame, :math:`\bar r_k = \sum_t \theta_t r_k(p^{(t)})`,
    ``(K,)`` bits/s/Hz (negative powers count as 0, as in
    :func:`~gnnalloc.families.power.allocation_rates`).

    Raises:
        AllocationError: naming ``power`` or ``time_share`` (:meth:`PowerFrame.check`).
    """
    frame.check(instance)
    share = np.asarray(frame.time_share, dtype=np.float64)
    slot_rates = [allocation_rates(instance, PowerAllocation(p)) for p in np.asarray(frame.power, dtype=np.float64)]
    return share @ np.stack(slot_rates)


def frame_time_shares(slots: int, fair_share: float) -> np.ndarray:
    r"""The time shares of a ``slots``-slot frame at ``fair_share`` :math:`\lambda`: slot 1
    :math:`1 - \lambda + \lambda / T`, each other :math:`\lambda / T`, ``(T,)``.

    Raises:
        ValueError: naming ``slots`` (an integer >= 1) or ``fair_share`` (in [0, 1]).
    """
    check_count("slots", slots, minimum=1)
    check_fraction("fair_share", fair_share)
    share = np.full(slots, fair_share / slots)
    share[0] += 1.0 - fair_share
    return share


def fair_slot_weights(weight: np.ndarray, served: np.ndarray, fairness: float, floor: float) -> np.ndarray:
    r"""The next slot's weights :math:`w_k (\bar r_k + \epsilon)^{-\beta}`, scaled to mean 1:
    ``weight`` :math:`w`, ``served`` :math:`\bar r` (mean rate so far), ``fairness`` :math:`\beta`,
    ``floor`` :math:`\epsilon > 0`. Computed in logarithms, so no power overflows."""
    log_weight = np.log(weight) - fairness * np.log(served + floor)
    scaled = np.exp(log_weight - log_weight.max())
    return scaled / scaled.mean()


def proportional_fair_frame(
    instance: PowerInstance,
    allocate: Callable[[PowerInstance], PowerAllocation],
    *,
    slots: int = 16,
    fairness: float = 1.0,
    fair_share: float = 0.2,
) -> PowerFrame:
    r"""The proportional-fair frame of ``allocate``'s answers (module docstring).

    Args:
        instance: the links.
        allocate: the per-slot allocator, e.g. ``lambda i: gnnalloc.solve(i, method="gnn").allocation``
            or ``lambda i: wmmse(i).allocation``; called ``slots`` times, on the instance with
            the weighted sum rate as its utility and the slot's weights.
        slots: :math:`T \ge 1` (enough that every link is served in some slot: about the links
            one interference neighbourhood holds over those a slot switches on).
        fairness: :math:`\beta \ge 0` of the slot weights (0: every slot is slot 1's answer).
        fair_share: :math:`\lambda \in [0, 1]`, the share of the frame spread evenly over all
            slots (the rest goes to slot 1). Changing it needs no new slots:
            ``replace(frame, time_share=frame_time_shares(frame.slots, other))``.

    Returns:
        The frame; its average rates are :func:`frame_rates`.

    Raises:
        ValueError: naming ``slots``, ``fairness``, ``fair_share`` or ``allocate``.
        AllocationError: naming ``allocate`` when an answer is not a finite power vector of the
            instance's links.
    """
    time_share = frame_time_shares(slots, fair_share)
    check_nonnegative("fairness", fairness)
    if not callable(allocate):
        raise ValueError(f"allocate: expected a function from an instance to a PowerAllocation, got {allocate!r}")
    base = replace(instance, utility="sum_rate")
    weight = np.asarray(instance.weight, dtype=np.float64)
    powers: list[np.ndarray] = []
    rates: list[np.ndarray] = []
    floor = 0.0
    for slot in range(slots):
        if slot == 0:
            slot_instance = base
        else:
            served = np.mean(rates, axis=0)
            slot_instance = replace(base, weight=fair_slot_weights(weight, served, float(fairness), floor))
        answer = allocate(slot_instance)
        if not isinstance(answer, PowerAllocation):
            raise AllocationError("allocate", f"expected a PowerAllocation, got {type(answer).__name__}")
        answer.check(instance, "allocate.")
        power = np.asarray(answer.power, dtype=np.float64)
        powers.append(power)
        rates.append(allocation_rates(instance, answer))
        if slot == 0:
            # A layout where slot 1 serves nothing at all still gets a positive floor.
            floor = RATE_FLOOR_FRACTION * max(float(rates[0].mean()), 1e-12)
    return PowerFrame(np.stack(powers), time_share)
