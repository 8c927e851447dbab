import numpy as np

from gnnalloc import eua_instance, solve
from gnnalloc.families.edge.problem import (
    Allocation, Instance, fit_compute_to_capacity, fit_to_capacity, max_violation,
)


def test_fit_to_capacity_makes_any_nonnegative_allocation_feasible():
    instance = eua_instance(120, 1.3, 5)
    rng = np.random.default_rng(0)
    wild = Allocation(
        compute=rng.uniform(-1.0, 50.0, instance.num_pairs),
        bandwidth=rng.uniform(-1.0, 50.0, instance.num_users),
    )
    assert max_violation(instance, wild) > 1.0
    fitted = fit_to_capacity(instance, wild)
    assert max_violation(instance, fitted) <= 1e-12
    assert (fitted.compute >= 0).all() and (fitted.bandwidth >= 0).all()
    # Only shrinks: every pair keeps at most what it had, and loses only on a full constraint.
    assert (fitted.compute <= np.maximum(wild.compute, 0.0)).all()
    # The compute alone fits the same way, whatever the bandwidth.
    np.testing.assert_array_equal(fit_compute_to_capacity(instance, wild.compute), fitted.compute)


def test_fit_to_capacity_leaves_a_feasible_allocation_unchanged():
    instance = eua_instance(120, 1.0, 6)
    allocation = solve(instance, "proportional").allocation
    half = Allocation(compute=allocation.compute / 2, bandwidth=allocation.bandwidth / 2)
    fitted = fit_to_capacity(instance, half)
    np.testing.assert_array_equal(fitted.compute, half.compute)
    np.testing.assert_array_equal(fitted.bandwidth, half.bandwidth)


def test_zero_capacity_gets_exact_zeros():
    doc = eua_instance(60, 1.0, 7).to_dict()
    for server in doc["servers"]:
        server["compute"] = 0.0
    instance = Instance.from_dict(doc)
    allocation = Allocation(
        compute=np.full(instance.num_pairs, 1e-14), bandwidth=np.zeros(instance.num_users)
    )
    assert (fit_to_capacity(instance, allocation).compute == 0.0).all()
