"""Proportional-fair time sharing: time shares, slot weights, average rates, the frame's slots, and
named errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gnnalloc.core import AllocationError, solve
from gnnalloc.families.power import (
    PowerAllocation, PowerFrame, PowerInstance, allocation_rates, d2d, fair_time_rates, frame_rates,
    frame_time_shares, full_power, least_fair_time, proportional_fair_frame, wmmse,
)
from gnnalloc.families.power._frame import MAX_WEIGHT_RATIO, RATE_OFFSET_FRACTION, slot_weights


def _slot_weights(weight: np.ndarray, served: np.ndarray, alpha: float, offset: float) -> np.ndarray:
    """:func:`slot_weights` of one instance, on arrays."""
    return slot_weights(torch.from_numpy(weight), torch.from_numpy(served), alpha,
                        torch.tensor([offset], dtype=torch.float64), torch.zeros(len(weight), dtype=torch.long), 1).numpy()


def _wmmse(instance: PowerInstance) -> PowerAllocation:
    return wmmse(instance).allocation


def test_time_shares_sum_to_one_and_span_the_allocator_to_the_fair_frame():
    np.testing.assert_allclose(frame_time_shares(4, 0.0), [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(frame_time_shares(4, 1.0), [0.25] * 4)
    np.testing.assert_allclose(frame_time_shares(4, 0.2), [0.85, 0.05, 0.05, 0.05])
    np.testing.assert_allclose(frame_time_shares(1, 0.7), [1.0])


@pytest.mark.parametrize(("args", "field"), [
    ((0, 0.2), "slots"), ((2.5, 0.2), "slots"), ((4, -0.1), "fair_time"), ((4, 1.5), "fair_time"),
    ((4, float("nan")), "fair_time"), ((4, True), "fair_time"),
])
def test_time_shares_name_the_bad_argument(args, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        frame_time_shares(*args)


def test_slot_weights_favour_the_links_served_least():
    weight = np.array([1.0, 2.0, 1.0, 1.0])
    served = np.array([0.0, 1.0, 1.0, 4.0])
    w = _slot_weights(weight, served, 1.0, 0.01)
    assert w.mean() == pytest.approx(weight.mean())
    expected = weight / (served + 0.01)
    np.testing.assert_allclose(w, expected * weight.mean() / expected.mean())
    # alpha 0: the instance's own weights; a steep alpha stays finite and within the ratio cap.
    np.testing.assert_allclose(_slot_weights(weight, served, 0.0, 0.01), weight)
    steep = _slot_weights(weight, served, 100.0, 1e-3)
    assert np.isfinite(steep).all() and steep.argmax() == 0
    assert steep.max() / steep.min() == pytest.approx(MAX_WEIGHT_RATIO)


def test_slot_weights_of_a_batch_are_each_instances_own():
    rng = np.random.default_rng(3)
    sizes = [5, 1, 9]
    weights = [np.exp(rng.uniform(-2, 2, k)) for k in sizes]
    served = [rng.exponential(1.0, k) * (rng.random(k) < 0.7) for k in sizes]
    offsets = [1e-3, 0.2, 1e-6]
    batch = torch.cat([torch.full((k,), i) for i, k in enumerate(sizes)])
    together = slot_weights(torch.from_numpy(np.concatenate(weights)), torch.from_numpy(np.concatenate(served)), 1.5,
                            torch.tensor(offsets, dtype=torch.float64), batch, len(sizes)).numpy()
    alone = np.concatenate([_slot_weights(w, r, 1.5, o) for w, r, o in zip(weights, served, offsets)])
    np.testing.assert_allclose(together, alone, rtol=1e-14)


def test_frame_rates_are_the_time_shared_average():
    instance = d2d(12, seed=4)
    powers = np.stack([instance.pmax, 0.5 * instance.pmax, np.where(np.arange(12) % 2 == 0, instance.pmax, 0.0)])
    frame = PowerFrame(powers, np.array([0.5, 0.3, 0.2]))
    expected = sum(s * allocation_rates(instance, PowerAllocation(p)) for s, p in zip(frame.time_share, powers))
    np.testing.assert_allclose(frame_rates(instance, frame), expected, rtol=1e-12)
    assert frame.slots == 3


def test_the_trade_off_mixes_the_same_slot_rates():
    instance = d2d(12, seed=4)
    frame = proportional_fair_frame(instance, _wmmse, slots=4)
    fair_times = [0.0, 0.25, 1.0]
    front = fair_time_rates(instance, frame, fair_times)
    np.testing.assert_array_equal(fair_time_rates(instance, frame, np.array(fair_times)), front)
    assert front.shape == (3, 12)
    for row, fair_time in zip(front, fair_times):
        np.testing.assert_allclose(row, frame_rates(instance, frame.with_fair_time(fair_time)), rtol=1e-12)
    with pytest.raises(ValueError, match="^fair_time:"):
        fair_time_rates(instance, frame, [0.5, 1.5])
    for bad in (0.5, [], None, "0.5"):
        with pytest.raises(ValueError, match="^fair_times:"):
            fair_time_rates(instance, frame, bad)
    with pytest.raises(AllocationError) as error:
        fair_time_rates(d2d(11, seed=4), frame, fair_times)
    assert error.value.field == "power"


@pytest.mark.parametrize(("power", "share", "field"), [
    (np.ones((2, 11)), [0.5, 0.5], "power"),
    (np.ones(12), [1.0], "power"),
    (np.full((2, 12), np.nan), [0.5, 0.5], "power"),
    (np.ones((2, 12)), [0.5, 0.4], "time_share"),
    (np.ones((2, 12)), [1.5, -0.5], "time_share"),
    (np.ones((2, 12)), [1.0], "time_share"),
    ([[1.0] * 12, [1.0] * 11], [0.5, 0.5], "power"),
    (np.ones((2, 12), dtype=complex), [0.5, 0.5], "power"),
    (np.ones((2, 12)), ["a", "b"], "time_share"),
])
def test_bad_frames_name_the_field(power, share, field):
    instance = d2d(12, seed=4)
    with pytest.raises(AllocationError) as error:
        frame_rates(instance, PowerFrame(power, np.array(share)))
    assert error.value.field == field


def test_the_slots_are_the_allocators_answers_to_proportional_fair_weights():
    instance = d2d(16, seed=5, utility="alpha_fair")  # each slot is a weighted sum rate instead
    seen: list[PowerInstance] = []

    def allocate(slot: PowerInstance) -> PowerAllocation:
        seen.append(slot)
        return _wmmse(slot)

    frame = proportional_fair_frame(instance, allocate, slots=3, alpha=1.0, fair_time=0.3)
    assert len(seen) == 3 and all(s.utility == "sum_rate" for s in seen)
    np.testing.assert_allclose(seen[0].weight, instance.weight)
    np.testing.assert_allclose(frame.power[0], _wmmse(seen[0]).power)
    np.testing.assert_allclose(frame.time_share, frame_time_shares(3, 0.3))
    # Slot 3's weights come from the mean rate over slots 1 and 2.
    rates = [allocation_rates(instance, PowerAllocation(p)) for p in frame.power[:2]]
    offset = RATE_OFFSET_FRACTION * rates[0].mean()
    np.testing.assert_allclose(seen[2].weight, _slot_weights(instance.weight, np.mean(rates, axis=0), 1.0, offset))


def test_the_fair_frame_serves_the_links_the_sum_rate_answer_switches_off():
    instance = d2d(30, seed=6)
    frame = proportional_fair_frame(instance, _wmmse, slots=8, alpha=1.0, fair_time=1.0)
    alone = allocation_rates(instance, PowerAllocation(frame.power[0]))
    shared = frame_rates(instance, frame)
    assert (alone < 1e-6).sum() >= 5  # the sum-rate answer switches links off here
    assert (shared < 1e-6).sum() < (alone < 1e-6).sum()
    assert np.percentile(shared, 5) > np.percentile(alone, 5)
    # fair_time 0 is the allocator's own answer; the slots do not change with it.
    own = frame.with_fair_time(0.0)
    np.testing.assert_allclose(own.time_share, frame_time_shares(8, 0.0))
    np.testing.assert_allclose(frame_rates(instance, own), alone)


def _unequal(instance: PowerInstance) -> PowerInstance:
    return replace(instance, weight=np.geomspace(0.2, 5.0, instance.num_links))


@pytest.mark.parametrize("spread", ["unequal", "beyond the ratio cap"])
def test_alpha_zero_repeats_the_first_slot_with_the_instances_weights(spread):
    instance = _unequal(d2d(10, seed=7))
    if spread != "unequal":
        instance = replace(instance, weight=np.array([1e60, 1e-60] * 5))
    seen: list[np.ndarray] = []

    def allocate(slot: PowerInstance) -> PowerAllocation:
        seen.append(slot.weight)
        return _wmmse(slot)

    frame = proportional_fair_frame(instance, allocate, slots=3, alpha=0.0)
    for slot in (1, 2):
        np.testing.assert_array_equal(seen[slot], instance.weight)
        np.testing.assert_allclose(frame.power[slot], frame.power[0])


def test_the_slot_weights_carry_the_instances_weights():
    instance = _unequal(d2d(12, seed=9))
    seen: list[np.ndarray] = []

    def allocate(slot: PowerInstance) -> PowerAllocation:
        seen.append(slot.weight)
        return full_power(slot).allocation  # the same rates in every slot

    proportional_fair_frame(instance, allocate, slots=2, alpha=1.0)
    served = allocation_rates(instance, full_power(instance).allocation)
    expected = instance.weight / (served + RATE_OFFSET_FRACTION * served.mean())
    np.testing.assert_allclose(seen[1], expected * instance.weight.mean() / expected.mean())


@pytest.mark.parametrize("weight", [None, np.array([1e60, 1e-60] * 5)])
def test_steep_alphas_and_extreme_weights_stay_valid_instances(weight):
    instance = d2d(10, seed=2)
    if weight is not None:
        instance = replace(instance, weight=weight)
    frame = proportional_fair_frame(instance, _wmmse, slots=3, alpha=100.0)
    assert np.isfinite(frame_rates(instance, frame)).all()


def test_the_learned_allocator_fills_the_frame():
    instance = d2d(20, seed=8)
    frame = proportional_fair_frame(instance, lambda i: solve(i, method="gnn").allocation, slots=6, fair_time=1.0)
    alone = allocation_rates(instance, PowerAllocation(frame.power[0]))
    assert frame.power.shape == (6, 20)
    assert (frame.power >= 0).all() and (frame.power <= instance.pmax * (1 + 1e-12)).all()
    assert (frame_rates(instance, frame) < 1e-6).sum() < (alone < 1e-6).sum()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"slots": 0}, "slots"), ({"slots": 10**12}, "slots"), ({"alpha": -1.0}, "alpha"), ({"alpha": float("inf")}, "alpha"),
    ({"alpha": 101.0}, "alpha"), ({"fair_time": 2.0}, "fair_time"), ({"allocate": "wmmse"}, "allocate"),
    ({"instance": {"format": "gnnalloc.power/v1"}}, "instance"),
])
def test_bad_arguments_are_named(kwargs, field):
    options = {"instance": d2d(6, seed=1), "allocate": lambda i: full_power(i).allocation, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}:"):
        proportional_fair_frame(**options)


@pytest.mark.parametrize(("answer", "field"), [
    (lambda i: i.pmax, "allocate"), (lambda i: PowerAllocation(i.pmax[:-1]), "allocate.power"),
    (lambda i: PowerAllocation(np.full(i.num_links, np.inf)), "allocate.power"),
    (lambda i: PowerAllocation(1.01 * i.pmax), "allocate.power"),
    (lambda i: PowerAllocation(-0.1 * i.pmax), "allocate.power"),
])
def test_bad_answers_of_the_allocator_are_named(answer, field):
    with pytest.raises(AllocationError) as error:
        proportional_fair_frame(d2d(6, seed=1), answer, slots=2)
    assert error.value.field == field


def test_least_fair_time_meets_the_rate_target_with_the_least_time():
    """The least fair_time whose 5th-percentile average rate reaches the target: met there, not
    met a resolution step before, and the sum rate it keeps is the most along the frame."""
    instance = d2d(40, 17)
    frame = proportional_fair_frame(instance, _wmmse, slots=8)
    fair = frame_rates(instance, frame.with_fair_time(1.0))
    for target in (0.25 * np.percentile(fair, 5), 0.5 * np.percentile(fair, 5)):
        fair_time = least_fair_time(instance, frame, target)
        assert 0.0 < fair_time < 1.0
        assert np.percentile(frame_rates(instance, frame.with_fair_time(fair_time)), 5) >= target
        assert np.percentile(frame_rates(instance, frame.with_fair_time(fair_time - 2e-6)), 5) < target
    assert least_fair_time(instance, frame, 0.0) == 0.0
    assert least_fair_time(instance, frame, 1e3) == 1.0  # out of reach: the fair frame alone
    for bad in (-0.1, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="^p5_rate:"):
            least_fair_time(instance, frame, bad)


def test_a_frame_method_can_aim_at_a_rate_for_95_percent_of_the_links():
    instance = d2d(30, 5)
    result = solve(instance, "wmmse_frame", p5_rate=0.2, slots=6)
    frame = proportional_fair_frame(instance, _wmmse, slots=6)
    expected = least_fair_time(instance, frame, 0.2)
    np.testing.assert_array_equal(result.allocation.time_share, frame_time_shares(6, expected))
    assert np.percentile(frame_rates(instance, result.allocation), 5) >= 0.2
    with pytest.raises(ValueError, match="^p5_rate: give fair_time or p5_rate"):
        solve(instance, "wmmse_frame", p5_rate=0.2, fair_time=0.1)
    with pytest.raises(ValueError, match="^p5_rate:"):
        solve(instance, "wmmse_frame", p5_rate=-1.0)


def test_least_fair_time_on_degenerate_frames():
    instance = d2d(4, 2)
    frame = proportional_fair_frame(instance, _wmmse, slots=1)
    rate = np.percentile(frame_rates(instance, frame), 5)
    assert least_fair_time(instance, frame, rate) == 0.0  # one slot: every fair_time is the same
    assert least_fair_time(instance, frame, rate + 1.0) == 1.0
    silent = PowerFrame(power=np.zeros((3, 4)), time_share=frame_time_shares(3, 0.5))
    assert least_fair_time(instance, silent, 0.0) == 0.0 and least_fair_time(instance, silent, 1e-9) == 1.0
    single = d2d(1, 3)  # one link: its own rate is every percentile
    alone = proportional_fair_frame(single, _wmmse, slots=2)
    assert least_fair_time(single, alone, float(frame_rates(single, alone)[0])) == 0.0
    with pytest.raises(ValueError, match="^instance:"):
        least_fair_time("instance", frame, 0.1)
    with pytest.raises(ValueError, match="^frame:"):
        least_fair_time(instance, PowerAllocation(np.ones(4)), 0.1)


def test_a_rate_target_out_of_reach_is_said_in_the_status():
    instance = d2d(12, 4)
    result = solve(instance, "wmmse_frame", p5_rate=1e3, slots=3)
    np.testing.assert_array_equal(result.allocation.time_share, frame_time_shares(3, 1.0))
    assert result.status.startswith("p5_rate not reached: 5th percentile ")
    assert solve(instance, "wmmse_frame", p5_rate=0.0, slots=3).status == "ok"
