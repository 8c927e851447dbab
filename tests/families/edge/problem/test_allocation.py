import copy

import numpy as np
import pytest

from gnnalloc.families.edge.problem import Allocation, AllocationError, Instance, load_allocation, save_allocation


def test_round_trip(tmp_path, tiny_dict):
    inst = Instance.from_dict(tiny_dict)
    alloc = Allocation(np.arange(inst.num_pairs, dtype=float), np.ones(inst.num_users))
    save_allocation(inst, alloc, tmp_path / "a.json")
    again = load_allocation(inst, tmp_path / "a.json")
    assert np.array_equal(again.compute, alloc.compute)
    assert np.array_equal(again.bandwidth, alloc.bandwidth)
    doc = alloc.to_dict(inst)
    assert [u["id"] for u in doc["users"]] == list(inst.user_ids)
    assert doc["users"][0]["compute"] == {"s0": 0.0, "s1": 1.0}


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda d: d["users"].pop(), "users"),
        (lambda d: d["users"].append(copy.deepcopy(d["users"][0])), "users[4].id"),
        (lambda d: d["users"][0].update(id="nobody"), "users[0].id"),
        (lambda d: d["users"][0]["compute"].update(s2=1.0), "users[0].compute.s2"),
        (lambda d: d["users"][0].update(bandwidth=float("nan")), "users[0].bandwidth"),
        (lambda d: d["users"][0].update(bandwidth="1"), "users[0].bandwidth"),
        (lambda d: d.update(format="x"), "format"),
        # Unknown fields are refused, as in the other families' formats: a misspelt "compute"
        # would otherwise count as none.
        (lambda d: d.update(extra=1), "extra"),
        # Another document (an instance) is named by its format, not by its first unknown field.
        (lambda d: d.update(format="gnnalloc.instance/v1", alpha=1.0), "format"),
        (lambda d: d["users"][0].update(computee=d["users"][0].pop("compute")), "users[0].computee"),
    ],
)
def test_validation(tiny_dict, mutate, field):
    inst = Instance.from_dict(tiny_dict)
    doc = Allocation(np.zeros(inst.num_pairs), np.zeros(inst.num_users)).to_dict(inst)
    mutate(doc)
    with pytest.raises(AllocationError) as info:
        Allocation.from_dict(inst, doc)
    assert info.value.field == field
