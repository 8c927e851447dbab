"""Training data of the price model: temperature-consistent labels and heavy-tailed variants."""

from __future__ import annotations

import numpy as np
import pytest

from gnnalloc.families.edge.generators import random_instance
from gnnalloc.families.edge.solvers import solve_dual
from gnnalloc.families.edge.training.prices import (
    PriceConfig, heavy_tailed_variant, label, sample_training_instances,
)


def test_heavy_tailed_variant_keeps_the_load_and_spreads_demands_and_weights():
    instance = random_instance(400, 40, 1.1, 3)
    variant = heavy_tailed_variant(instance, np.random.default_rng(0))
    for field in ("compute_min", "bandwidth_min"):
        old, new = getattr(instance, field), getattr(variant, field)
        assert new.sum() == pytest.approx(old.sum(), rel=1e-12)
        # Heavier tail: the largest demand is a larger multiple of the median.
        assert new.max() / np.median(new) > old.max() / np.median(old)
    assert 0.25 <= variant.weight.min() and variant.weight.max() <= 8.0
    assert variant.weight.max() / variant.weight.min() > 4.0  # wider than the generators' [0.5, 2]
    np.testing.assert_array_equal(variant.server_compute, instance.server_compute)
    np.testing.assert_array_equal(variant.user_server, instance.user_server)


def test_the_configured_fraction_of_training_instances_is_heavy_tailed():
    none = sample_training_instances(PriceConfig(users=(20, 40)), 6, seed=1)
    every = sample_training_instances(PriceConfig(users=(20, 40), heavy_tailed=1.0), 6, seed=1)
    light = [i.weight.max() <= 2.0 for i in none]
    heavy = [i.weight.max() <= 2.0 and i.weight.min() >= 0.5 for i in every]
    assert all(light) and not all(heavy)


def test_labels_are_the_dual_minimisers_at_the_configured_temperature(tmp_path):
    instance = random_instance(40, 6, 1.0, 4, penalty=10.0)
    cold = label(instance, 400, tmp_path, temperature=0.01)
    warm = label(instance, 400, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # one cache entry per temperature
    direct = solve_dual(instance, iterations=400, temperature=0.01, search_rounds=0, bound_iterations=0)
    np.testing.assert_array_equal(cold[0], direct.server_price)
    assert not np.allclose(cold[0], warm[0])
    np.testing.assert_array_equal(label(instance, 400, tmp_path, temperature=0.01)[0], cold[0])  # cached
