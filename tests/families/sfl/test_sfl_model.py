"""The latency/energy model against hand computation, and the violation measure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _sfl_fixtures import small_doc

from gnnalloc.core import AllocationError
from gnnalloc.families.sfl import SflAllocation, SflInstance, max_violation, round_costs, uplink_rate, violations
from gnnalloc.families.sfl._kernels import min_width


def test_rate_matches_the_formula_and_is_zero_without_band():
    rate = uplink_rate(np.array([0.5, 0.0]), np.array([0.1, 0.1]), np.array([1e-12, 1e-12]), 2e7, 4e-21)
    assert rate[0] == pytest.approx(0.5 * 2e7 * math.log2(1 + 0.1 * 1e-12 / (0.5 * 2e7 * 4e-21)), rel=1e-14)
    assert rate[1] == 0.0


def test_components_by_hand():
    instance = SflInstance.from_dict(small_doc())
    allocation = SflAllocation(layer=np.array([1, 0, 0]), share=np.array([0.3, 0.3, 0.4]),
                               cpu=np.array([1e9, 5e8, 1e9]), power=np.array([0.1, 0.2, 0.05]))
    costs = round_costs(instance, allocation)
    s, g = 32.0, 3e-12
    rate = 0.3 * 2e7 * math.log2(1 + 0.1 * g / (0.3 * 2e7 * 4e-21))
    t_dev, t_up = s * 6e8 / 1e9, (s * 6e4 + 8e6) / rate
    t_srv, t_down = s * 1.2e9 / 5e10, s * 6e4 / 1e8
    assert costs.latency[0] == pytest.approx(t_dev + t_up + t_srv + t_down, rel=1e-14)
    assert costs.energy[0] == pytest.approx(1e-28 * 1e18 * s * 6e8 + 0.1 * t_up, rel=1e-14)


def test_violations_are_relative_and_zero_when_feasible():
    instance = SflInstance.from_dict(small_doc())
    ok = SflAllocation(layer=np.array([0, 0, 0]), share=np.array([0.3, 0.3, 0.4]),
                       cpu=np.array([5e8, 5e8, 5e8]), power=np.array([0.05, 0.05, 0.05]))
    assert max_violation(instance, ok) == 0.0
    bad = SflAllocation(layer=ok.layer, share=np.array([0.5, 0.3, 0.4]), cpu=np.array([5e7, 4e9, 5e8]),
                        power=np.array([0.3, 0.05, 0.005]))
    found = violations(instance, bad)
    assert found["bandwidth"][0] == pytest.approx(0.2)
    np.testing.assert_allclose(found["cpu"][:2], [0.5, 3.0])
    np.testing.assert_allclose(found["power"], [0.5, 0.0, 0.025])
    assert max_violation(instance, bad) >= 3.0


def test_zero_rate_is_named():
    instance = SflInstance.from_dict(small_doc())
    stalled = SflAllocation(layer=np.array([0, 0, 0]), share=np.array([0.5, 0.0, 0.5]),
                            cpu=np.full(3, 1e9), power=np.full(3, 0.1))
    with pytest.raises(AllocationError) as info:
        round_costs(instance, stalled)
    assert info.value.field == "clients[1].bandwidth_share"


def test_min_width_inverts_the_rate():
    rng = np.random.default_rng(0)
    a = 10 ** rng.uniform(3, 9, 2000)
    k = np.concatenate([rng.uniform(0, 1, 1000), 1 - 10 ** rng.uniform(-10, 0, 1000)])
    rate = k * a / math.log(2)
    width = min_width(rate, a)
    assert np.isfinite(width).all()
    np.testing.assert_allclose(width * np.log1p(a / width) / math.log(2), rate, rtol=1e-12)
    # Slightly less width carries less than the rate: it is the least.
    assert (width * 0.999 * np.log1p(a / (width * 0.999)) / math.log(2) < rate).all()
    assert np.isinf(min_width(np.array([1e9]), np.array([1e3])))[0]
    assert min_width(np.array([0.0]), np.array([1e3]))[0] == 0.0
