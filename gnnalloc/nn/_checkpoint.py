"""Writing and reading checkpoint files, the same way for every family's model."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any, ClassVar, Self

import torch

from gnnalloc.core import InputError

__all__ = [
    "CHECKPOINT_FORMAT", "DEFAULT_FAMILY", "Checkpointed", "Configured", "checkpoint_family", "checkpoint_payload",
    "load_checkpoint_data", "rebuild_model",
]

CHECKPOINT_FORMAT = "gnnalloc.checkpoint/v1"
#: The family of checkpoints that record none (every checkpoint written before families existed).
DEFAULT_FAMILY = "edge"


def checkpoint_payload(
    module: torch.nn.Module, family: str, hyper_parameters: dict[str, Any], metadata: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """The dictionary the checkpoint file of ``module`` holds: ``format``, ``family``, the
    ``hyper_parameters`` that rebuild it, its weights on the CPU and free ``metadata`` (plus any
    further ``fields``, e.g. which model of a family it is). Plain tensors and builtins only, so
    :func:`load_checkpoint_data` reads it with ``weights_only=True``."""
    return {
        "format": CHECKPOINT_FORMAT, "family": family, **fields,
        "hyper_parameters": dict(hyper_parameters),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metadata": metadata,
    }


def load_checkpoint_data(path: str | Path, map_location: str | torch.device | None = None) -> dict[str, Any]:
    """The dictionary stored in a checkpoint file, loaded with ``weights_only=True`` (no code in
    the file runs).

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: naming ``checkpoint`` if ``path`` is no path, or the file cannot be unpickled
            or holds no dictionary.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"checkpoint: expected a path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {str(path)!r}")
    device = torch.device(map_location or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        # torch.load would fail with a deserialisation error that reads like a corrupt file.
        raise InputError(f"map_location: {str(map_location)!r} asks for CUDA, which this machine does not have")
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # unpickling errors have many types; all mean "not ours"
        message = " ".join(str(exc).split())[:300]  # torch's messages span paragraphs
        raise InputError(f"checkpoint: {str(path)!r} is not a loadable checkpoint ({message})") from None
    if not isinstance(data, dict):
        raise InputError(f"checkpoint: {str(path)!r} holds a {type(data).__name__}, not a checkpoint")
    return data


def checkpoint_family(data: dict[str, Any], path: str | Path = "checkpoint") -> str:
    """The family a loaded checkpoint belongs to (its ``family`` entry; ``"edge"`` if absent).

    Raises:
        ValueError: naming ``checkpoint`` when the entry is not a string.
    """
    family = data.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str):
        raise InputError(f"checkpoint: {str(path)!r}: family is a {type(family).__name__}, not a name")
    return family


def checkpoint_metadata(data: dict[str, Any], path: str | Path = "checkpoint") -> dict[str, Any]:
    """A loaded checkpoint's free ``metadata`` entry (empty if absent), as a new dictionary.

    Raises:
        InputError: naming ``checkpoint`` when the entry is not a mapping.
    """
    metadata = data.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InputError(f"checkpoint: {str(path)!r}: metadata is a {type(metadata).__name__}, not a mapping")
    return dict(metadata)


