import math

import numpy as np
import pytest
import torch

from gnnalloc.metrics import (
    jain_index,
    met_minimum_share,
    satisfaction,
    score,
    utility_gap,
    weighted_utility_variance,
)
from gnnalloc.problem import Allocation, Instance


def test_jain_textbook_example():
    # Four users with benefit 2 and six with benefit 1.
    values = torch.tensor([2.0] * 4 + [1.0] * 6)
    assert jain_index(values).item() == pytest.approx(0.8909, abs=1e-4)


def test_jain_bounds():
    assert jain_index(torch.ones(7)).item() == pytest.approx(1.0)
    assert jain_index(torch.tensor([1.0, 0, 0, 0])).item() == pytest.approx(0.25)
    assert jain_index(torch.zeros(3)).item() == 1.0


def test_jain_matches_reference_formula():
    rng = np.random.default_rng(0)
    v = rng.random(100)
    assert jain_index(torch.from_numpy(v)).item() == pytest.approx(v.sum() ** 2 / (100 * (v**2).sum()))


def test_satisfaction_and_met_share():
    X = torch.tensor([2.0, 1.0, 0.5])
    y = torch.tensor([2.0, 4.0, 4.0])
    m = torch.ones(3)
    assert satisfaction(X, y, m, m).tolist() == pytest.approx([2.0, 2.0, math.sqrt(2.0)])
    assert met_minimum_share(X, y, m, m).item() == pytest.approx(2 / 3)


def test_gap_and_variance():
    u = torch.tensor([1.0, 2.0])
    ref = torch.tensor([2.0, 2.0])
    w = torch.tensor([1.0, 3.0])
    assert utility_gap(u, ref, w).item() == pytest.approx(0.25)
    assert weighted_utility_variance(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])).item() == 1.0


def test_score_reports_violation(tiny_dict):
    inst = Instance.from_dict(tiny_dict)
    x = np.zeros(inst.num_pairs)
    x[0] = 15.0  # s0 has compute 10: 50 % over
    report = score(inst, Allocation(x, np.zeros(inst.num_users)))
    assert report.max_violation == pytest.approx(0.5)
    ok = score(inst, Allocation(np.zeros(inst.num_pairs), np.zeros(inst.num_users)))
    assert ok.max_violation == 0.0
    assert ok.objective == pytest.approx(-20.0 * inst.weight.sum())


def test_scale_free_at_extreme_magnitudes():
    # Valid instances with capacities of 1e160 give satisfactions whose squares overflow.
    values = torch.tensor([2e160] * 4 + [1e160] * 6, dtype=torch.float64)
    assert jain_index(values).item() == pytest.approx(14**2 / (10 * 22))
    q = satisfaction(
        *(torch.tensor([v], dtype=torch.float64) for v in (1e200, 1e200, 1e-10, 1e-10))
    )
    assert torch.isfinite(q).all()


def test_gap_with_no_users_is_zero():
    empty = torch.zeros(0, dtype=torch.float64)
    assert utility_gap(empty, empty, empty).item() == 0.0


def test_score_names_a_malformed_allocation():
    from gnnalloc import random_instance
    from gnnalloc.metrics import score
    from gnnalloc.problem import AllocationError

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
    from gnnalloc.metrics import score

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
