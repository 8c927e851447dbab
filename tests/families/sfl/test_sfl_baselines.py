"""The equal and proportional baselines: feasible, never better than the certified optimum, and
named errors when their fixed shares cannot meet a budget."""

from __future__ import annotations

import numpy as np
import pytest
from _sfl_fixtures import small_doc

from gnnalloc.core import InstanceError
from gnnalloc.families.sfl import (
    SflInstance, equal_allocation, max_violation, proportional_allocation, random_sfl, round_costs,
    solve_exact,
)


@pytest.mark.parametrize("architecture", ["resnet18-cifar", "vit-cifar", "resnet18-imagenet"])
@pytest.mark.parametrize("size", [5, 40])
def test_baselines_are_feasible_and_no_better_than_the_certificate(architecture, size):
    instance = random_sfl(size, 7, architecture=architecture)
    solution = solve_exact(instance)
    for allocate in (equal_allocation, proportional_allocation):
        allocation = allocate(instance)
        assert max_violation(instance, allocation) == 0.0
        assert (allocation.layer == allocation.layer[0]).all()
        assert round_costs(instance, allocation).latency.max() >= solution.t_lower


def test_equal_gives_equal_shares_and_uses_the_budget_or_full_speed():
    instance = random_sfl(12, 1)
    allocation = equal_allocation(instance)
    np.testing.assert_allclose(allocation.share, 1 / 12, rtol=1e-14)
    costs = round_costs(instance, allocation)
    at_full_speed = (allocation.cpu == instance.cpu_max) & (allocation.power == instance.power_max)
    budget_spent = costs.energy >= instance.energy_max * (1 - 1e-9)
    assert (at_full_speed | budget_spent).all()


def test_proportional_gives_more_band_to_more_demanding_clients():
    instance = random_sfl(30, 4)
    allocation = proportional_allocation(instance)
    assert allocation.share.sum() <= 1.0
    assert allocation.share.sum() == pytest.approx(1.0, rel=1e-12)
    assert allocation.share.max() > 2 * allocation.share.min()


def test_budgets_no_common_split_meets_are_named():
    doc = small_doc()
    doc["clients"][1]["energy_max"] = 1e-6
    instance = SflInstance.from_dict(doc)
    with pytest.raises(InstanceError) as info:
        equal_allocation(instance)
    assert info.value.field == "clients[1].energy_max"
    with pytest.raises(InstanceError) as info:
        proportional_allocation(instance)
    assert info.value.field == "server.bandwidth"


@pytest.mark.parametrize("case", ["zero power_min", "fixed cpu", "huge budgets", "one client"])
def test_corner_cases_stay_feasible_and_certified(case):
    import dataclasses

    base = random_sfl(20, 9)
    instance = {
        "zero power_min": lambda: dataclasses.replace(base, power_min=np.zeros(20)),
        "fixed cpu": lambda: dataclasses.replace(base, cpu_min=base.cpu_max.copy()),
        "huge budgets": lambda: dataclasses.replace(base, energy_max=base.energy_max * 1e6),
        "one client": lambda: random_sfl(1, 3),
    }[case]()
    solution = solve_exact(instance)
    assert solution.status == "optimal" and solution.relative_gap <= 1e-9
    assert max_violation(instance, solution.allocation) == 0.0
    for allocate in (equal_allocation, proportional_allocation):
        allocation = allocate(instance)
        assert max_violation(instance, allocation) == 0.0
        assert round_costs(instance, allocation).latency.max() >= solution.t_lower


def test_fixed_power_that_breaks_budgets_is_named():
    import dataclasses

    base = random_sfl(20, 9)
    instance = dataclasses.replace(base, power_min=base.power_max.copy())
    assert solve_exact(instance).status == "optimal"
    with pytest.raises(InstanceError, match="no common split layer") as info:
        equal_allocation(instance)
    assert info.value.field.endswith("energy_max")