def rebuild_model(
    cls: type,
    data: dict[str, Any],
    path: str | Path,
    family: str,
    limits: dict[str, tuple[int, int]],
    what: str,
) -> Any:
    """The ``cls`` model of a loaded checkpoint of ``family``: a gnnalloc checkpoint, or a
    Lightning checkpoint whose module holds the model as ``model``.

    Args:
        cls: the model class; its constructor's parameters are read from ``hyper_parameters``.
        data, path: the checkpoint (:func:`load_checkpoint_data`) and its name for errors.
        family: the family the checkpoint must record.
        limits: ``name -> (lowest, highest)`` for integer sizes, checked before any tensor is
            allocated (a crafted ``hidden = 2**40`` is a named error, not an allocation).
        what: the model's name in errors.

    Raises:
        ValueError: naming the bad entry (family, ``hyper_parameters.*``, ``state_dict``).
    """
    import inspect

    from torch import Tensor

    name = repr(str(path))
    recorded = checkpoint_family(data, path)
    if recorded != family:
        raise InputError(f"checkpoint: {name} is a model of the {recorded!r} family, not {family!r}")
    hparams, state = data.get("hyper_parameters") or {}, data.get("state_dict")
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise InputError(f"checkpoint: {name} has no hyper_parameters mapping and state_dict")
    if data.get("format") is None:  # Lightning: the module holds the model as `model`
        state = {k[len("model."):]: v for k, v in state.items() if isinstance(k, str) and k.startswith("model.")}
    settings = {k: v for k, v in hparams.items() if k in inspect.signature(cls).parameters}
    for key, (low, high) in limits.items():
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise InputError(f"checkpoint: {name}: hyper_parameters.{key}: must be an integer in [{low}, {high}], got {value!r}")
    try:
        model = cls(**settings)
    except (TypeError, ValueError) as exc:
        raise InputError(f"checkpoint: {name}: hyper_parameters.{exc}") from None
    bad = [k for k, v in state.items() if not (isinstance(v, Tensor) and bool(torch.isfinite(v).all()))]
    if bad:
        raise InputError(f"checkpoint: {name}: state_dict[{bad[0]!r}] is not a finite tensor")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        problem = (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
                   if unexpected else f"{shaped[0]!r} has another shape")
        raise InputError(f"checkpoint: {name} does not match the {what} ({problem})")
    model.load_state_dict(state)
    model.metadata = checkpoint_metadata(data, path)
    return model.eval()


class Configured:
    """A model whose constructor arguments are its ``hparams`` dictionary, given back by
    :meth:`config` (a mixin: every family's model, which the server describes by it)."""

    hparams: dict[str, Any]

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (recorded in checkpoints)."""
        return dict(self.hparams)


class Checkpointed(Configured):
    """Checkpoint writing and reading for a family's ``nn.Module`` whose constructor arguments
    are its ``hparams`` dictionary (a mixin: ``class Model(Checkpointed, nn.Module)``).

    The class states ``family_name`` (recorded in, and required of, every checkpoint),
    ``size_limits`` (``name -> (lowest, highest)`` for integer constructor arguments, checked
    before any tensor is allocated) and ``model_name`` (how errors call it).
    """

    family_name: ClassVar[str]
    size_limits: ClassVar[dict[str, tuple[int, int]]]
    model_name: ClassVar[str]

    def checkpoint_dict(self, **metadata: Any) -> dict[str, Any]:
        """A small ``weights_only``-loadable checkpoint recording the family (:func:`checkpoint_payload`)."""
        assert isinstance(self, torch.nn.Module)
        return checkpoint_payload(self, self.family_name, self.config(), metadata)

    def save(self, path: str | Path, **metadata: Any) -> None:
        """Write :meth:`checkpoint_dict` to ``path``."""
        torch.save(self.checkpoint_dict(**metadata), Path(path))

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device | None = None) -> Self:
        """The model of a gnnalloc or Lightning checkpoint file (``weights_only`` loading).

        Raises:
            FileNotFoundError: if ``path`` is not a file.
            ValueError: naming ``checkpoint`` or the bad entry (:meth:`from_checkpoint_data`).
        """
        model = cls.from_checkpoint_data(load_checkpoint_data(path, map_location), path)
        return model if map_location is None else model.to(map_location)

    @classmethod
    def from_checkpoint_data(cls, data: dict[str, Any], path: str | Path = "checkpoint") -> Self:
        """The model of a loaded checkpoint: a gnnalloc checkpoint, or a Lightning checkpoint of
        the family's training module (which holds the model as ``model``).

        Raises:
            ValueError: naming the bad entry (family, ``hyper_parameters.*``, ``state_dict``).
        """
        return rebuild_model(cls, data, path, cls.family_name, cls.size_limits, cls.model_name)
