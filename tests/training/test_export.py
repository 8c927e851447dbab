"""Exporting a Lightning checkpoint to the small inference checkpoint."""

import pytest
import torch

from gnnalloc.families.edge.nn.allocator import Allocator
from gnnalloc.training import export


def _lightning_like(model: Allocator, **entries) -> dict:
    """What AllocatorModule's checkpoint holds for the allocator (no "format", prefixed keys)."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    return {"state_dict": state, "hyper_parameters": model.config(), "global_step": 7, **entries}


def test_each_file_is_read_once(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = Allocator(hidden=16, heads=2, layers=1)
    source = tmp_path / "last.ckpt"
    torch.save(_lightning_like(model), source)
    reads = []
    real = export.load_checkpoint_data
    monkeypatch.setattr(export, "load_checkpoint_data", lambda path, *a: reads.append(path) or real(path, *a))
    metadata = export.export_checkpoint(source, tmp_path / "out.ckpt")
    assert reads == [source] and metadata["global_step"] == 7
    restored = Allocator.from_checkpoint(tmp_path / "out.ckpt")
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)


def test_a_malformed_training_record_is_named(tmp_path):
    model = Allocator(hidden=16, heads=2, layers=1)
    source = tmp_path / "last.ckpt"
    torch.save(_lightning_like(model, global_step="seven"), source)
    with pytest.raises(ValueError, match="^checkpoint: .* malformed training record"):
        export.export_checkpoint(source, tmp_path / "out.ckpt")
