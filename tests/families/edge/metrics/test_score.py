"""The edge family's score of whole allocations."""

import math

import numpy as np
import pytest

from gnnalloc.families.edge.metrics import score
from gnnalloc.families.edge.problem import Allocation, Instance


def test_score_reports_violation(tiny_dict):
    inst = Instance.from_dict(tiny_dict)
    x = np.zeros(inst.num_pairs)
    x[0] = 15.0  # s0 has compute 10: 50 % over
    report = score(inst, Allocation(x, np.zeros(inst.num_users)))
    assert report.max_violation == pytest.approx(0.5)
    ok = score(inst, Allocation(np.zeros(inst.num_pairs), np.zeros(inst.num_users)))
    assert ok.max_violation == 0.0
    assert ok.objective == pytest.approx(-20.0 * inst.weight.sum())


def test_score_names_a_malformed_allocation():
    from gnnalloc import random_instance
    from gnnalloc.families.edge.metrics import score
    from gnnalloc.families.edge.problem import AllocationError

    instance = random_instance(6, 2, 1.0, 0)
    good = Allocation(np.zeros(instance.num_pairs), np.ones(instance.num_users))
    with pytest.raises(AllocationError, match=r"^compute: expected shape"):
        score(instance, Allocation(np.zeros(2), np.ones(instance.num_users)))
    with pytest.raises(AllocationError, match="^bandwidth: must be finite"):
        score(instance, Allocation(np.zeros(instance.num_pairs), np.full(instance.num_users, np.nan)))
    with pytest.raises(AllocationError, match=r"^reference\.compute"):
        score(instance, good, reference=Allocation(np.zeros(1), np.ones(instance.num_users)))
    assert math.isfinite(score(instance, good).objective)


def test_score_turns_an_upper_bound_into_a_gap_bound():
    from gnnalloc import random_instance
    from gnnalloc.families.edge.metrics import score

    instance = random_instance(6, 2, 1.0, 0)
    allocation = Allocation(np.zeros(instance.num_pairs), np.ones(instance.num_users))
    objective = score(instance, allocation).objective
    assert score(instance, allocation).gap_bound is None
    report = score(instance, allocation, upper_bound=objective + 3.0 * instance.weight.sum())
    assert report.gap_bound == pytest.approx(3.0)
    # An infinite bound proves nothing; a bound below the objective (round-off) proves gap 0.
    assert score(instance, allocation, upper_bound=math.inf).gap_bound is None
    assert score(instance, allocation, upper_bound=objective - 1e-12).gap_bound == 0.0
    for bad in (math.nan, "1", True):
        with pytest.raises(ValueError, match="^upper_bound: must be a number"):
            score(instance, allocation, upper_bound=bad)
