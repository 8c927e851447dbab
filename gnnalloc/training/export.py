"""Turn a Lightning training checkpoint into the small inference checkpoint the library ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gnnalloc.nn.allocator import CHECKPOINT_FORMAT, Allocator, load_checkpoint_data

__all__ = ["export_checkpoint", "best_checkpoint"]


def best_checkpoint(last: Path) -> Path:
    """The best checkpoint recorded by ``ModelCheckpoint`` in ``last`` (else ``last`` itself).

    Raises:
        FileNotFoundError, ValueError: naming ``checkpoint``, for a file that is not a Lightning
            checkpoint (an exported ``gnnalloc.checkpoint/v1`` has lost its training record).
    """
    data = load_checkpoint_data(last)
    if data.get("format") == CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint: {str(last)!r} is already an exported {CHECKPOINT_FORMAT} file; export "
            "takes the Lightning checkpoint it came from"
        )
    callbacks = data.get("callbacks")
    for key, state in (callbacks if isinstance(callbacks, dict) else {}).items():
        if "ModelCheckpoint" in str(key) and isinstance(state, dict) and state.get("best_model_path"):
            best = Path(state["best_model_path"])
            if best.is_file():
                return best
    return last


def export_checkpoint(source: Path, target: Path) -> dict[str, Any]:
    """Write ``target`` (``gnnalloc.checkpoint/v1``: weights, hyperparameters, training summary)
    from the Lightning checkpoint ``source`` (its best checkpoint if it records one)."""
    chosen = best_checkpoint(source)
    data = load_checkpoint_data(chosen)
    model = Allocator.from_checkpoint(chosen)
    monitor = {}
    for key, state in (data.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(key):
            score = state.get("best_model_score")
            monitor = {"monitor": state.get("monitor"), "best_score": None if score is None else float(score)}
    metadata = {
        "source": chosen.name,
        "global_step": int(data.get("global_step", 0)),
        "epoch": int(data.get("epoch", 0)),
        "training": {
            k: v for k, v in (data.get("hyper_parameters") or {}).items()
            if isinstance(v, (int, float, str, bool)) or v is None
        },
        "data": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in (data.get("datamodule_hyper_parameters") or {}).items()
            if isinstance(v, (int, float, str, bool, list, tuple)) or v is None
        },
        **monitor,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target, **metadata)
    return metadata
