"""The registry finds the edge family by itself; one dispatch for solve, score, load_instance."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gnnalloc
from gnnalloc.core import (
    Generator, InstanceError, ProblemFamily, Setting, families, family_for_format, family_of,
    get_family, load_instance, parse_instance, score, solve,
)
from gnnalloc.families.edge import FAMILY, Instance, random_instance


def test_edge_family_is_discovered_and_implements_the_protocol():
    assert families()["edge"] is FAMILY
    assert isinstance(FAMILY, ProblemFamily)
    assert FAMILY.instance_format == "gnnalloc.instance/v1"
    assert FAMILY.allocation_format == "gnnalloc.allocation/v1"
    assert FAMILY.reference_method == "exact"
    assert set(FAMILY.methods) == {"exact", "dual", "equal", "proportional", "gnn", "gnn-shares"}
    assert {"random", "eua"} <= set(FAMILY.generators)
    assert get_family("edge") is FAMILY
    assert family_for_format("gnnalloc.allocation/v1") is FAMILY


def test_default_checkpoint_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert FAMILY.default_checkpoint.is_absolute() and FAMILY.default_checkpoint.is_file()


def test_unknown_family_and_format_are_named():
    with pytest.raises(ValueError, match="^family: unknown 'nope'"):
        get_family("nope")
    with pytest.raises(InstanceError, match="^format: unknown format 'x/v9', expected one of"):
        parse_instance({"format": "x/v9"})
    with pytest.raises(InstanceError, match="^format: missing"):
        parse_instance({"users": []})
    with pytest.raises(TypeError, match="^instance: "):
        family_of(object())


def test_load_instance_dispatches_by_format(tmp_path, tiny_dict):
    path = tmp_path / "i.json"
    path.write_text(json.dumps(tiny_dict))
    instance = load_instance(path)
    assert isinstance(instance, Instance) and family_of(instance) is FAMILY
    assert gnnalloc.load_instance is load_instance


def test_solve_dispatches_and_names_bad_methods_and_options():
    instance = random_instance(12, 3, 1.0, 0)
    result = solve(instance)  # the family's reference method
    assert result.method == "exact" and result.certified_optimal
    assert solve(instance, "equal").method == "equal"
    with pytest.raises(ValueError, match="^method: unknown 'magic' for the edge family"):
        solve(instance, "magic")
    with pytest.raises(ValueError, match="^formulation: only method 'exact' takes it, not 'dual'"):
        solve(instance, "dual", formulation="socp")
    with pytest.raises(ValueError, match="^colour: method 'dual' takes no such option"):
        solve(instance, "dual", colour=1)


def test_gnn_uses_the_shipped_checkpoint_by_default():
    instance = random_instance(15, 3, 1.0, 0)
    shipped = solve(instance, "gnn")
    explicit = solve(instance, "gnn", checkpoint=FAMILY.default_checkpoint)
    np.testing.assert_array_equal(shipped.allocation.compute, explicit.allocation.compute)
    assert shipped.method == "gnn"


def test_score_dispatches_by_family():
    instance = random_instance(10, 2, 1.0, 0)
    allocation = solve(instance, "proportional").allocation
    report = score(instance, allocation)
    assert report == FAMILY.score(instance, allocation)
    assert [label for label, _ in report.rows()][0] == "objective"


def test_generators_take_size_seed_and_settings():
    generator = FAMILY.generators["random"]
    assert isinstance(generator, Generator) and generator.size == "users"
    assert all(isinstance(s, Setting) for s in generator.settings)
    a = generator(8, 3, servers=2, load=1.2)
    b = random_instance(8, 2, 1.2, 3)
    assert a.to_dict() == b.to_dict()


def test_an_infinite_bound_is_no_bound():
    """A bound that proves nothing (infinite: here the dual's prices of capacities of 1e100 for
    users wanting 1e-100 at a penalty of 1e100) is reported as ``None``, never as a figure. (With
    the link, the shipped price model predicts prices with a finite bound for ``gnn``; without
    it, neither start has one.)"""
    servers = [{"id": f"s{i}", "compute": 1e100, "bandwidth": 1e100, "services": ["a"]} for i in range(2)]
    users = [
        {"id": f"u{i}", "server": f"s{i % 2}", "service": "a", "compute_min": 1e-100, "bandwidth_min": 1e-100,
         "data_rate": 1e-100, "weight": 1.0}
        for i in range(4)
    ]
    linked = [{"a": "s0", "b": "s1", "capacity": 1e100}]
    for links, methods in ((linked, ("dual",)), ([], ("dual", "gnn"))):
        instance = Instance.from_dict({
            "format": "gnnalloc.instance/v1", "penalty": 1e100, "alpha": 1.0, "servers": servers,
            "links": links, "users": users,
        })
        for method in methods:
            result = gnnalloc.solve(instance, method, gap_tol=0.02, time_limit=5)
            assert result.upper_bound is None, (method, links, result.upper_bound)
            assert "inf" not in result.status
            assert gnnalloc.score(instance, result.allocation, upper_bound=result.upper_bound).gap_bound is None
