"""Reading checkpoint files, the same way for every family's model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FORMAT", "DEFAULT_FAMILY", "checkpoint_family", "load_checkpoint_data"]

CHECKPOINT_FORMAT = "gnnalloc.checkpoint/v1"
#: The family of checkpoints that record none (every checkpoint written before families existed).
DEFAULT_FAMILY = "edge"


def load_checkpoint_data(path: str | Path, map_location: str | torch.device | None = None) -> dict[str, Any]:
    """The dictionary stored in a checkpoint file, loaded with ``weights_only=True`` (no code in
    the file runs).

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: naming ``checkpoint`` if the file cannot be unpickled or holds no dictionary.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {str(path)!r}")
    device = torch.device(map_location or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        # torch.load would fail with a deserialisation error that reads like a corrupt file.
        raise ValueError(f"map_location: {str(map_location)!r} asks for CUDA, which this machine does not have")
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # unpickling errors have many types; all mean "not ours"
        message = " ".join(str(exc).split())[:300]  # torch's messages span paragraphs
        raise ValueError(f"checkpoint: {str(path)!r} is not a loadable checkpoint ({message})") from None
    if not isinstance(data, dict):
        raise ValueError(f"checkpoint: {str(path)!r} holds a {type(data).__name__}, not a checkpoint")
    return data


def checkpoint_family(data: dict[str, Any], path: str | Path = "checkpoint") -> str:
    """The family a loaded checkpoint belongs to (its ``family`` entry; ``"edge"`` if absent).

    Raises:
        ValueError: naming ``checkpoint`` when the entry is not a string.
    """
    family = data.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str):
        raise ValueError(f"checkpoint: {str(path)!r}: family is a {type(family).__name__}, not a name")
    return family
