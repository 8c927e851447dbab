import copy
import json
import math

import numpy as np
import pytest

from gnnalloc.families.edge.problem import Instance, InstanceError, load_instance, save_instance


def test_pairs_follow_services_and_links(tiny_dict):
    inst = Instance.from_dict(tiny_dict)
    pairs = {
        (inst.user_ids[u], inst.server_ids[s], int(l))
        for u, s, l in zip(inst.pair_user, inst.pair_server, inst.pair_link)
    }
    # u0 (video @ s0): s0 home, s1 via link 0 (s1 hosts video); u1 (ar @ s1): s1 lacks ar, s0 has
    # it via link 0, s2 hosts everything via link 1; u2 (video @ s1): s1, s0, s2; u3 (any @ s2).
    assert pairs == {
        ("u0", "s0", -1), ("u0", "s1", 0),
        ("u1", "s0", 0), ("u1", "s2", 1),
        ("u2", "s0", 0), ("u2", "s1", -1), ("u2", "s2", 1),
        ("u3", "s1", 1), ("u3", "s2", -1),
    }
    assert np.all(np.diff(inst.pair_user) >= 0)
    assert inst.user_pair_ptr.tolist() == [0, 2, 4, 7, 9]
    assert inst.users_without_candidate.size == 0


def test_defaults(tiny_dict):
    del tiny_dict["penalty"], tiny_dict["alpha"], tiny_dict["links"]
    inst = Instance.from_dict(tiny_dict)
    assert inst.penalty == 10.0 and inst.alpha == 1.0 and inst.num_links == 0
    assert inst.data_rate[3] == 0.0 and inst.weight[3] == 1.0
    assert inst.server_services[2] is None and inst.user_service[3] is None


def test_round_trip(tmp_path, tiny_dict):
    inst = Instance.from_dict(tiny_dict)
    save_instance(inst, tmp_path / "i.json")
    again = load_instance(tmp_path / "i.json")
    assert again.to_dict() == inst.to_dict()
    assert np.array_equal(again.pair_server, inst.pair_server)


def test_user_without_candidate_is_valid_and_reported(tiny_dict):
    tiny_dict["users"][1]["service"] = "hologram"  # nobody hosts it except s2 (all services)
    tiny_dict["servers"][2]["services"] = ["video"]
    inst = Instance.from_dict(tiny_dict)
    assert inst.users_without_candidate.tolist() == [1]


def _mutate(d, path, value):
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()

INVALID = [
    # (path, value, field named in the error)
    (("format",), "gnnalloc.instance/v2", "format"),
    (("format",), _DELETE, "format"),
    (("servers",), _DELETE, "servers"),
    (("users",), _DELETE, "users"),
    (("users",), "nope", "users"),
    (("penalty",), 0.5, "penalty"),
    (("penalty",), "ten", "penalty"),
    (("alpha",), 0.0, "alpha"),
    (("alpha",), -1.0, "alpha"),
    (("servers", 0, "compute"), -1.0, "servers[0].compute"),
    (("servers", 0, "compute"), float("nan"), "servers[0].compute"),
    (("servers", 0, "compute"), float("inf"), "servers[0].compute"),
    (("servers", 0, "compute"), "10", "servers[0].compute"),
    (("servers", 0, "compute"), True, "servers[0].compute"),
    (("servers", 0, "compute"), _DELETE, "servers[0].compute"),
    (("servers", 1, "bandwidth"), -0.1, "servers[1].bandwidth"),
    (("servers", 1, "id"), "s0", "servers[1].id"),
    (("servers", 1, "id"), 7, "servers[1].id"),
    (("servers", 0, "services"), "video", "servers[0].services"),
    (("servers", 0, "extra"), 1, "servers[0].extra"),
    (("extra",), 1, "extra"),
    (("users", 0, "weight"), 1e308, "users[0].weight"),
    (("servers", 0, "compute"), 1e101, "servers[0].compute"),
    (("users", 0, "compute_min"), 1e-101, "users[0].compute_min"),
    (("penalty",), 1e300, "penalty"),
    (("alpha",), 1e4, "alpha"),
    (("",), 1, "$."),
    (("links", 0, "capacity"), -3.0, "links[0].capacity"),
    (("links", 0, "b"), "s0", "links[0].b"),
    (("links", 0, "b"), "s9", "links[0].b"),
    (("links", 1), {"a": "s1", "b": "s0", "capacity": 1.0}, "links[1]"),
    (("users", 0, "compute_min"), 0.0, "users[0].compute_min"),
    (("users", 0, "compute_min"), -2.0, "users[0].compute_min"),
    (("users", 0, "bandwidth_min"), 0.0, "users[0].bandwidth_min"),
    (("users", 0, "bandwidth_min"), None, "users[0].bandwidth_min"),
    (("users", 0, "weight"), 0.0, "users[0].weight"),
    (("users", 0, "data_rate"), -1.0, "users[0].data_rate"),
    (("users", 0, "server"), "s9", "users[0].server"),
    (("users", 1, "id"), "u0", "users[1].id"),
    (("users", 0, "id"), _DELETE, "users[0].id"),
    (("users", 2), [1, 2], "users[2]"),
]


