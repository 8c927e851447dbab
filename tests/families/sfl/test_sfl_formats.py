"""Parsing, dumping and validation of gnnalloc.sfl/v1 and gnnalloc.sfl-allocation/v1."""

from __future__ import annotations

import numpy as np
import pytest
from _sfl_fixtures import small_doc

from gnnalloc.core import AllocationError, InstanceError, NonFiniteLiteral
from gnnalloc.families.sfl import SflAllocation, SflInstance


def test_round_trip():
    doc = small_doc()
    instance = SflInstance.from_dict(doc)
    assert instance.num_clients == 3 and instance.num_layers == 2
    assert instance.to_dict() == doc
    assert SflInstance.from_dict(instance.to_dict()).to_dict() == doc


def test_defaults_for_optional_fields():
    doc = small_doc()
    del doc["objective"]
    del doc["clients"][0]["weight"], doc["clients"][0]["cycles_per_flop"]
    instance = SflInstance.from_dict(doc)
    assert instance.objective == "minmax"
    assert instance.weight[0] == 1.0 and instance.cycles_per_flop[0] == 1.0


def _mutate(path, value):
    doc = small_doc()
    target = doc
    *parents, last = path
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize("path, value, field", [
    (("clients", 2, "power_max"), -1.0, "clients[2].power_max"),
    (("clients", 1, "gain"), 0.0, "clients[1].gain"),
    (("clients", 1, "kappa"), NonFiniteLiteral("NaN"), "clients[1].kappa"),
    (("clients", 0, "samples"), "64", "clients[0].samples"),
    (("clients", 0, "energy_max"), True, "clients[0].energy_max"),
    (("clients", 0, "power_min"), 0.5, "clients[0].power_min"),
    (("clients", 0, "cpu_min"), 3e9, "clients[0].cpu_min"),
    (("clients", 0, "colour"), 1.0, "clients[0].colour"),
    (("clients", 0, "gain"), KeyError, "clients[0].gain"),
    (("clients", 2, "id"), "c0", "clients[2].id"),
    (("clients", 2, "id"), "", "clients[2].id"),
    (("layers", 0, "device_flops"), 0.0, "layers[0].device_flops"),
    (("layers", 1, "server_flops"), -1.0, "layers[1].server_flops"),
    (("layers", 1, "activation_bits"), 1e300, "layers[1].activation_bits"),
    (("layers", 1, "name"), "block2", "layers[1].name"),
    (("server", "noise_psd"), 0, "server.noise_psd"),
    (("server", "cpu"), KeyError, "server.cpu"),
    (("server", "extra"), 1, "server.extra"),
    (("objective",), "maxmin", "objective"),
    (("format",), "gnnalloc.instance/v1", "format"),
    (("layers",), [], "layers"),
    (("clients",), {}, "clients"),
    (("surprise",), 1, "surprise"),
])
def test_bad_instance_fields_are_named(path, value, field):
    with pytest.raises(InstanceError) as info:
        SflInstance.from_dict(_mutate(path, value))
    assert info.value.field == field


def test_instances_built_in_code_are_validated():
    instance = SflInstance.from_dict(small_doc())
    fields = {name: getattr(instance, name) for name in instance.__dataclass_fields__}
    fields["power_max"] = np.array([0.2, np.inf, 0.2])
    with pytest.raises(InstanceError) as info:
        SflInstance(**fields)
    assert info.value.field == "clients[1].power_max"


def _allocation_doc():
    return {"format": "gnnalloc.sfl-allocation/v1", "clients": [
        {"id": "c2", "layer": "block3", "bandwidth_share": 0.3, "cpu": 1e9, "power": 0.1},
        {"id": "c0", "layer": "block2", "bandwidth_share": 0.2, "cpu": 1.5e9, "power": 0.2},
        {"id": "c1", "layer": "block2", "bandwidth_share": 0.5, "cpu": 5e8, "power": 0.05},
    ]}


def test_allocation_round_trip_in_instance_order():
    instance = SflInstance.from_dict(small_doc())
    allocation = SflAllocation.from_dict(instance, _allocation_doc())
    np.testing.assert_array_equal(allocation.layer, [0, 0, 1])
    np.testing.assert_array_equal(allocation.share, [0.2, 0.5, 0.3])
    again = SflAllocation.from_dict(instance, allocation.to_dict(instance))
    np.testing.assert_array_equal(again.cpu, allocation.cpu)


@pytest.mark.parametrize("index, key, value, field", [
    (0, "layer", "block9", "clients[0].layer"),
    (0, "bandwidth_share", 1.5, "clients[0].bandwidth_share"),
    (1, "bandwidth_share", -0.1, "clients[1].bandwidth_share"),
    (1, "cpu", 0.0, "clients[1].cpu"),
    (2, "power", NonFiniteLiteral("Infinity"), "clients[2].power"),
    (2, "id", "c9", "clients[2].id"),
    (2, "id", "c2", "clients[2].id"),
    (0, "speed", 1, "clients[0].speed"),
])
def test_bad_allocation_fields_are_named(index, key, value, field):
    instance = SflInstance.from_dict(small_doc())
    doc = _allocation_doc()
    doc["clients"][index][key] = value
    with pytest.raises(AllocationError) as info:
        SflAllocation.from_dict(instance, doc)
    assert info.value.field == field


def test_missing_client_in_allocation_is_named():
    instance = SflInstance.from_dict(small_doc())
    doc = _allocation_doc()
    del doc["clients"][0]
    with pytest.raises(AllocationError, match="client 'c2' is missing") as info:
        SflAllocation.from_dict(instance, doc)
    assert info.value.field == "clients"


def test_junk_anywhere_is_named_never_a_crash():
    """Every leaf of the document replaced by junk: always an InstanceError naming a field."""
    junk = [None, "x", [], {}, -1, 0, True, NonFiniteLiteral("NaN"), 10**400, 1e-300, 1e300]
    doc = small_doc()

    def leaves(node, path=()):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, path + (key,))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from leaves(value, path + (i,))
        else:
            yield path

    for path in leaves(doc):
        for value in junk:
            broken = small_doc()
            target = broken
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            try:
                SflInstance.from_dict(broken)
            except InstanceError as error:
                assert error.field and error.message


@pytest.mark.parametrize(
    "layer",
    [np.zeros((3, 1), dtype=np.int64), np.int64(0)],  # (3, 1) was accepted; a scalar an IndexError
)
def test_allocation_layer_must_be_a_vector(layer):
    with pytest.raises(AllocationError, match=r"^clients\[\*\]\.layer: expected an \(N,\) array"):
        SflAllocation(layer=layer, share=np.full(3, 0.3), cpu=np.ones(3), power=np.ones(3))
