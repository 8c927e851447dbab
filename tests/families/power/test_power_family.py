"""The score report and the family object the engine sees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gnnalloc.core import (
    AllocationError, InstanceError, ProblemFamily, Score, family_for_format, family_of, get_family,
    load_instance,
)
from gnnalloc.families.power import (
    FAMILY, PowerAllocation, PowerInstance, gaussian, optimum, save_power_instance, score, wmmse,
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
    assert set(FAMILY.methods) == {"wmmse", "fp", "full_power", "greedy", "optimum", "gnn"}
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
