"""Turn a Lightning training checkpoint into the small inference checkpoint the library ships,
for any family: the checkpoint's ``family`` entry chooses who rebuilds the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gnnalloc.core import InputError, get_family
from gnnalloc.nn import CHECKPOINT_FORMAT, checkpoint_family, load_checkpoint_data

__all__ = ["export_checkpoint", "best_checkpoint"]


def _lightning_checkpoint(path: Path) -> dict[str, Any]:
    data = load_checkpoint_data(path)
    if data.get("format") == CHECKPOINT_FORMAT:
        raise InputError(
            f"checkpoint: {str(path)!r} is already an exported {CHECKPOINT_FORMAT} file; export "
            "takes the Lightning checkpoint it came from"
        )
    return data


def _checkpoint_callbacks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The states of the ``ModelCheckpoint`` callbacks recorded in a Lightning checkpoint."""
    callbacks = data.get("callbacks")
    return [
        state for key, state in (callbacks if isinstance(callbacks, dict) else {}).items()
        if "ModelCheckpoint" in str(key) and isinstance(state, dict)
    ]


def _recorded_best(data: dict[str, Any]) -> Path | None:
    for state in _checkpoint_callbacks(data):
        if state.get("best_model_path") and Path(state["best_model_path"]).is_file():
            return Path(state["best_model_path"])
    return None


def best_checkpoint(last: Path) -> Path:
    """The best checkpoint recorded by ``ModelCheckpoint`` in ``last`` (else ``last`` itself).

    Raises:
        FileNotFoundError, ValueError: naming ``checkpoint``, for a file that is not a Lightning
            checkpoint (an exported ``gnnalloc.checkpoint/v1`` has lost its training record).
    """
    return _recorded_best(_lightning_checkpoint(last)) or last


def export_checkpoint(source: Path, target: Path) -> dict[str, Any]:
    """Write ``target`` (``gnnalloc.checkpoint/v1``: weights, hyperparameters, training summary)
    from the Lightning checkpoint ``source`` (its best checkpoint if it records one); each file
    is read once."""
    data = _lightning_checkpoint(source)
    chosen = _recorded_best(data)
    if chosen is None:
        chosen = source
    else:
        data = _lightning_checkpoint(chosen)
    family = get_family(checkpoint_family(data, chosen))
    load_allocator = getattr(family, "load_allocator", None)
    if load_allocator is None:
        raise InputError(f"checkpoint: the {family.name} family has no learned model to export")
    model = load_allocator(data, chosen)
    try:  # Lightning writes these entries; a hand-edited file may not have their types
        metadata = _training_record(data, chosen)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(f"checkpoint: {str(chosen)!r} has a malformed training record ({exc})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target, **metadata)
    return metadata


def _training_record(data: dict[str, Any], chosen: Path) -> dict[str, Any]:
    """What the exported checkpoint keeps of the training run: step, settings, best score."""
    monitor = {}
    for state in _checkpoint_callbacks(data):
        score = state.get("best_model_score")
        monitor = {"monitor": state.get("monitor"), "best_score": None if score is None else float(score)}
    return {
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
