"""Uniform user samples of an instance."""

import numpy as np
import pytest

from gnnalloc import eua_instance
from gnnalloc.families.edge.problem import sample_user_indices, sample_users


def test_user_indices_are_a_sorted_uniform_draw_without_replacement_repeatable_by_seed():
    kept = sample_user_indices(1000, 300, seed=5)
    assert kept.shape == (300,) and np.all(np.diff(kept) > 0) and 0 <= kept[0] and kept[-1] < 1000
    np.testing.assert_array_equal(kept, sample_user_indices(1000, 300, seed=5))
    assert not np.array_equal(kept, sample_user_indices(1000, 300, seed=6))
    np.testing.assert_array_equal(sample_user_indices(10, 10), np.arange(10))
    np.testing.assert_array_equal(sample_user_indices(10, 25), np.arange(10))
    # Uniform: over many draws every user is kept about count / num_users of the time.
    counts = np.bincount(np.concatenate([sample_user_indices(50, 10, seed=s) for s in range(2000)]), minlength=50)
    assert counts.min() > 0.8 * 400 and counts.max() < 1.2 * 400


def test_a_sample_keeps_the_chosen_users_and_scales_every_capacity_by_the_share():
    instance = eua_instance(400, 1.0, 3)
    sample = sample_users(instance, 100, seed=2)
    kept = sample_user_indices(400, 100, seed=2)
    assert sample.num_users == 100 and sample.num_servers == instance.num_servers
    assert sample.user_ids == tuple(instance.user_ids[i] for i in kept)
    assert sample.user_service == tuple(instance.user_service[i] for i in kept)
    for field in ("user_server", "compute_min", "bandwidth_min", "data_rate", "weight"):
        np.testing.assert_array_equal(getattr(sample, field), getattr(instance, field)[kept])
    for field in ("server_compute", "server_bandwidth", "link_capacity"):
        np.testing.assert_allclose(getattr(sample, field), 0.25 * getattr(instance, field), rtol=1e-15)
    np.testing.assert_array_equal(sample.link_a, instance.link_a)
    assert (sample.penalty, sample.alpha) == (instance.penalty, instance.alpha)
    assert sample_users(instance, 400) is instance and sample_users(instance, 1000) is instance


def test_a_scaled_capacity_never_falls_below_the_smallest_an_instance_accepts():
    import dataclasses

    from gnnalloc.families.edge.problem._instance import MAX_MAGNITUDE

    instance = eua_instance(100, 1.0, 3)
    compute = instance.server_compute.copy()
    compute[0], compute[1] = 1.0 / MAX_MAGNITUDE, 0.0
    tiny = dataclasses.replace(instance, server_compute=compute)
    sample = sample_users(tiny, 10)
    assert sample.server_compute[0] == 1.0 / MAX_MAGNITUDE and sample.server_compute[1] == 0.0


@pytest.mark.parametrize("count", [0, -1, 2.5, True, "3"])
def test_a_bad_count_is_a_named_error(count):
    with pytest.raises(ValueError, match="count"):
        sample_users(eua_instance(50, 1.0, 3), count)
    if count != 0:
        with pytest.raises(ValueError, match="count"):
            sample_user_indices(50, count)


@pytest.mark.parametrize("num_users", [-1, 2.0, None])
def test_a_bad_number_of_users_is_a_named_error(num_users):
    with pytest.raises(ValueError, match="num_users"):
        sample_user_indices(num_users, 3)


def test_no_users_give_an_empty_sample():
    assert sample_user_indices(0, 5).shape == (0,)
