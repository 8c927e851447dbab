"""The shipped model of a family's learned method, loaded once per process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Generic, TypeVar

__all__ = ["ShippedModel"]

Model = TypeVar("Model")


class ShippedModel(Generic[Model]):
    """A checkpoint file and how to load it; calling it returns the loaded model, read once per
    process and again only when the file changes (its modification time), safely across threads
    (the server answers requests from several).

    Args:
        path: the checkpoint (typically ``checkpoints/<name>.ckpt`` of the source tree).
        load: ``load(path) -> model``, e.g. a model class's ``from_checkpoint``.
    """

    def __init__(self, path: Path, load: Callable[[Path], Model]) -> None:
        self.path = Path(path)
        self._load = load
        self._lock = threading.Lock()
        self._key: tuple[str, float] | None = None
        self._model: Model | None = None

    def __call__(self) -> Model:
        key = (str(self.path), self.path.stat().st_mtime if self.path.is_file() else 0.0)
        with self._lock:
            if self._model is None or key != self._key:
                self._model = None  # a failed reload must not leave the old model behind
                self._model = self._load(self.path)
                self._key = key
            return self._model
