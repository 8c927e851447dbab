"""Generators: deterministic by seed, the documented distributions, named bad settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gnnalloc.families.power import d2d, gaussian, itu1411_gain_db


@pytest.mark.parametrize("generator", [gaussian, d2d])
def test_deterministic_by_seed(generator):
    a, b, c = generator(30, seed=4), generator(30, seed=4), generator(30, seed=5)
    assert np.array_equal(a.gain_matrix(), b.gain_matrix())
    assert not np.array_equal(a.gain_matrix(), c.gain_matrix())
    assert a.num_links == 30 and len(set(a.link_ids)) == 30


def test_gaussian_gains_are_exponential():
    instance = gaussian(200, seed=0)
    gains = instance.gain_matrix()
    assert gains.shape == (200, 200) and instance.num_cross == 200 * 199
    # Exp(1): mean 1, P(g > 1) = e^-1; 40,000 samples.
    assert gains.mean() == pytest.approx(1.0, abs=0.03)
    assert (gains > 1.0).mean() == pytest.approx(math.exp(-1), abs=0.01)
    assert instance.noise == 0.1 and (instance.pmax == 1.0).all() and (instance.weight == 1.0).all()


def test_itu1411_two_slopes():
    # breakpoint 4 h^2 / lambda = 72 m at 2.4 GHz, 1.5 m; 20 dB/decade before, 40 after.
    near = itu1411_gain_db(np.array([7.2, 72.0, 720.0]), 2.4e9, 1.5)
    assert near[0] - near[1] == pytest.approx(20.0, abs=0.05)
    assert near[1] - near[2] == pytest.approx(40.0, abs=0.05)


def test_d2d_layout_and_units():
    instance = d2d(50, seed=1, prune=0.0)
    gains = instance.gain_matrix()
    # -169 dBm/Hz over 5 MHz; 40 dBm
    assert instance.noise == pytest.approx(10 ** (-19.9) * 5e6)
    assert (instance.pmax == 10.0).all()
    assert instance.num_cross == 50 * 49
    direct = np.diagonal(gains)
    cross = gains[~np.eye(50, dtype=bool)]
    # direct links (2..40 m) are far stronger than the typical cross link (~hundreds of m)
    assert np.median(direct) > 100 * np.median(cross)
    # a direct link at <= 40 m: path gain above that of 40 m minus 4 sigma of shadowing, and
    # Rayleigh fading rarely below 1e-3
    floor = 10 ** ((itu1411_gain_db(np.array(40.0), 2.4e9, 1.5) + 2.5 - 32) / 10)
    assert (direct > floor * 1e-3).mean() > 0.95


def test_d2d_constant_density_and_pruning():
    small, large = d2d(20, seed=0), d2d(400, seed=0)
    # constant density: at 20x the links each receiver keeps a similar number of strong
    # interferers, so the stored fraction falls
    assert large.num_cross / (400 * 399) < small.num_cross / (20 * 19)
    full = d2d(400, seed=0, prune=0.0)
    # pruning keeps each receiver's dropped interference within 1e-3 of noise + interference
    dense, kept = full.gain_matrix(), large.gain_matrix()
    np.fill_diagonal(dense, 0.0)
    np.fill_diagonal(kept, 0.0)
    dropped = (dense - kept).sum(1) * 10.0
    total = full.noise + dense.sum(1) * 10.0
    assert (dropped <= 1e-3 * total * (1 + 1e-12)).all()
    assert ((kept == 0) | (kept == dense)).all()


@pytest.mark.parametrize("generator", [gaussian, d2d])
def test_utility_settings(generator):
    instance = generator(10, seed=0, utility="alpha_fair", alpha=2.0, penalty=5.0, rate_min=0.3)
    assert instance.utility == "alpha_fair" and instance.alpha == 2.0 and instance.penalty == 5.0
    assert (instance.rate_min == 0.3).all()


@pytest.mark.parametrize(
    "generator,settings,name",
    [
        (gaussian, {"size": 0}, "links"),
        (gaussian, {"size": 2.5}, "links"),
        (gaussian, {"seed": -1}, "seed"),
        (gaussian, {"noise": 0.0}, "noise"),
        (gaussian, {"pmax": float("nan")}, "pmax"),
        (gaussian, {"utility": "max_min"}, "utility"),
        (gaussian, {"alpha": 0.0}, "alpha"),
        (gaussian, {"penalty": 0.5}, "penalty"),
        (gaussian, {"rate_min": -1.0}, "rate_min"),
        (gaussian, {"density": 3.0}, "density"),
        (d2d, {"density": 0.0}, "density"),
        (d2d, {"d_min": 50.0}, "d_max"),
        (d2d, {"density": 1e-320}, "density"),  # a field of infinite side
        (d2d, {"d_max": 1e308}, "d_max"),  # every receiver draw misses the field
        (d2d, {"prune": 1.0}, "prune"),
        (d2d, {"shadowing_db": -1.0}, "shadowing_db"),
        (d2d, {"pmax_dbm": float("inf")}, "pmax_dbm"),
        (d2d, {"colour": 1}, "colour"),
    ],
)
def test_bad_settings_are_named(generator, settings, name):
    settings = {"size": 10, **settings}
    with pytest.raises(ValueError, match=rf"^{name}:"):
        generator(**settings)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "size,settings",
    [
        (4, {"density": 1e7}),  # a 0.63 m field: no receiver 2..40 m from any transmitter
        (50, {"d_min": 710.0, "d_max": 720.0}),  # 500 m field, diagonal 707 m: no position at all
        (1, {"d_min": 1.001 * 1000 * math.sqrt(2 / 200), "d_max": 1.1 * 1000 * math.sqrt(2 / 200)}),
    ],
)
def test_d2d_layouts_that_cannot_be_met_are_named(size, settings):
    # The first used to redraw receivers around fixed transmitters forever.
    with pytest.raises(ValueError, match=r"^d_min:"):
        d2d(size, 0, **settings)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("seed", range(5))
def test_d2d_links_longer_than_half_the_field_s_diagonal_are_drawn(seed):
    """Between the half-diagonal and the diagonal only transmitters near a corner have receiver
    positions: found by placing transmitters anew, as before the draws were capped."""
    instance = d2d(4, seed, d_min=105.0, d_max=140.0)  # a 141 m field: half-diagonal 100 m
    assert instance.num_links == 4


@pytest.mark.timeout(20)
def test_d2d_draws_are_capped(monkeypatch):
    import gnnalloc.families.power._generators as generators

    # Just below the half-diagonal (354 m) a receiver rarely lands inside: with one draw per
    # transmitter and one transmitter per link the generator must give up, by name.
    monkeypatch.setattr(generators, "D2D_RECEIVER_DRAWS", 1)
    monkeypatch.setattr(generators, "D2D_TRANSMITTER_DRAWS", 1)
    with pytest.raises(ValueError, match=r"^d_min:"):
        d2d(50, 0, d_min=350.0, d_max=353.0)



@pytest.mark.parametrize("generator", [gaussian, d2d])
@pytest.mark.parametrize("size", [10**6, 10_001])
def test_generator_size_is_capped_by_name(generator, size):
    # Both draw dense (K, K) arrays: 10**6 links was a MemoryError traceback.
    with pytest.raises(ValueError, match=r"^links: must be an integer in \[1, 10000\]"):
        generator(size)


@pytest.mark.parametrize("generator", [gaussian, d2d])
def test_generators_take_numpy_integers(generator):
    a, b = generator(12, seed=3), generator(np.int64(12), seed=np.int64(3))
    assert a.link_ids == b.link_ids and np.array_equal(a.gain_matrix(), b.gain_matrix())