@pytest.mark.parametrize("path,value,field", INVALID, ids=[f"{i[2]}={i[1]!r}" for i in INVALID])
def test_validation_names_the_field(tiny_dict, path, value, field):
    bad = copy.deepcopy(tiny_dict)
    _mutate(bad, path, value)
    with pytest.raises(InstanceError) as info:
        Instance.from_dict(bad)
    assert info.value.field == field, str(info.value)
    assert field in str(info.value)


def test_not_an_object():
    with pytest.raises(InstanceError, match=r"^\$"):
        Instance.from_dict([1, 2])


@pytest.mark.parametrize("text", ["{", "", '{"format": NaN}', "[1,"])
def test_malformed_json_file(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InstanceError):
        load_instance(path)


def test_nan_literal_in_file_is_rejected(tmp_path, tiny_dict):
    text = json.dumps(tiny_dict).replace('"compute": 10.0', '"compute": NaN', 1)
    path = tmp_path / "nan.json"
    path.write_text(text)
    with pytest.raises(InstanceError, match="NaN"):
        load_instance(path)


def test_missing_file(tmp_path):
    with pytest.raises(InstanceError, match="cannot read"):
        load_instance(tmp_path / "absent.json")


def test_loads_match_loops(tiny_dict):
    inst = Instance.from_dict(tiny_dict)
    rng = np.random.default_rng(0)
    x = rng.random(inst.num_pairs)
    y = rng.random(inst.num_users)
    server = np.zeros(inst.num_servers)
    link = np.zeros(inst.num_links)
    for p in range(inst.num_pairs):
        server[inst.pair_server[p]] += x[p]
        if inst.pair_link[p] >= 0:
            link[inst.pair_link[p]] += inst.data_rate[inst.pair_user[p]] * x[p]
    assert np.allclose(inst.server_compute_load(x), server)
    assert np.allclose(inst.link_load(x), link)
    bw = np.zeros(inst.num_servers)
    np.add.at(bw, inst.user_server, y)
    assert np.allclose(inst.server_bandwidth_load(y), bw)
    assert math.isclose(inst.user_compute(x).sum(), x.sum())


def test_instances_built_in_code_are_checked_like_parsed_ones():
    import dataclasses

    from gnnalloc import random_instance

    instance = random_instance(6, 2, 1.0, 0)
    weight = instance.weight.copy()
    weight[3] = np.nan
    with pytest.raises(InstanceError, match=r"^users\[3\]\.weight: must be finite and > 0"):
        dataclasses.replace(instance, weight=weight)
    capacity = instance.server_compute.copy()
    capacity[1] = -1.0
    with pytest.raises(InstanceError, match=r"^servers\[1\]\.compute: must be finite and >= 0"):
        dataclasses.replace(instance, server_compute=capacity)
    with pytest.raises(InstanceError, match="^penalty: "):
        dataclasses.replace(instance, penalty=0.5)
    with pytest.raises(InstanceError, match="^alpha: "):
        dataclasses.replace(instance, alpha=float("inf"))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1" + "0" * 400])
