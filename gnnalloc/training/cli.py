"""``gnnalloc fit|validate|test``: LightningCLI over the module and data module."""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from lightning.pytorch.cli import LightningCLI

from gnnalloc.families.edge.training.data import InstanceDataModule
from gnnalloc.families.edge.training.module import AllocatorModule

__all__ = ["lightning_main"]


class _SettingError(Exception):
    """A module or data module refused its settings (a ValueError naming the field)."""


class _CLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One architecture knob lives in both: the graph builder must cap metapaths like the model.
        parser.link_arguments("model.max_metapath_neighbors", "data.max_metapath_neighbors")

    def instantiate_classes(self) -> None:
        # The classes check their settings by name; a bad one is the user's typo, not a crash.
        try:
            super().instantiate_classes()
        except ValueError as exc:
            raise _SettingError(str(exc)) from None

    def before_instantiate_classes(self) -> None:
        # WandbLogger(offline=True) overwrites WANDB_MODE with "dryrun", so a user's
        # WANDB_MODE=disabled would still write an offline run: drop W&B loggers instead.
        if os.environ.get("WANDB_MODE") != "disabled":
            return
        trainer = (self.config[self.subcommand] if self.subcommand else self.config).trainer
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        kept = [logger for logger in loggers if not _is_wandb(logger)]
        if len(kept) < len(loggers):
            trainer.logger = kept if len(kept) > 1 else (kept[0] if kept else False)


def _is_wandb(logger: Any) -> bool:
    class_path = getattr(logger, "class_path", None) or ""
    return class_path.rsplit(".", 1)[-1] == "WandbLogger"


def lightning_main(argv: Sequence[str] | None = None) -> int:
    """Run LightningCLI with ``argv`` (``fit --config training/configs/default.yaml ...``;
    ``None``: the process's command line)."""
    try:
        _CLI(
            AllocatorModule,
            InstanceDataModule,
            args=None if argv is None else list(argv),
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
        )
    except _SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
