"""Training data of the price model: temperature-consistent labels, heavy-tailed and diverse
variants."""

from __future__ import annotations

import numpy as np
import pytest

from gnnalloc.families.edge.generators import random_instance
from gnnalloc.families.edge.solvers import solve_dual
from gnnalloc.families.edge.training.prices import (
    PriceConfig, diverse_variant, heavy_tailed_variant, label, sample_training_instances,
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


def test_diverse_variant_keeps_the_load_and_users_and_redraws_the_generators_fixed_shapes():
    instance = random_instance(400, 40, 1.1, 3)
    variants = [diverse_variant(instance, np.random.default_rng(seed)) for seed in range(8)]
    for variant in variants:
        assert variant.server_compute.sum() == pytest.approx(instance.server_compute.sum(), rel=1e-12)
        assert variant.server_bandwidth.sum() == pytest.approx(instance.server_bandwidth.sum(), rel=1e-12)
        np.testing.assert_array_equal(variant.compute_min, instance.compute_min)
        np.testing.assert_array_equal(variant.weight, instance.weight)
        assert variant.link_a.shape[0] <= instance.link_a.shape[0]  # links are only dropped
        assert all(services for services in variant.server_services)  # every server hosts one
    # The spreads the generators fix now vary between instances (generators: C ~ U(20, 60), link
    # capacity U(0.1, 0.3) * mean(C), data rates U(0.2, 1)).
    spreads = [v.server_compute.std() / v.server_compute.mean() for v in variants]
    assert min(spreads) < 0.15 and max(spreads) > 0.45
    link_scales = [v.link_capacity.mean() / v.server_compute.mean() for v in variants]
    assert min(link_scales) < 0.1 and max(link_scales) > 0.3
    assert min(v.data_rate.min() for v in variants) < 0.2 and max(v.data_rate.max() for v in variants) > 1.0
    homes = [np.bincount(v.user_server, minlength=40).max() for v in variants]
    assert max(homes) > np.bincount(instance.user_server, minlength=40).max()
    np.testing.assert_array_equal(diverse_variant(instance, np.random.default_rng(3)).user_server, variants[3].user_server)


def test_the_configured_fraction_of_training_instances_is_diverse():
    plain = sample_training_instances(PriceConfig(users=(60, 80)), 6, seed=1)
    every = sample_training_instances(PriceConfig(users=(60, 80), diverse=1.0), 6, seed=1)
    # The generators' link capacities lie within U(0.1, 0.3) of the mean compute.
    inside = [bool(np.all(i.link_capacity <= 0.3 * i.server_compute.mean() + 1e-9)) for i in every]
    assert all(bool(np.all(i.link_capacity <= 0.3 * i.server_compute.mean() + 1e-9)) for i in plain)
    assert not all(inside)


def test_labels_are_the_dual_minimisers_at_the_configured_temperature(tmp_path):
    instance = random_instance(40, 6, 1.0, 4, penalty=10.0)
    cold = label(instance, 400, tmp_path, temperature=0.01)
    warm = label(instance, 400, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # one cache entry per temperature
    direct = solve_dual(instance, iterations=400, temperature=0.01, search_rounds=0, bound_iterations=0)
    np.testing.assert_array_equal(cold[0], direct.server_price)
    assert not np.allclose(cold[0], warm[0])
    np.testing.assert_array_equal(label(instance, 400, tmp_path, temperature=0.01)[0], cold[0])  # cached


def test_a_label_appears_in_the_cache_only_whole(tmp_path, monkeypatch):
    """Two trainings sharing a cache: a reader must never find a half-written label."""
    from gnnalloc.families.edge.training import prices

    instance = random_instance(30, 5, 1.0, 6)
    written = []
    real_savez = np.savez

    def savez(path, **arrays):
        assert list(tmp_path.glob("*.npz")) == []  # nothing under a readable name while writing
        written.append(path)
        real_savez(path, **arrays)

    monkeypatch.setattr(prices.np, "savez", savez)
    server, link = label(instance, 200, tmp_path)
    files = list(tmp_path.iterdir())
    assert len(written) == 1 and len(files) == 1 and files[0] != written[0]
    np.testing.assert_array_equal(np.load(files[0])["server"], server)
