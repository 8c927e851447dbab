r"""Proportional-fair time sharing: a frame of power vectors whose average rates serve the links
one power vector switches off.

One power vector that maximises the sum rate switches about half of the links of a dense layout
off, and no single power vector measured keeps most of that sum rate while serving the weakest
links (``benchmarks/RESULTS.md``: rate floors, α-fair training, constrained re-optimisation). Over
a frame of :math:`T` slots with time shares :math:`\theta_t` (:math:`\sum_t \theta_t = 1`) each
link gets the average

.. math::  \bar r_k = \sum_t \theta_t\, r_k(p^{(t)}),

so a link silent in one slot can transmit in another, where the links that drown it out are
silent. The slots are chosen by the classical α-fair scheduler (proportional fair at
:math:`\alpha = 1`: Jalali, Padovani and Pankaj 2000; Viswanath, Tse and Laroia 2002; with a learned
per-slot allocator as in Cui, Shen and Yu, "Spatial deep learning for wireless scheduling",
2019): slot 1 is the allocator's answer to the weighted sum rate with the instance's weights
:math:`w_k`, and slot :math:`t > 1` its answer to the weighted sum rate with

.. math::  w^{(t)}_k \propto w_k \big(\bar r^{(<t)}_k + \epsilon\big)^{-\alpha},

the gradient of the α-fair utility :math:`\sum_k w_k f_\alpha(\bar r_k + \epsilon)` at the mean
rates :math:`\bar r^{(<t)}` over the slots before, with :math:`\epsilon` a thousandth of slot
1's mean rate (a link served nothing so far gets a large finite weight, not an infinite one).
Larger :math:`\alpha` serves the weakest sooner; :math:`\alpha = 0` asks every slot the question
of slot 1. The frame gives slot 1 the time share :math:`1 - \lambda + \lambda / T` and every other
slot :math:`\lambda / T`: ``fair_time`` :math:`\lambda` = 0 is slot 1 alone (for a sum-rate
instance, the allocator's own answer), 1 the α-fair frame alone, and the values between trace
the trade-off between sum rate and the bottom of the rate distribution.

Any per-slot allocator fits (``allocate``: a power-control instance in, a
:class:`~gnnalloc.families.power.PowerAllocation` out), the learned one or WMMSE. Every slot is a
weighted sum rate: an α-fair instance's own ``alpha``, ``rate_min`` and ``penalty`` are not used
(the frame's ``alpha`` is its own argument).

The family's methods ``gnn_frame`` and ``wmmse_frame`` are :func:`solve_frame` with the learned
allocator or WMMSE per slot; instead of a ``fair_time`` they can aim at a 5th-percentile rate,
per instance (:func:`least_fair_time`).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from gnnalloc.core import AllocationError, InputError, SolveResult, check_count, check_fraction, check_nonnegative
from gnnalloc.families.power._allocation import MAX_SLOTS, PowerAllocation, PowerFrame, frame_time_shares
from gnnalloc.families.power._instance import MAX_ALPHA, MAX_MAGNITUDE, PowerInstance
from gnnalloc.families.power._score import allocation_rates, max_violation, slot_rates
from gnnalloc.ops import segment_mean

__all__ = [
    "DEFAULT_FAIR_TIME", "DEFAULT_SLOTS", "fair_time_rates", "frame_rates", "least_fair_time", "proportional_fair_frame",
    "check_frame_settings", "frame_setting", "slot_offset", "slot_weights", "solve_frame",
]

#: :func:`proportional_fair_frame`'s slots: enough that on the held-out dense layouts (up to 400
#: links/km²) all but a few tenths of a percent of the links are served in some slot
#: (``benchmarks/RESULTS.md``).
DEFAULT_SLOTS = 16

#: :func:`proportional_fair_frame`'s ``fair_time``: on the held-out dense layouts it keeps about
#: 95 % of the allocator's own sum rate with a 5th-percentile rate above a tenth of the median
#: (``benchmarks/RESULTS.md``).
DEFAULT_FAIR_TIME = 0.1

#: :func:`least_fair_time`'s first search: ``fair_time`` on this grid, then bisection within the
#: first step that meets the target, to :data:`FAIR_TIME_RESOLUTION`.
FAIR_TIME_GRID = 101
FAIR_TIME_RESOLUTION = 1e-6

#: :math:`\epsilon`: added to every link's mean rate so far, as this fraction of slot 1's mean rate.
RATE_OFFSET_FRACTION = 1e-3

#: An allocator's answer may exceed a link's ``pmax`` by this fraction (rounding), no more.
PMAX_TOLERANCE = 1e-9

#: The largest ratio between two slot weights (a larger one would only starve links the
#: allocator cannot serve anyway, and the instance rejects weights below 1e-100).
MAX_WEIGHT_RATIO = 1e12


def frame_rates(instance: PowerInstance, frame: PowerFrame) -> np.ndarray:
    r"""Each link's average rate over the frame, :math:`\bar r_k = \sum_t \theta_t r_k(p^{(t)})`,
    ``(K,)`` bits/s/Hz (negative powers count as 0, as in
    :func:`~gnnalloc.families.power.allocation_rates`).

    Raises:
        AllocationError: naming ``power`` or ``time_share`` (:meth:`PowerFrame.check`).
    """
    frame.check(instance)
    return allocation_rates(instance, frame)


def fair_time_rates(instance: PowerInstance, frame: PowerFrame, fair_times: Sequence[float]) -> np.ndarray:
    r"""Each link's average rate over the frame's slots at each of ``fair_times``
    (:meth:`PowerFrame.with_fair_time`; the frame's own time shares are not used),
    ``(len(fair_times), K)``: the trade-off traced with every slot's rates computed once.

    Raises:
        AllocationError: naming ``power`` (:meth:`PowerFrame.check`).
        ValueError: naming ``fair_times`` (not a non-empty sequence) or ``fair_time`` (a value
            outside [0, 1], :func:`frame_time_shares`).
    """
    frame.check(instance)
    if np.ndim(fair_times) != 1 or len(fair_times) == 0:  # a number, text or None has ndim 0
        raise InputError(f"fair_times: expected a non-empty sequence of numbers in [0, 1], got {fair_times!r}")
    shares = np.stack([frame_time_shares(frame.slots, fair_time) for fair_time in fair_times])
    return shares @ slot_rates(instance, frame)


def _segment_max(value: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    return value.new_full((num_graphs,), -math.inf).scatter_reduce(0, batch, value, "amax", include_self=True)


def check_frame_settings(slots: Any, alpha: Any, prefix: str = "") -> tuple[int, float]:
    """``(slots, alpha)`` of a frame, checked by name (``prefix`` + ``slots`` / ``alpha``):
    ``slots`` an integer in 1.. :data:`MAX_SLOTS` (what a solve returns must fit its document;
    checked before any array of that size), ``alpha`` a number in [0, ``MAX_ALPHA``]."""
    check_count(f"{prefix}slots", slots, minimum=1)
    if slots > MAX_SLOTS:
        raise InputError(f"{prefix}slots: at most {MAX_SLOTS} (the frame document's limit), got {slots!r}")
    check_nonnegative(f"{prefix}alpha", alpha)
    if alpha > MAX_ALPHA:
        raise InputError(f"{prefix}alpha: must be at most {MAX_ALPHA:g}, got {alpha!r}")
    return int(slots), float(alpha)


def check_slot_cap(slots: Any, max_slots: Any, whose: str = "a frame") -> None:
    """Raise :class:`~gnnalloc.core.InputError` naming ``max_slots`` unless it is ``None`` or a
    positive integer, or naming ``slots`` if ``slots`` (``whose``: the frame they are of, e.g.
    "the model's frame") exceeds it. Slots that are not an integer are left to the frame's own
    check (:func:`check_frame_settings`)."""
    if max_slots is None:
        return
    check_count("max_slots", max_slots, minimum=1)
    if isinstance(slots, numbers.Integral) and not isinstance(slots, bool) and slots > max_slots:
        raise InputError(f"slots: {whose} of {int(slots)} slots is more than the {max_slots} allowed "
                         f"(max_slots): give slots (at most {max_slots})")


def frame_setting(setting: Any, learned_fair_time: bool = False) -> tuple[int, float | None, float]:
    """``(slots, fair_time, alpha)`` of a ``frame_training`` mapping (defaults
    :data:`DEFAULT_SLOTS`, :data:`DEFAULT_FAIR_TIME`, 1), each checked by name; with
    ``learned_fair_time`` (a model's time head sets each instance's) the mapping takes no
    ``fair_time`` and it is ``None``."""
    keys = {"slots", "alpha"} if learned_fair_time else {"slots", "fair_time", "alpha"}
    if not isinstance(setting, dict) or not set(setting) <= keys:
        learned = " (fair_time is the time head's with time_sharing)" if learned_fair_time else ""
        raise InputError(f"frame_training: expected a mapping of {', '.join(sorted(keys))}{learned}, got {setting!r}")
    slots, alpha = check_frame_settings(setting.get("slots", DEFAULT_SLOTS), setting.get("alpha", 1.0),
                                        "frame_training.")
    if learned_fair_time:
        return slots, None, alpha
    fair_time = setting.get("fair_time", DEFAULT_FAIR_TIME)
    check_fraction("frame_training.fair_time", fair_time)
    return slots, float(fair_time), alpha


def slot_offset(first: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    r""":math:`\epsilon` per instance ``(num_graphs,)``: :data:`RATE_OFFSET_FRACTION` of each
    instance's mean slot-1 rate ``first`` ``(N,)`` (at least 1e-12, so that a layout whose
    slot 1 serves nothing still gets a positive offset)."""
    return RATE_OFFSET_FRACTION * segment_mean(first, batch, num_graphs).clamp(min=1e-12)


def slot_weights(weight: Tensor, served: Tensor, alpha: float, offset: Tensor, batch: Tensor,
                 num_graphs: int) -> Tensor:
    r"""The next slot's weights :math:`w_k (\bar r_k + \epsilon)^{-\alpha}` per link ``(N,)``
    (``served`` :math:`\bar r`, ``offset`` :math:`\epsilon > 0` per instance ``(G,)``, ``batch``
    the instance of each link of ``num_graphs``), computed in logarithms, no two of one instance
    more than :data:`MAX_WEIGHT_RATIO` apart, scaled to the mean of the instance's ``weight``,
    and kept within the weights an instance accepts; :math:`\alpha = 0` gives ``weight`` itself.
    The one rule of :func:`proportional_fair_frame` and of training through the frame."""
    if alpha == 0:  # exactly the instance's weights, whatever their spread
        return weight.clone()
    log_weight = weight.log() - alpha * (served + offset[batch]).log()
    log_weight = log_weight - _segment_max(log_weight, batch, num_graphs)[batch]
    scaled = log_weight.clamp(min=-math.log(MAX_WEIGHT_RATIO)).exp()
    ratio = segment_mean(weight, batch, num_graphs) / segment_mean(scaled, batch, num_graphs)
    return (scaled * ratio[batch]).clamp(1.0 / MAX_MAGNITUDE, MAX_MAGNITUDE)


def proportional_fair_frame(
    instance: PowerInstance,
    allocate: Callable[[PowerInstance], PowerAllocation],
    *,
    slots: int = DEFAULT_SLOTS,
    alpha: float = 1.0,
    fair_time: float = DEFAULT_FAIR_TIME,
) -> PowerFrame:
    r"""The α-fair frame of ``allocate``'s answers (module docstring).

    Args:
        instance: the links (its utility, and an α-fair instance's ``alpha``, ``rate_min`` and
            ``penalty``, are not used: every slot is a weighted sum rate).
        allocate: the per-slot allocator, e.g. ``lambda i: gnnalloc.solve(i, "gnn").allocation``
            or ``lambda i: wmmse(i).allocation``; called ``slots`` times, each time on the
            instance with the weighted sum rate as its utility and the slot's weights.
        slots: :math:`T` in 1.. :data:`MAX_SLOTS` (enough that almost every link is served in
            some slot: about the links of one interference neighbourhood over those a slot
            switches on).
        alpha: :math:`\alpha` in [0, 100] of the slot weights (1: proportional fairness).
        fair_time: :math:`\lambda \in [0, 1]`, the share of the frame's time spread evenly over
            all slots (the rest goes to slot 1); :meth:`PowerFrame.with_fair_time` changes it
            without new slots.

    Returns:
        The frame; its average rates are :func:`frame_rates`.

    Raises:
        ValueError: naming ``instance``, ``slots``, ``alpha``, ``fair_time`` or ``allocate``.
        AllocationError: naming ``allocate`` when an answer is not a finite power vector of the
            instance's links within their ``pmax``.
    """
    return _proportional_fair_frame(instance, allocate, slots, alpha, fair_time)[0]


def _proportional_fair_frame(
    instance: PowerInstance, allocate: Callable[[PowerInstance], PowerAllocation], slots: int, alpha: float,
    fair_time: float,
) -> tuple[PowerFrame, np.ndarray]:
    """:func:`proportional_fair_frame`, and the slots' rates ``(T, K)`` it computed for the
    scheduler (a rate target's search reads them rather than computing them again)."""
    if not isinstance(instance, PowerInstance):
        raise InputError(f"instance: expected a PowerInstance, got {type(instance).__name__}")
    check_frame_settings(slots, alpha)
    time_share = frame_time_shares(slots, fair_time)
    if not callable(allocate):
        raise InputError(
            f"allocate: expected a function from an instance to a PowerAllocation, got {allocate!r}",
        )
    base = replace(instance, utility="sum_rate")
    weight = np.asarray(instance.weight, dtype=np.float64)
    powers: list[np.ndarray] = []
    rates: list[np.ndarray] = []
    # The scheduler's rule is the batched one of training through the frame, on one instance.
    one = torch.zeros(len(weight), dtype=torch.long)
    offset = torch.zeros(1, dtype=torch.float64)  # set after slot 1, before any slot reads it
    for slot in range(slots):
        if slot == 0:
            slot_instance = base
        else:
            served = np.mean(rates, axis=0)
            slot_weight = slot_weights(torch.from_numpy(weight), torch.from_numpy(served), float(alpha), offset, one, 1)
            slot_instance = replace(base, weight=slot_weight.numpy())
        answer = allocate(slot_instance)
        if not isinstance(answer, PowerAllocation):
            raise AllocationError("allocate", f"expected a PowerAllocation, got {type(answer).__name__}")
        answer.check(instance, "allocate.")
        violation = max_violation(instance, answer)
        if violation > PMAX_TOLERANCE:
            raise AllocationError("allocate.power", f"an answer is outside [0, pmax] (slot {slot + 1}: "
                                  f"{violation:.3g} of pmax)")
        powers.append(np.asarray(answer.power, dtype=np.float64))
        rates.append(allocation_rates(instance, answer))
        if slot == 0:
            # A layout where slot 1 serves nothing at all still gets a positive offset.
            offset = slot_offset(torch.from_numpy(rates[0]), one, 1)
    return PowerFrame(np.stack(powers), time_share), np.stack(rates)


def least_fair_time(instance: PowerInstance, frame: PowerFrame, p5_rate: float) -> float:
    r"""The least ``fair_time`` :math:`\lambda`, on a grid of :data:`FAIR_TIME_GRID` points refined by
    bisection, at which the 5th percentile of the frame's average rates (linear interpolation,
    as the score's ``rate_p5``) is at least ``p5_rate`` bits/s/Hz; 1 if no grid point reaches it.

    At :math:`\lambda` the rates are :math:`\bar r(\lambda) = r^{(1)} + \lambda\,(\tfrac1T
    \sum_t r^{(t)} - r^{(1)})` (:func:`frame_time_shares`), linear in :math:`\lambda`, and so is
    the sum rate: where slot 1's sum rate is at least the slots' mean (the usual case for a
    sum-rate instance, whose slot 1 is the allocator's own answer; not always, e.g. with unequal
    weights), the least :math:`\lambda` keeps the most sum rate that meets the target along the
    frame. The percentile need not be monotone in :math:`\lambda`: the first grid step that
    meets the target is bisected to :data:`FAIR_TIME_RESOLUTION` (to a crossing within it; a
    window narrower than the grid step can be missed).

    Raises:
        ValueError: naming ``instance`` or ``frame`` (of the wrong type) or ``p5_rate`` (a
            non-negative finite number).
        AllocationError: naming ``power`` or ``time_share`` (:meth:`PowerFrame.check`).
    """
    if not isinstance(instance, PowerInstance):
        raise InputError(f"instance: expected a PowerInstance, got {type(instance).__name__}")
    if not isinstance(frame, PowerFrame):
        raise InputError(f"frame: expected a PowerFrame, got {type(frame).__name__}")
    frame.check(instance)
    check_nonnegative("p5_rate", p5_rate)
    return _least_fair_time(slot_rates(instance, frame), p5_rate)[0]


def _least_fair_time(rates: np.ndarray, p5_rate: float) -> tuple[float, float]:
    """:func:`least_fair_time` from the slots' rates ``(T, K)``; also the 5th percentile there."""
    first, step = rates[0], rates.mean(axis=0) - rates[0]

    def p5(fair_time: np.ndarray) -> np.ndarray:
        return np.percentile(first + fair_time[:, None] * step, 5.0, axis=1)

    grid = np.linspace(0.0, 1.0, FAIR_TIME_GRID)
    reached = p5(grid)
    met = np.flatnonzero(reached >= p5_rate)
    if met.size == 0:
        return 1.0, float(reached[-1])
    if met[0] == 0:
        return 0.0, float(reached[0])
    low, high, at_high = float(grid[met[0] - 1]), float(grid[met[0]]), float(reached[met[0]])
    while high - low > FAIR_TIME_RESOLUTION:
        middle = 0.5 * (low + high)
        at_middle = float(p5(np.array([middle]))[0])
        if at_middle >= p5_rate:
            high, at_high = middle, at_middle
        else:
            low = middle
    return high, at_high


def solve_frame(
    instance: PowerInstance,
    allocate: Callable[[PowerInstance], PowerAllocation],
    method: str,
    *,
    slots: int = DEFAULT_SLOTS,
    alpha: float = 1.0,
    fair_time: float | None = None,
    p5_rate: float | None = None,
    max_slots: int | None = None,
) -> SolveResult:
    """:func:`proportional_fair_frame` as a method's answer: a :class:`SolveResult` whose
    allocation is the frame, named ``method``, timed over the whole frame (what ``allocate``
    loads before its first call, e.g. a model, is the caller's). No bound is proven.

    ``fair_time`` (default :data:`DEFAULT_FAIR_TIME`) sets the time shares; or ``p5_rate`` asks
    for the least ``fair_time`` whose 5th-percentile average rate is at least ``p5_rate``
    bits/s/Hz (:func:`least_fair_time`, per instance), not both. A target that even the fair
    frame alone (``fair_time`` 1) does not reach gives that frame, with a status that says so.
    ``max_slots``: the most slots the caller allows (each slot is one solve), e.g. a server's
    bound on the work of one request.

    Raises:
        ValueError, AllocationError: as :func:`proportional_fair_frame`, or naming ``p5_rate``
            (negative or not finite, or given with ``fair_time``), ``max_slots`` (not a positive
            integer) or ``slots`` (above ``max_slots``).
    """
    check_slot_cap(slots, max_slots)
    if p5_rate is not None:
        if fair_time is not None:
            raise InputError("p5_rate: give fair_time or p5_rate, not both")
        check_nonnegative("p5_rate", p5_rate)
    start = time.perf_counter()
    frame, rates = _proportional_fair_frame(
        instance, allocate, slots, alpha, DEFAULT_FAIR_TIME if fair_time is None else fair_time,
    )
    status = "ok"
    if p5_rate is not None:
        fair_time, reached = _least_fair_time(rates, p5_rate)
        frame = frame.with_fair_time(fair_time)
        if reached < p5_rate:
            status = f"p5_rate not reached: 5th percentile {reached:.4g} bits/s/Hz at fair_time 1"
    return SolveResult(frame, method, time.perf_counter() - start, status=status)
