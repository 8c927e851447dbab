"""The family as the engine sees it: registry, dispatch, score and ranges."""

from __future__ import annotations

import math

import pytest
from _sfl_fixtures import small_doc

from gnnalloc.core import InstanceError, ProblemFamily, Score, family_for_format, get_family, parse_instance, solve
from gnnalloc.families.sfl import FAMILY, SflInstance, random_sfl


def test_registered_and_implements_the_protocol():
    assert isinstance(FAMILY, ProblemFamily)
    assert get_family("sfl") is FAMILY
    assert family_for_format("gnnalloc.sfl-allocation/v1") is FAMILY
    assert FAMILY.default_checkpoint.name == "sfl.ckpt"
    assert FAMILY.default_checkpoint.parent.name == "checkpoints"
    assert set(FAMILY.methods) == {"exact", "equal", "proportional", "gnn"}
    assert FAMILY.methods[FAMILY.reference_method].kind == "reference"
    FAMILY.instance_schema.model_validate(small_doc())


def test_solve_dispatches_and_the_exact_bound_certifies():
    instance = parse_instance(small_doc())
    exact = solve(instance)
    assert exact.method == "exact" and exact.certified_optimal and exact.status == "optimal"
    report = FAMILY.score(instance, exact.allocation, upper_bound=exact.upper_bound)
    assert isinstance(report, Score)
    assert 0 <= report.gap_bound <= 1e-8 * report.max_latency
    baseline = solve(instance, "equal")
    report = FAMILY.score(instance, baseline.allocation, exact.allocation, exact.upper_bound)
    assert report.ratio_to_reference >= 1.0 and report.gap >= 0.0
    assert report.gap_bound >= report.gap
    assert dict(report.rows())["max violation"] == "0"
    assert set(report.as_dict()) >= {"objective", "gap", "gap_bound", "max_violation", "max_latency", "mean_latency"}
    with pytest.raises(ValueError, match="tolerance"):
        solve(instance, "exact", iterations=3)


def test_weighted_sum_gets_a_proven_but_loose_bound():
    doc = small_doc()
    doc["objective"] = "weighted_sum"
    doc["clients"][0]["weight"] = 3.0
    instance = SflInstance.from_dict(doc)
    result = solve(instance)
    report = FAMILY.score(instance, result.allocation, upper_bound=result.upper_bound)
    assert not result.certified_optimal
    assert report.objective <= result.upper_bound
    assert report.gap_bound > 0


def test_documents_round_trip_through_the_family():
    instance = random_sfl(8, 2)
    assert FAMILY.dump_instance(FAMILY.parse_instance(FAMILY.dump_instance(instance))) == instance.to_dict()
    allocation = solve(instance, "proportional").allocation
    again = FAMILY.parse_allocation(instance, FAMILY.dump_allocation(instance, allocation))
    assert (again.share == allocation.share).all()
    assert FAMILY.size(instance) == 8


def test_ranges_name_the_field():
    instance = SflInstance.from_dict(small_doc())
    FAMILY.check_ranges(instance, FAMILY.value_ranges)
    with pytest.raises(InstanceError) as info:
        FAMILY.check_ranges(instance, {**FAMILY.value_ranges, "clients.gain": (1e-11, 1.0)})
    assert info.value.field == "clients[0].gain"
    with pytest.raises(InstanceError) as info:
        FAMILY.check_ranges(instance, {"server.cpu": (1.0, 1e9)})
    assert info.value.field == "server.cpu"


@pytest.mark.parametrize("field", ["allocation", "reference"])
def test_score_names_an_answer_of_the_wrong_type(field):
    from gnnalloc.core import AllocationError, score

    instance = random_sfl(3, 0)
    answers = {"allocation": solve(instance, "equal").allocation, "reference": None, field: "x"}
    # Was an AttributeError traceback.
    with pytest.raises(AllocationError, match=rf"^{field}: expected an SflAllocation, got str"):
        score(instance, answers["allocation"], answers["reference"])


@pytest.mark.parametrize("bound", [float("nan"), "x"])
def test_score_checks_the_upper_bound_as_power_does(bound):
    from gnnalloc.core import score

    instance = random_sfl(3, 0)
    allocation = solve(instance, "equal").allocation
    # nan gave gap_bound nan; "x" an unnamed "could not convert string to float".
    with pytest.raises(ValueError, match=r"^upper_bound: must be a number"):
        score(instance, allocation, None, bound)
    assert score(instance, allocation, None, -1.0).gap_bound == -1.0 - score(instance, allocation).objective


def test_an_infinite_upper_bound_gives_no_gap_bound():
    """As in the other families: an infinite bound proves nothing (it gave gap_bound inf)."""
    from gnnalloc.core import score

    instance = random_sfl(3, 0)
    assert score(instance, solve(instance, "equal").allocation, None, math.inf).gap_bound is None