def test_file_values_that_are_not_finite_numbers_are_named(tmp_path, tiny_dict, literal):
    text = json.dumps(tiny_dict).replace('"compute": 10.0', f'"compute": {literal}', 1)
    assert literal in text
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InstanceError, match=r"^servers\[0\]\.compute: "):
        load_instance(path)


@pytest.mark.parametrize(
    "path,value",
    [(("servers", 0, "compute"), 5e-324), (("servers", 1, "bandwidth"), 1e-200),
     (("links", 0, "capacity"), 5e-324), (("users", 0, "data_rate"), 1e-310)],
)
def test_subnormal_and_tiny_nonzero_quantities_are_named(tiny_dict, path, value):
    section, index, key = path
    tiny_dict[section][index][key] = value
    with pytest.raises(InstanceError) as info:
        Instance.from_dict(tiny_dict)
    assert info.value.field == f"{section}[{index}].{key}"
    assert "0 or [1e-100, 1e+100]" in info.value.message
    tiny_dict[section][index][key] = 0.0  # zero stays valid: an absent resource
    Instance.from_dict(tiny_dict)


def _built(**change):
    """A two-server, two-user instance built in code, with ``change`` applied."""
    fields = dict(
        server_ids=("s0", "s1"), server_compute=np.array([10.0, 10.0]), server_bandwidth=np.array([10.0, 10.0]),
        server_services=(None, None), link_a=np.array([0]), link_b=np.array([1]), link_capacity=np.array([5.0]),
        user_ids=("u0", "u1"), user_server=np.array([0, 1]), user_service=(None, None),
        compute_min=np.array([4.0, 4.0]), bandwidth_min=np.array([1.0, 1.0]), data_rate=np.array([0.5, 0.5]),
        weight=np.array([1.0, 1.0]),
    )
    return Instance(**{**fields, **change})


@pytest.mark.parametrize(("change", "field", "message"), [
    (dict(compute_min=np.array([4.0])), "compute_min", "expected shape (2,), one per entry of users"),
    (dict(weight=np.ones(3)), "weight", "expected shape (2,)"),
    (dict(link_capacity=np.zeros(0)), "link_capacity", "expected shape (1,), one per entry of links"),
    (dict(server_services=(None,)), "server_services", "expected shape (2,)"),
    (dict(user_server=np.array([0, 5])), "users[1].server", "server index 5 out of range [0, 2)"),
    (dict(user_server=np.array([0.0, 1.0])), "user_server", "expected integer server indices"),
    (dict(user_server=[[0, 1], [1, 0]]), "user_server", "expected shape (2,)"),
    (dict(link_b=np.array([0])), "links[0].b", "self-link on server 's0'"),
    (dict(link_a=np.array([0, 1]), link_b=np.array([1, 0]), link_capacity=np.ones(2)), "links[1]", "duplicate link"),
    (dict(user_ids=("u", "u")), "users[1].id", "duplicate user id 'u'"),
    (dict(server_ids=("s", "s")), "servers[1].id", "duplicate server id 's'"),
])
def test_instances_built_in_code_get_the_parser_s_structural_rules(change, field, message):
    """A short field or an index out of range failed later with an unnamed IndexError; a
    self-link was solved, then refused when its own document was read back."""
    with pytest.raises(InstanceError) as info:
        _built(**change)
    assert info.value.field == field and message in info.value.message


def test_service_sets_may_be_any_sequence_of_equal_length():
    """Tuples of equal-length lists are per-server service sets, not a 2-D array."""
    built = _built(server_services=(["video", "ar"], ["ar", "video"]))
    assert built.num_servers == 2
