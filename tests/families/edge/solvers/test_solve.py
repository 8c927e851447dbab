"""The dispatch ``solve`` never returns less than the cheap baselines it could evaluate."""

from __future__ import annotations

import pytest
import torch

from gnnalloc import random_instance, solve
from gnnalloc.families.edge import Allocator, equal_share, max_violation, proportional_share, score


@pytest.mark.parametrize("method", ["dual", "gnn"])
def test_no_method_returns_less_than_equal_or_proportional_share(method):
    # alpha 0.01: utilities nearly linear, where the smoothed dual and a small model fall below
    # equal share on this instance.
    instance = random_instance(40, 6, 1.0, 0, alpha=0.01)
    torch.manual_seed(0)
    model = Allocator(hidden=16, heads=2, layers=1).eval()
    result = solve(instance, method, **({"allocator": model} if method == "gnn" else {}))
    floor = max(score(instance, baseline(instance)).objective
                for baseline in (equal_share, proportional_share))
    objective = score(instance, result.allocation).objective
    assert objective >= floor - 1e-9 * abs(floor)
    assert max_violation(instance, result.allocation) <= 1e-7
    if "share was better" in result.status:
        assert not result.certified_optimal
