"""The gnnalloc.power/v1 and gnnalloc.power-allocation/v1 formats: round trips and named errors."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from gnnalloc.core import AllocationError, InstanceError, NonFiniteLiteral, parse_instance
from gnnalloc.families.power import (
    PowerAllocation, PowerInstance, gaussian, load_power_allocation, load_power_instance,
    save_power_allocation, save_power_instance,
)


def _doc() -> dict:
    return {
        "format": "gnnalloc.power/v1", "noise": 0.1, "utility": "sum_rate", "alpha": 1.0, "penalty": 10.0,
        "links": [
            {"id": "k0", "pmax": 1.0, "gain": 0.83, "weight": 1.0, "rate_min": 0.5},
            {"id": "k1", "pmax": 2.0, "gain": 0.5, "weight": 2.0, "rate_min": 0.5},
            {"id": "k2", "pmax": 1.0, "gain": 0.7, "rate_min": 0.25},
        ],
        "interference": [
            {"rx": "k0", "tx": "k1", "gain": 0.02},
            {"rx": "k2", "tx": "k0", "gain": 0.1},
            {"rx": "k1", "tx": "k0", "gain": 0.03},
        ],
    }


def _dense_doc() -> dict:
    doc = _doc()
    for link in doc["links"]:
        del link["gain"]
    del doc["interference"]
    doc["gain_matrix"] = [[0.83, 0.02, 0.0], [0.03, 0.5, 0.0], [0.1, 0.0, 0.7]]
    return doc


def test_sparse_and_dense_forms_agree():
    sparse, dense = PowerInstance.from_dict(_doc()), PowerInstance.from_dict(_dense_doc())
    expected = np.array([[0.83, 0.02, 0.0], [0.03, 0.5, 0.0], [0.1, 0.0, 0.7]])
    assert np.array_equal(sparse.gain_matrix(), expected)
    assert np.array_equal(dense.gain_matrix(), expected)
    assert sparse.link_ids == ("k0", "k1", "k2")
    assert sparse.weight.tolist() == [1.0, 2.0, 1.0]
    assert sparse.pmax.tolist() == [1.0, 2.0, 1.0]
    # the document's order is kept, so interference[i] means the same entry everywhere
    assert sparse.cross_rx.tolist() == [0, 2, 1] and sparse.cross_tx.tolist() == [1, 0, 0]


@pytest.mark.parametrize("dense", [False, True])
def test_round_trip(dense, tmp_path):
    instance = PowerInstance.from_dict(_doc())
    again = PowerInstance.from_dict(json.loads(json.dumps(instance.to_dict(dense=dense))))
    assert np.array_equal(again.gain_matrix(), instance.gain_matrix())
    for field in ("pmax", "weight", "rate_min"):
        assert np.array_equal(getattr(again, field), getattr(instance, field))
    assert (again.noise, again.utility, again.alpha, again.penalty) == (0.1, "sum_rate", 1.0, 10.0)
    path = tmp_path / "instance.json"
    save_power_instance(instance, path, dense=dense)
    assert np.array_equal(load_power_instance(path).gain_matrix(), instance.gain_matrix())
    assert np.array_equal(parse_instance(instance.to_dict()).gain_matrix(), instance.gain_matrix())


def test_generated_instance_round_trips():
    instance = gaussian(6, seed=2, utility="alpha_fair", alpha=2.0)
    again = PowerInstance.from_dict(instance.to_dict())
    assert np.array_equal(again.gain_matrix(), instance.gain_matrix())
    assert again.utility == "alpha_fair" and again.alpha == 2.0


def test_defaults_and_optional_rate_min():
    doc = _doc()
    for key in ("utility", "alpha", "penalty"):
        del doc[key]
    for link in doc["links"]:
        del link["rate_min"]
    instance = PowerInstance.from_dict(doc)
    assert instance.rate_min is None and instance.utility == "sum_rate"
    assert instance.alpha == 1.0 and instance.penalty == 10.0
    assert "rate_min" not in instance.to_dict()["links"][0]


def _mutations():
    def put(path, value):
        def edit(doc):
            target = doc
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return edit

    def drop(path):
        def edit(doc):
            target = doc
            for key in path[:-1]:
                target = target[key]
            del target[path[-1]]
        return edit

    def both(doc):
        doc["gain_matrix"] = [[1.0] * 3] * 3

    def neither(doc):
        del doc["links"][1]["gain"]
        del doc["interference"]

    def fair_without_min(doc):
        doc["utility"] = "alpha_fair"
        del doc["links"][2]["rate_min"]

    def partial_min(doc):
        del doc["links"][1]["rate_min"]

    return [
        ("format", put(("format",), "gnnalloc.instance/v1"), "format"),
        ("missing format", drop(("format",)), "format"),
        ("noise missing", drop(("noise",)), "noise"),
        ("noise zero", put(("noise",), 0.0), "noise"),
        ("noise nan", put(("noise",), NonFiniteLiteral("NaN")), "noise"),
        ("utility", put(("utility",), "max_min"), "utility"),
        ("alpha", put(("alpha",), 0.0), "alpha"),
        ("penalty", put(("penalty",), 0.5), "penalty"),
        ("unknown top", put(("colour",), 1), "colour"),
        ("links not list", put(("links",), {}), "links"),
        ("no links", put(("links",), []), "links"),
        ("link not object", put(("links", 1), 3), "links[1]"),
        ("unknown link field", put(("links", 1, "power"), 1.0), "links[1].power"),
        ("duplicate id", put(("links", 2, "id"), "k0"), "links[2].id"),
        ("empty id", put(("links", 0, "id"), ""), "links[0].id"),
        ("pmax zero", put(("links", 1, "pmax"), 0.0), "links[1].pmax"),
        ("pmax negative", put(("links", 1, "pmax"), -1.0), "links[1].pmax"),
        ("pmax missing", drop(("links", 0, "pmax")), "links[0].pmax"),
        ("pmax huge", put(("links", 0, "pmax"), 1e200), "links[0].pmax"),
        ("pmax tiny", put(("links", 0, "pmax"), 1e-200), "links[0].pmax"),
        ("pmax bool", put(("links", 0, "pmax"), True), "links[0].pmax"),
        ("pmax string", put(("links", 0, "pmax"), "1"), "links[0].pmax"),
        ("pmax overflow", put(("links", 0, "pmax"), 10**400), "links[0].pmax"),
        ("gain negative", put(("links", 2, "gain"), -0.1), "links[2].gain"),
        ("gain infinite", put(("links", 2, "gain"), NonFiniteLiteral("Infinity")), "links[2].gain"),
        ("weight zero", put(("links", 0, "weight"), 0.0), "links[0].weight"),
        ("rate_min zero", put(("links", 0, "rate_min"), 0.0), "links[0].rate_min"),
        ("rate_min on some links", partial_min, "links[1].rate_min"),
        ("alpha_fair needs rate_min", fair_without_min, "links[2].rate_min"),
        ("both forms", both, "links[0].gain"),
        ("neither form", neither, "links[1].gain"),
        ("interference not list", put(("interference",), {}), "interference"),
        ("unknown rx", put(("interference", 1, "rx"), "k9"), "interference[1].rx"),
        ("unknown tx", put(("interference", 2, "tx"), "k9"), "interference[2].tx"),
        ("rx missing", drop(("interference", 0, "rx")), "interference[0].rx"),
        ("self interference", put(("interference", 1, "tx"), "k2"), "interference[1].tx"),
        ("duplicate pair", put(("interference", 2, "rx"), "k2"), "interference[2]"),
        ("cross gain negative", put(("interference", 1, "gain"), -1e-3), "interference[1].gain"),
        ("cross gain nan", put(("interference", 1, "gain"), NonFiniteLiteral("NaN")), "interference[1].gain"),
        ("cross gain tiny", put(("interference", 1, "gain"), 1e-150), "interference[1].gain"),
        ("cross unknown field", put(("interference", 0, "weight"), 1.0), "interference[0].weight"),
    ]


@pytest.mark.parametrize("name,edit,field", _mutations(), ids=[m[0] for m in _mutations()])
def test_every_validation_error_is_named(name, edit, field):
    doc = copy.deepcopy(_doc())
    edit(doc)
    with pytest.raises(InstanceError) as info:
        PowerInstance.from_dict(doc)
    assert info.value.field == field, str(info.value)


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda d: d["gain_matrix"].pop(), "gain_matrix"),
        (lambda d: d["gain_matrix"][1].pop(), "gain_matrix[1]"),
        (lambda d: d["gain_matrix"].__setitem__(2, 5), "gain_matrix[2]"),
        (lambda d: d["gain_matrix"][2].__setitem__(1, -0.5), "gain_matrix[2][1]"),
        (lambda d: d["gain_matrix"][1].__setitem__(1, NonFiniteLiteral("NaN")), "gain_matrix[1][1]"),
        (lambda d: d["gain_matrix"][0].__setitem__(2, 1e300), "gain_matrix[0][2]"),
        (lambda d: d["links"][0].__setitem__("gain", 1.0), "links[0].gain"),
        (lambda d: d.__setitem__("interference", []), "interference"),
    ],
)
def test_dense_form_errors_are_named(edit, field):
    doc = _dense_doc()
    edit(doc)
    with pytest.raises(InstanceError) as info:
        PowerInstance.from_dict(doc)
    assert info.value.field == field, str(info.value)


def test_not_an_object():
    with pytest.raises(InstanceError, match=r"^\$:"):
        PowerInstance.from_dict([1, 2])


def test_instances_built_in_code_are_validated():
    with pytest.raises(InstanceError, match=r"^links\[1\]\.pmax:"):
        PowerInstance.build(("a", "b"), np.array([1.0, -1.0]), np.eye(2), 0.1)
    with pytest.raises(InstanceError, match=r"^interference\[0\]\.gain:"):
        PowerInstance.build(("a", "b"), np.ones(2), np.array([[1.0, np.nan], [0.0, 1.0]]), 0.1)
    with pytest.raises(InstanceError, match=r"^links\[0\]\.rate_min:"):
        PowerInstance.build(("a", "b"), np.ones(2), np.eye(2), 0.1, utility="alpha_fair")
    with pytest.raises(InstanceError, match=r"^interference\[1\]:"):
        PowerInstance(
            ("a", "b"), np.ones(2), np.ones(2), np.ones(2), None, 0.1,
            np.array([0, 0]), np.array([1, 1]), np.array([0.1, 0.2]),
        )


# ------------------------------------------------------------------ allocations
def test_allocation_round_trip(tmp_path):
    instance = PowerInstance.from_dict(_doc())
    allocation = PowerAllocation(power=np.array([0.5, 2.0, 0.0]))
    doc = allocation.to_dict(instance)
    assert doc == {
        "format": "gnnalloc.power-allocation/v1",
        "links": [{"id": "k0", "power": 0.5}, {"id": "k1", "power": 2.0}, {"id": "k2", "power": 0.0}],
    }
    doc["links"].reverse()  # any order
    assert PowerAllocation.from_dict(instance, doc).power.tolist() == [0.5, 2.0, 0.0]
    path = tmp_path / "allocation.json"
    save_power_allocation(instance, allocation, path)
    assert load_power_allocation(instance, path).power.tolist() == [0.5, 2.0, 0.0]


def test_power_above_pmax_parses():
    instance = PowerInstance.from_dict(_doc())
    doc = PowerAllocation(power=np.array([5.0, -1.0, 0.0])).to_dict(instance)
    assert PowerAllocation.from_dict(instance, doc).power.tolist() == [5.0, -1.0, 0.0]


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda d: d.__setitem__("format", "gnnalloc.allocation/v1"), "format"),
        (lambda d: d.__setitem__("links", {}), "links"),
        (lambda d: d.__setitem__("extra", 1), "extra"),
        (lambda d: d["links"].pop(), "links"),
        (lambda d: d["links"].append({"id": "k0", "power": 1.0}), "links[3].id"),
        (lambda d: d["links"][1].__setitem__("id", "zz"), "links[1].id"),
        (lambda d: d["links"][1].__setitem__("id", 7), "links[1].id"),
        (lambda d: d["links"][2].__setitem__("power", NonFiniteLiteral("NaN")), "links[2].power"),
        (lambda d: d["links"][2].__setitem__("power", "1"), "links[2].power"),
        (lambda d: d["links"][2].__setitem__("power", 10**400), "links[2].power"),
        (lambda d: d["links"][2].pop("power"), "links[2].power"),
        (lambda d: d["links"][0].__setitem__("rate", 1), "links[0].rate"),
        (lambda d: d["links"].__setitem__(0, 3), "links[0]"),
    ],
)
def test_allocation_errors_are_named(edit, field):
    instance = PowerInstance.from_dict(_doc())
    doc = PowerAllocation(power=np.array([0.5, 2.0, 0.0])).to_dict(instance)
    edit(doc)
    with pytest.raises(AllocationError) as info:
        PowerAllocation.from_dict(instance, doc)
    assert info.value.field == field, str(info.value)


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(InstanceError, match=r"^\$: cannot read"):
        load_power_instance(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InstanceError, match=r"^\$: invalid JSON"):
        load_power_instance(tmp_path / "bad.json")
    instance = PowerInstance.from_dict(_doc())
    with pytest.raises(AllocationError, match=r"^\$: invalid JSON"):
        load_power_allocation(instance, tmp_path / "bad.json")


@pytest.mark.parametrize(
    "edit,field",
    [
        ({"cross_rx": np.array([0.9])}, r"interference\[\*\]\.rx"),  # was truncated to link 0
        ({"cross_tx": np.array([1.0])}, r"interference\[\*\]\.tx"),
        ({"pmax": 1.0}, r"links\[\*\]\.pmax"),  # a scalar: was a TypeError (len() of 0-d)
        ({"pmax": "x"}, r"links\[\*\]\.pmax"),  # was numpy's unnamed "could not convert"
    ],
)
def test_instance_arrays_built_in_code_are_checked(edit, field):
    fields = dict(
        link_ids=("a", "b"), pmax=np.ones(2), direct_gain=np.ones(2), weight=np.ones(2), rate_min=None,
        noise=0.1, cross_rx=np.array([0]), cross_tx=np.array([1]), cross_gain=np.array([0.1]),
    )
    with pytest.raises(InstanceError, match=rf"^{field}:"):
        PowerInstance(**{**fields, **edit})
    # an empty interference list is float64 by numpy's default: still no cross gain
    empty = np.array([])
    assert PowerInstance(**{**fields, "cross_rx": empty, "cross_tx": empty, "cross_gain": empty}).num_cross == 0
