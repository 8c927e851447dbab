"""Shared fixtures. W&B never touches the network in tests."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(autouse=True)
def _restore_wandb_mode():
    """WandbLogger(offline=True) sets WANDB_MODE process-wide; put it back after each test."""
    before = os.environ.get("WANDB_MODE")
    yield
    if before is None:
        os.environ.pop("WANDB_MODE", None)
    else:
        os.environ["WANDB_MODE"] = before


def tiny_instance_dict() -> dict:
    """Three servers in a line, four users; hand-checkable."""
    return {
        "format": "gnnalloc.instance/v1",
        "penalty": 10.0,
        "alpha": 1.0,
        "servers": [
            {"id": "s0", "compute": 10.0, "bandwidth": 20.0, "services": ["video", "ar"]},
            {"id": "s1", "compute": 5.0, "bandwidth": 10.0, "services": ["video"]},
            {"id": "s2", "compute": 8.0, "bandwidth": 10.0},
        ],
        "links": [{"a": "s0", "b": "s1", "capacity": 3.0}, {"a": "s1", "b": "s2", "capacity": 2.0}],
        "users": [
            {"id": "u0", "server": "s0", "service": "video", "compute_min": 2.0,
             "bandwidth_min": 4.0, "data_rate": 0.5, "weight": 1.0},
            {"id": "u1", "server": "s1", "service": "ar", "compute_min": 3.0,
             "bandwidth_min": 2.0, "data_rate": 1.0, "weight": 2.0},
            {"id": "u2", "server": "s1", "service": "video", "compute_min": 4.0,
             "bandwidth_min": 5.0, "data_rate": 0.2},
            {"id": "u3", "server": "s2", "compute_min": 1.0, "bandwidth_min": 1.0},
        ],
    }


@pytest.fixture
def tiny_dict() -> dict:
    return tiny_instance_dict()


def _edge_cases():
    """Instances every allocation method must survive: feasible, finite output, no traceback."""
    from gnnalloc import Instance, random_instance

    base = random_instance(40, 6, 1.2, 3)
    yield "zero-capacity servers", dataclasses.replace(
        base,
        server_compute=np.where(np.arange(6) < 2, 0.0, base.server_compute),
        server_bandwidth=np.where(np.arange(6) == 3, 0.0, base.server_bandwidth),
    )
    yield "zero-capacity links", dataclasses.replace(base, link_capacity=np.zeros_like(base.link_capacity))
    yield "no links", dataclasses.replace(
        base, link_a=base.link_a[:0], link_b=base.link_b[:0], link_capacity=base.link_capacity[:0]
    )
    rng = np.random.default_rng(0)
    yield "demand ratios 1e-6..1e6", dataclasses.replace(
        base,
        compute_min=base.compute_min * 10.0 ** rng.uniform(-6, 6, 40),
        bandwidth_min=base.bandwidth_min * 10.0 ** rng.uniform(-6, 6, 40),
    )
    yield "huge and tiny capacities", dataclasses.replace(
        base, server_compute=base.server_compute * 10.0 ** rng.uniform(-6, 6, 6)
    )
    doc = {
        "format": "gnnalloc.instance/v1",
        "servers": [
            {"id": "a", "compute": 5.0, "bandwidth": 5.0, "services": ["x"]},
            {"id": "lonely", "compute": 3.0, "bandwidth": 2.0},
        ],
        "users": [
            {"id": "u0", "server": "a", "service": "y", "compute_min": 1.0, "bandwidth_min": 1.0},
            {"id": "u1", "server": "a", "service": "x", "compute_min": 1.0, "bandwidth_min": 1.0},
        ],
    }
    yield "no-candidate user, isolated server", Instance.from_dict(doc)
    yield "one user", random_instance(1, 1, 1.0, 0)
    yield "no users", Instance.from_dict(
        {"format": "gnnalloc.instance/v1", "servers": [{"id": "a", "compute": 5.0, "bandwidth": 5.0}], "users": []}
    )
    yield "empty network", Instance.from_dict({"format": "gnnalloc.instance/v1", "servers": [], "users": []})


EDGE_CASE_NAMES = [name for name, _ in _edge_cases()]


@pytest.fixture(params=EDGE_CASE_NAMES)
def edge_case(request):
    """``(name, instance)`` for each instance of :func:`_edge_cases`."""
    return request.param, dict(_edge_cases())[request.param]
