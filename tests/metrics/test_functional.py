import math

import numpy as np

import pytest
import torch

from gnnalloc.metrics import (
    jain_index,
    met_minimum_share,
    satisfaction,
    utility_gap,
    weighted_utility_variance,
)


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
