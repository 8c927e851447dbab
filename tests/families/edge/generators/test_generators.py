import numpy as np
import pytest

from gnnalloc.families.edge.generators import LINK_RADIUS_M, SERVICES, eua_instance, hosted_services, random_instance
from gnnalloc.families.edge.generators._eua import _positions


@pytest.mark.parametrize("make", [lambda s: random_instance(200, 15, 0.8, s), lambda s: eua_instance(300, 0.8, s)])
def test_deterministic_and_load(make):
    a, b, c = make(4), make(4), make(5)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()
    assert a.compute_min.sum() / a.server_compute.sum() == pytest.approx(0.8)
    assert a.bandwidth_min.sum() / a.server_bandwidth.sum() == pytest.approx(0.8)


def test_eua_topology_is_the_real_one():
    sites, users = _positions()
    assert sites.shape == (125, 2) and users.shape == (816, 2)
    inst = eua_instance(816, 1.0, 0)
    assert inst.num_servers == 125
    d = np.linalg.norm(sites[inst.link_a] - sites[inst.link_b], axis=1)
    assert d.max() < LINK_RADIUS_M
    assert 400 <= inst.num_links <= 450  # 432 with the equirectangular projection
    # Home = nearest site.
    nearest = np.linalg.norm(users[:, None] - sites[None], axis=2).argmin(axis=1)
    assert sorted(np.bincount(inst.user_server, minlength=125)) == sorted(np.bincount(nearest, minlength=125))


def test_eua_beyond_816_users():
    inst = eua_instance(5000, 1.2, 1)
    assert inst.num_users == 5000 and inst.num_pairs > 5000


def test_bad_arguments():
    with pytest.raises(ValueError, match="users"):
        random_instance(0, 3)
    with pytest.raises(ValueError, match="load"):
        eua_instance(10, 0.0)


@pytest.mark.parametrize(("make", "field"), [
    (lambda: eua_instance(10**12), "users"), (lambda: random_instance(10**12, 3), "users"),
    (lambda: random_instance(10, 10**12), "servers"), (lambda: eua_instance(2.5), "users"),
    (lambda: random_instance(10, True), "servers"), (lambda: eua_instance(10, sites=2.5), "sites"),
    (lambda: eua_instance(10, sites=True), "sites"),
])
def test_sizes_are_bounded_and_named(make, field):
    """A typo such as ``--users 10**12`` is a named error, not a MemoryError traceback."""
    with pytest.raises(ValueError, match=f"^{field}: must be an integer in"):
        make()


def test_hosted_services_reads_the_draw_and_gives_a_server_drawn_with_none_one_service():
    hosts = np.array([[True, False, True], [False, False, False], [False, True, False]])
    services = hosted_services(hosts, np.random.default_rng(0))
    assert services[0] == frozenset({SERVICES[0], SERVICES[2]}) and services[2] == frozenset({SERVICES[1]})
    assert len(services[1]) == 1 and hosts[1].sum() == 1  # the draw is updated to match
    assert services[1] == frozenset({SERVICES[int(np.flatnonzero(hosts[1])[0])]})


@pytest.mark.parametrize("field", ["penalty", "alpha"])
@pytest.mark.parametrize("value", [None, "x", True])
@pytest.mark.parametrize("make", [random_instance, eua_instance])
def test_utility_settings_that_are_no_numbers_are_named(make, field, value):
    """Were a TypeError / ValueError naming nothing, and True was taken as 1."""
    from gnnalloc.core import InputError

    with pytest.raises(InputError, match=f"^{field}: must be a number"):
        make(10, 3, **{field: value}) if make is random_instance else make(10, **{field: value})
