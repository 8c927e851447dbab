"""Vectorised torch water-filling against the closed-form numpy reference."""

import numpy as np
import pytest
import torch

from gnnalloc.problem import resource_utility
from gnnalloc.solvers import waterfill
from gnnalloc.solvers.functional import waterfill_groups


@pytest.mark.parametrize("seed", range(40))
def test_matches_numpy_reference_per_group(seed):
    rng = np.random.default_rng(seed)
    groups, n = int(rng.integers(1, 6)), int(rng.integers(1, 40))
    group = rng.integers(0, groups, n)
    m, w, k = rng.lognormal(0, 1, n), rng.uniform(0.5, 2, n), float(rng.uniform(1, 20))
    capacity = rng.uniform(0, 3, groups) * np.bincount(group, m, groups)
    y, price = waterfill_groups(torch.tensor(capacity), torch.tensor(m), torch.tensor(w), torch.tensor(group), k)
    y = y.numpy()
    assert (y >= 0).all() and (price.numpy() >= 0).all()
    for g in range(groups):
        idx = group == g
        if not idx.any():
            continue
        assert y[idx].sum() <= capacity[g] * (1 + 1e-9) + 1e-12
        ref = waterfill(capacity[g], m[idx], w[idx], k)

        def value(v):
            return float((w[idx] * resource_utility(torch.tensor(v), torch.tensor(m[idx]), k).numpy()).sum())

        assert value(y[idx]) == pytest.approx(value(ref), rel=1e-10, abs=1e-10)


def test_alpha_fair_response_is_stationary():
    # Single group, everyone above the minimum: marginal utilities w y^-alpha m^(alpha-1) are equal.
    m = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    w = torch.tensor([1.0, 1.5, 0.7], dtype=torch.float64)
    y, price = waterfill_groups(torch.tensor([40.0], dtype=torch.float64), m, w, torch.zeros(3, dtype=torch.long), 10.0, 2.0)
    marginal = w * y.pow(-2.0) * m.pow(1.0)
    assert torch.allclose(marginal, marginal[0].expand(3), rtol=1e-9)
    assert y.sum().item() == pytest.approx(40.0)
