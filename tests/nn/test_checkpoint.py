"""Checkpoints record their family; one loader reads every family's files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gnnalloc.families.edge import FAMILY, Allocator
from gnnalloc.nn import DEFAULT_FAMILY, checkpoint_family, load_checkpoint_data


def test_saved_checkpoints_record_their_family(tmp_path):
    path = tmp_path / "m.ckpt"
    Allocator(hidden=8, heads=2, layers=1).save(path)
    data = load_checkpoint_data(path)
    assert data["family"] == "edge" == checkpoint_family(data)
    assert isinstance(FAMILY.load_allocator(data, path), Allocator)


def test_a_checkpoint_without_family_is_edge():
    from gnnalloc.families.edge._methods import shares_checkpoint

    data = load_checkpoint_data(shares_checkpoint())
    assert "family" not in data  # shipped before families existed
    assert checkpoint_family(data) == DEFAULT_FAMILY == "edge"


def test_another_family_s_checkpoint_is_refused_by_name(tmp_path):
    path = tmp_path / "p.ckpt"
    data = Allocator(hidden=8, heads=2, layers=1).checkpoint_dict()
    data["family"] = "power"
    torch.save(data, path)
    with pytest.raises(ValueError, match="is a model of the 'power' family, not 'edge'"):
        Allocator.from_checkpoint(path)
    data["family"] = 3
    torch.save(data, path)
    with pytest.raises(ValueError, match="family is a int, not a name"):
        Allocator.from_checkpoint(path)


def test_the_shipped_checkpoint_loads_into_the_generic_encoder():
    from gnnalloc.families.edge._methods import shares_checkpoint

    model = Allocator.from_checkpoint(shares_checkpoint())
    state = load_checkpoint_data(shares_checkpoint())["state_dict"]
    assert set(model.state_dict()) == set(state)  # parameter names unchanged by the move


def test_the_shipped_gnn_checkpoint_is_a_price_model():
    from gnnalloc.families.edge import PricePredictor

    path = FAMILY.default_checkpoint
    data = load_checkpoint_data(path)
    assert data["family"] == "edge" and data["model"] == "prices"
    assert isinstance(FAMILY.load_allocator(data, path), PricePredictor)


@pytest.mark.parametrize("shipped", ["default.ckpt", "prices.ckpt", "power.ckpt", "sfl.ckpt"])
@pytest.mark.parametrize("metadata", ["abc", ["abc"], 1, "", 0, []])
def test_a_checkpoint_whose_metadata_is_not_a_mapping_is_refused_by_name(tmp_path, capsys, shipped, metadata):
    """Every family's model loading names the checkpoint (exit 2 on the command line) where
    ``dict(metadata)`` raised Python's own ValueError or TypeError (a traceback)."""
    import torch

    from gnnalloc.cli import main

    root = Path(__file__).resolve().parents[2] / "checkpoints"
    bad = tmp_path / shipped
    torch.save({**torch.load(root / shipped, weights_only=True), "metadata": metadata}, bad)
    assert main(["evaluate", "--checkpoint", str(bad)]) == 2  # refused before any evaluation
    assert capsys.readouterr().err.startswith(f"error: checkpoint: {str(bad)!r}: metadata is a ")


@pytest.mark.parametrize("path", [1, None, 2.5, ["a.ckpt"]])
def test_a_checkpoint_that_is_no_path_is_named(path):
    """Every family's gnn loads through here (was a TypeError from pathlib, naming nothing)."""
    from gnnalloc.core import InputError, solve
    from gnnalloc.families.edge import random_instance
    from gnnalloc.families.power import gaussian

    with pytest.raises(InputError, match="^checkpoint: expected a path"):
        load_checkpoint_data(path)
    if path is not None:  # None is the shipped model
        for instance in (random_instance(4, 2, seed=0), gaussian(3)):
            with pytest.raises(InputError, match="^checkpoint: expected a path"):
                solve(instance, "gnn", checkpoint=path)
