"""``gnnalloc fit|validate|test``: LightningCLI over the module and data module."""

from __future__ import annotations

from typing import Sequence

from lightning.pytorch.cli import LightningCLI

from gnnalloc.training.data import InstanceDataModule
from gnnalloc.training.module import AllocatorModule

__all__ = ["lightning_main"]


class _CLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One architecture knob lives in both: the graph builder must cap metapaths like the model.
        parser.link_arguments("model.max_metapath_neighbors", "data.max_metapath_neighbors")


def lightning_main(argv: Sequence[str]) -> int:
    """Run LightningCLI with ``argv`` (``fit --config training/configs/default.yaml ...``)."""
    _CLI(
        AllocatorModule,
        InstanceDataModule,
        args=list(argv),
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
    return 0
