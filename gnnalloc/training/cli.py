"""``gnnalloc fit|validate|test``: LightningCLI over a family's module and data module.

The family comes from ``--family NAME`` or the ``family:`` key of a ``--config`` file (default:
``edge``); its ``lightning_classes()`` give the Lightning module and data module, and its
``lightning_links`` the settings the two share.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from gnnalloc.core import ProblemFamily, get_family
from gnnalloc.nn import DEFAULT_FAMILY

__all__ = ["lightning_main"]


class _SettingError(Exception):
    """A module or data module refused its settings (a ValueError naming the field)."""


class _CLI(LightningCLI):
    family: ProblemFamily

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--family", default=self.family.name, help="the problem family trained (a config key)"
        )
        # Settings the module and the data module share (edge: the metapath cap of the graphs).
        for source, target in getattr(self.family, "lightning_links", ()):
            parser.link_arguments(source, target)

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


def _family_name(argv: Sequence[str]) -> str:
    """``--family NAME`` from ``argv``, else the last ``family:`` of its ``--config`` files.

    Raises:
        _SettingError: naming ``family`` where a config file gives one that is not a name.
    """
    import yaml

    name = DEFAULT_FAMILY
    for i, arg in enumerate(argv):
        value = argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("--config="):
            arg, value = "--config", arg.split("=", 1)[1]
        if arg == "--config" and value is not None and Path(value).is_file():
            try:
                data = yaml.safe_load(Path(value).read_text())
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue  # LightningCLI reports the bad file itself
            if isinstance(data, dict) and "family" in data:
                if not isinstance(data["family"], str):  # else the default family would train
                    raise _SettingError(f"family: expected a family name, got {data['family']!r} in {value}")
                name = data["family"]
    for i, arg in enumerate(argv):
        if arg == "--family" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--family="):
            name = arg.split("=", 1)[1]
    return name


def lightning_main(argv: Sequence[str] | None = None) -> int:
    """Run LightningCLI with ``argv`` (``fit --config training/configs/default.yaml ...``;
    ``None``: the process's command line)."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from gnnalloc.core import cut_message

    # Argument errors raise instead of printing ~80 lines of usage before the one that matters.
    quiet = {"exit_on_error": False}
    try:
        family = get_family(_family_name(sys.argv[1:] if argv is None else list(argv)))
        classes = getattr(family, "lightning_classes", None)
        if classes is None:
            raise _SettingError(f"family: {family.name!r} has no training module")
    except (ValueError, _SettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    module, data_module = classes()
    cli = type("_FamilyCLI", (_CLI,), {"family": family})
    try:
        cli(
            module,
            data_module,
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
