"""Shared fixtures. W&B never touches the network in tests."""

from __future__ import annotations

import os

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
