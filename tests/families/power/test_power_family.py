"""The score report and the family object the engine sees."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from gnnalloc.core import (
    AllocationError, InstanceError, ProblemFamily, Score, family_for_format, family_of, get_family,
    load_instance,
)
from gnnalloc.families.power import (
    FAMILY, FRAME_FORMAT, MAX_SLOTS, PowerAllocation, PowerFrame, PowerInstance, gaussian, load_power_allocation, optimum,
    save_power_allocation, save_power_instance, score, wmmse,
)


def _two_links(utility: str = "sum_rate") -> PowerInstance:
    gains = np.array([[0.8, 0.1], [0.2, 0.5]])
    return PowerInstance.build(("a", "b"), np.array([1.0, 2.0]), gains, 0.1, np.array([2.0, 1.0]),
                               np.array([0.5, 4.0]), utility, 1.0, 10.0)


def test_score_against_a_hand_computation():
    instance = _two_links()
    report = score(instance, PowerAllocation(power=np.array([1.0, 0.5])))
    r0, r1 = math.log2(1 + 0.8 / 0.15), math.log2(1 + 0.25 / 0.3)
    assert report.objective == pytest.approx(2 * r0 + r1)
    assert report.sum_rate == pytest.approx(r0 + r1)
    assert report.mean_rate == pytest.approx((r0 + r1) / 2)
    assert report.min_rate == pytest.approx(r1)
    assert report.rate_p5 == pytest.approx(r1 + 0.05 * (r0 - r1))
    assert report.jain == pytest.approx((r0 + r1) ** 2 / (2 * (r0 * r0 + r1 * r1)))
    assert report.geomean_rate == pytest.approx(math.sqrt(r0 * r1))
    assert report.links_off == 0 and report.max_violation == 0.0
    assert report.gap is None and report.gap_bound is None
    assert isinstance(report, Score)


def test_alpha_fair_objective_uses_the_kernel():
    instance = _two_links("alpha_fair")
    report = score(instance, PowerAllocation(power=np.array([1.0, 0.5])))
    r0, r1 = math.log2(1 + 0.8 / 0.15), math.log2(1 + 0.25 / 0.3)
    # link a above its minimum 0.5: 2 ln(r/0.5); link b below 4: 10 (r - 4) / 4
    assert report.objective == pytest.approx(2 * math.log(r0 / 0.5) + 10 * (r1 - 4) / 4)


def test_gaps_violations_and_switched_off_links():
    instance = _two_links()
    good = PowerAllocation(power=np.array([1.0, 0.0]))
    bad = PowerAllocation(power=np.array([1.5, -0.2]))
    report = score(instance, bad, reference=good, upper_bound=10.0)
    assert report.max_violation == pytest.approx(0.5)
    assert report.links_off == 1  # a negative power sends nothing
    best = score(instance, good)
    assert report.gap == pytest.approx((best.objective - report.objective) / 3.0)
    assert report.gap_bound == pytest.approx((10.0 - report.objective) / 3.0)
    assert score(instance, good, upper_bound=math.inf).gap_bound is None
    with pytest.raises(ValueError, match="^upper_bound:"):
        score(instance, good, upper_bound=float("nan"))
    with pytest.raises(AllocationError, match=r"^reference\.power:"):
        score(instance, good, reference=PowerAllocation(power=np.array([1.0])))
    with pytest.raises(AllocationError, match=r"^power:"):
        score(instance, PowerAllocation(power=np.array([1.0, np.inf])))


def test_a_frame_is_scored_on_its_average_rates():
    """Two slots at 3/4 and 1/4: each link's rate is the time-weighted mean of its slot rates,
    the objective the utility of those means, and a link is off only if off in every timed slot."""
    instance = _two_links()
    frame = PowerFrame(power=np.array([[1.0, 0.0], [0.0, 0.5], [0.0, 3.0]]), time_share=np.array([0.75, 0.25, 0.0]))
    report = score(instance, frame, reference=PowerAllocation(power=np.array([1.0, 0.0])))
    a, b = 0.75 * math.log2(1 + 0.8 / 0.1), 0.25 * math.log2(1 + 0.25 / 0.1)
    assert report.objective == pytest.approx(2 * a + b)
    assert report.sum_rate == pytest.approx(a + b) and report.min_rate == pytest.approx(b)
    assert report.gap == pytest.approx((2 * math.log2(9.0) - 2 * a - b) / 3.0)
    assert report.slots == 3 and report.links_off == 0
    assert report.max_violation == pytest.approx(0.5)  # 3.0 against b's pmax 2.0, in an untimed slot
    assert ("time-shared slots (rates are frame averages)", "3") in report.rows()
    silent = PowerFrame(power=np.array([[1.0, 0.0], [0.0, 0.0]]), time_share=np.array([0.5, 0.5]))
    assert score(instance, silent).links_off == 1
    untimed = PowerFrame(power=np.array([[1.0, 0.0], [0.0, 2.0]]), time_share=np.array([1.0, 0.0]))
    assert score(instance, untimed).links_off == 1  # b transmits only in a slot with no time
    # Powers that overflow the rates count only where they send: in a slot without time they
    # are a violation, in a timed one a named error.
    huge = PowerFrame(power=np.array([[1.0, 0.0], [1.7e308, 1.7e308]]), time_share=np.array([1.0, 0.0]))
    assert score(instance, huge).objective == pytest.approx(2 * math.log2(9.0))
    with pytest.raises(AllocationError, match=r"^power: .*link 'a' in slot 2"):
        score(instance, replace(huge, time_share=np.array([0.5, 0.5])))
    # Slots are numbered as in the frame, whichever have time.
    later = PowerFrame(power=np.array([[1.0, 0.0], [0.0, 0.5], [1.7e308, 0.0]]), time_share=np.array([0.0, 0.5, 0.5]))
    with pytest.raises(AllocationError, match=r"^power: .*link 'a' in slot 3"):
        score(instance, later)
    assert score(instance, PowerAllocation(power=np.array([1.0, 0.5]))).slots == 1
    with pytest.raises(AllocationError, match=r"^reference\.time_share:"):
        score(instance, frame, reference=PowerFrame(power=frame.power, time_share=np.array([0.5, 0.25, 0.0])))


def test_frame_documents_round_trip_and_name_bad_fields(tmp_path):
    instance = _two_links()
    frame = PowerFrame(power=np.array([[1.0, 0.0], [0.1 + 0.2, 0.5]]), time_share=np.array([0.7, 0.3]))
    document = FAMILY.dump_allocation(instance, frame)
    assert document["format"] == FRAME_FORMAT and document["slots"][0]["links"][0] == {"id": "a", "power": 1.0}
    back = FAMILY.parse_allocation(instance, json.loads(json.dumps(document)))
    assert isinstance(back, PowerFrame)
    assert np.array_equal(back.power, frame.power) and np.array_equal(back.time_share, frame.time_share)
    save_power_allocation(instance, frame, tmp_path / "f.json")
    assert np.array_equal(load_power_allocation(instance, tmp_path / "f.json").power, frame.power)
    one = FAMILY.parse_allocation(instance, FAMILY.dump_allocation(instance, PowerAllocation(np.array([1.0, 0.5]))))
    assert isinstance(one, PowerAllocation)

    def slot(share, powers=(1.0, 0.5)):
        return {"time_share": share, "links": [{"id": "a", "power": powers[0]}, {"id": "b", "power": powers[1]}]}

    bad = [
        ({"format": "gnnalloc.power-frames/v1", "slots": [slot(1.0)]}, "format"),
        ({"format": FRAME_FORMAT}, "slots"),
        ({"format": FRAME_FORMAT, "slots": []}, "slots"),
        ({"format": FRAME_FORMAT, "slots": [slot(1.0 / (MAX_SLOTS + 1))] * (MAX_SLOTS + 1)}, "slots"),
        ({"format": FRAME_FORMAT, "slots": {"0": slot(1.0)}}, "slots"),
        ({"format": FRAME_FORMAT, "slots": [slot(1.0)], "extra": 1}, "extra"),
        ({"format": FRAME_FORMAT, "slots": [slot(0.5), slot(0.4)]}, "slots"),
        ({"format": FRAME_FORMAT, "slots": [slot(1.2), slot(-0.2)]}, "slots[1].time_share"),
        ({"format": FRAME_FORMAT, "slots": [slot(0.5), slot("half")]}, "slots[1].time_share"),
        ({"format": FRAME_FORMAT, "slots": [slot(0.5), {"links": slot(0.5)["links"]}]}, "slots[1].time_share"),
        ({"format": FRAME_FORMAT, "slots": [slot(0.5), dict(slot(0.5), power=1)]}, "slots[1].power"),
        ({"format": FRAME_FORMAT, "slots": [slot(0.5), 0.5]}, "slots[1]"),
        ({"format": FRAME_FORMAT, "slots": [slot(0.5), slot(0.5, (1.0, "x"))]}, "slots[1].links[1].power"),
        ({"format": FRAME_FORMAT, "slots": [slot(0.5), slot(0.5, (1.0, float("nan")))]}, "slots[1].links[1].power"),
        ({"format": FRAME_FORMAT, "slots": [slot(1.0) | {"links": slot(1.0)["links"][:1]}]}, "slots[0].links"),
    ]
    for data, field in bad:
        with pytest.raises(AllocationError) as caught:
            FAMILY.parse_allocation(instance, data)
        assert caught.value.field == field, (data, caught.value)
    assert FAMILY.parse_allocation(instance, {"format": FRAME_FORMAT, "slots": [slot(0.333), slot(0.333), slot(0.334)]}).slots == 3


def test_rows_render_every_metric():
    instance = gaussian(5, seed=0)
    result = optimum(gaussian(3, seed=0))
    rows = dict(FAMILY.score(gaussian(3, seed=0), result.allocation, upper_bound=result.upper_bound).rows())
    assert "proven gap bound (per unit weight)" in rows and "links switched off" in rows
    as_dict = score(instance, wmmse(instance).allocation).as_dict()
    assert set(as_dict) >= {"objective", "gap", "gap_bound", "max_violation", "sum_rate", "jain", "rate_p5"}


def test_the_family_implements_the_protocol():
    assert isinstance(FAMILY, ProblemFamily)
    assert get_family("power") is FAMILY
    assert family_for_format("gnnalloc.power/v1") is FAMILY
    assert family_for_format("gnnalloc.power-allocation/v1") is FAMILY
    instance = gaussian(4)
    assert family_of(instance) is FAMILY and FAMILY.size(instance) == 4
    assert FAMILY.methods["wmmse"].kind == "reference" and FAMILY.reference_method == "wmmse"
    assert set(FAMILY.methods) == {"wmmse", "fp", "full_power", "greedy", "optimum", "gnn", "gnn_frame", "wmmse_frame"}
    assert set(FAMILY.generators) == {"gaussian", "d2d"}
    assert FAMILY.default_checkpoint is not None and FAMILY.default_checkpoint.name == "power.ckpt"
    assert FAMILY.default_checkpoint.parent.name == "checkpoints"
    schema = FAMILY.instance_schema.model_json_schema()
    assert "links" in schema["properties"] and "gain_matrix" in schema["properties"]
    FAMILY.instance_schema.model_validate(instance.to_dict())
    FAMILY.instance_schema.model_validate(instance.to_dict(dense=True))


def test_family_parse_and_dump(tmp_path):
    instance = gaussian(3, seed=1)
    again = FAMILY.parse_instance(FAMILY.dump_instance(instance))
    assert np.array_equal(again.gain_matrix(), instance.gain_matrix())
    allocation = wmmse(instance).allocation
    back = FAMILY.parse_allocation(instance, FAMILY.dump_allocation(instance, allocation))
    assert np.array_equal(back.power, allocation.power)
    path = tmp_path / "power.json"
    save_power_instance(instance, path)
    assert isinstance(load_instance(path), PowerInstance)  # the format chooses the family


def test_check_ranges_names_the_field():
    instance = gaussian(3, seed=0)
    FAMILY.check_ranges(instance, FAMILY.value_ranges)
    tight = dict(FAMILY.value_ranges, gain=(0.5, 10.0))
    with pytest.raises(InstanceError, match=r"^(links\[\d\]\.gain|interference\[\d+\]\.gain):"):
        FAMILY.check_ranges(instance, tight)
    with pytest.raises(InstanceError, match=r"^noise:"):
        FAMILY.check_ranges(instance, dict(FAMILY.value_ranges, noise=(1.0, 2.0)))
    with pytest.raises(InstanceError, match=r"^links\[0\]\.pmax:"):
        FAMILY.check_ranges(instance, dict(FAMILY.value_ranges, pmax=(2.0, 3.0)))


@pytest.mark.parametrize("field", ["allocation", "reference"])
def test_score_names_an_answer_of_the_wrong_type(field):
    from gnnalloc.core import score as score_any

    instance = gaussian(3)
    answers = {"allocation": PowerAllocation(instance.pmax.copy()), "reference": None, field: "x"}
    # Was an AttributeError traceback ('str' object has no attribute 'check').
    with pytest.raises(AllocationError, match=rf"^{field}: expected a PowerAllocation or a PowerFrame, got str"):
        score_any(instance, answers["allocation"], answers["reference"])


@pytest.mark.parametrize("method,allocator", [("gnn", "x"), ("gnn_frame", 3)])
def test_learned_methods_name_an_allocator_of_the_wrong_type(method, allocator):
    from gnnalloc.core import solve

    # Was an AttributeError traceback once the model was used.
    with pytest.raises(ValueError, match=r"^allocator: expected a PowerAllocator"):
        solve(gaussian(3), method, allocator=allocator)
