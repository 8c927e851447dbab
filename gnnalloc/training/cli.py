"""``gnnalloc fit|validate|test``: LightningCLI over the module and data module."""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from lightning.pytorch.cli import LightningCLI

from gnnalloc.training.data import InstanceDataModule
from gnnalloc.training.module import AllocatorModule

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


    def _parse_ckpt_path(self) -> None:
        # Lightning reports a missing, truncated or hostile checkpoint with a traceback (from
        # here or deep inside the restore); check it first (weights only: nothing in it is run).
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path is not None and str(ckpt_path) not in ("last", "best", "hpc", "registry"):
            import torch

            try:
                data = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                raise _SettingError(f"ckpt_path: no file at {str(ckpt_path)!r}") from None
            except Exception as exc:  # truncated, not a checkpoint, or unsafe to unpickle
                raise _SettingError(
                    f"ckpt_path: cannot load {str(ckpt_path)!r}: {type(exc).__name__}: {exc}"
                ) from None
            if not isinstance(data, dict) or "state_dict" not in data:
                raise _SettingError(f"ckpt_path: {str(ckpt_path)!r} is not a Lightning checkpoint")
        super()._parse_ckpt_path()


def _is_wandb(logger: Any) -> bool:
    class_path = getattr(logger, "class_path", None) or ""
    return class_path.rsplit(".", 1)[-1] == "WandbLogger"


def lightning_main(argv: Sequence[str] | None = None) -> int:
    """Run LightningCLI with ``argv`` (``fit --config training/configs/default.yaml ...``;
    ``None``: the process's command line)."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from gnnalloc.core import cut_message

    # Argument errors raise instead of printing ~80 lines of usage before the one that matters.
    quiet = {"exit_on_error": False}
    try:
        _CLI(
            AllocatorModule,
            InstanceDataModule,
            args=None if argv is None else list(argv),
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={**quiet, "fit": quiet, "validate": quiet, "test": quiet},
        )
    except _SettingError as exc:
        message = f"{exc}"
    except ArgumentError as exc:
        message = f"arguments: {exc}"
    except MisconfigurationException as exc:  # the Trainer refusing a setting, e.g. max_steps -5
        message = f"trainer: {exc}"
    except RecursionError:
        message = "config: nested too deeply (a self-referencing YAML anchor?)"
    except UnicodeDecodeError as exc:
        message = f"config: not UTF-8 text at byte {exc.start}"
    else:
        return 0
    print(f"error: {cut_message(message)}", file=sys.stderr)
    return 2
