"""The power family's learned method ``gnn``: checkpoints of :class:`PowerAllocator` and the
map from an instance to a :class:`PowerAllocation`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gnnalloc.core import InputError, SolveResult, check_count
from gnnalloc.families.power._allocation import PowerAllocation
from gnnalloc.families.power._baselines import greedy_schedule
from gnnalloc.families.power._graph import instance_graph
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._model import PowerAllocator
from gnnalloc.families.power._normalised import NormalisedProblem
from gnnalloc.nn import ShippedModel

__all__ = [
    "DEFAULT_CHECKPOINT", "allocate_powers", "gnn_allocate", "predicted_fair_time", "resolve_allocator",
    "shipped_power_allocator", "solve_gnn",
]

#: The shipped model (``make train`` writes it).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "checkpoints" / "power.ckpt"
_SHIPPED = ShippedModel(DEFAULT_CHECKPOINT, PowerAllocator.from_checkpoint)

#: Up to this many links the greedy schedule is one more refinement start: its rounds cost
#: about K times the active links, cheap next to WMMSE there, and in dense layouts a greedy
#: schedule tuned by the steps beats every other start; above it the cost grows too fast.
GREEDY_START_MAX_LINKS = 200


def shipped_power_allocator() -> PowerAllocator:
    """The shipped model, loaded once per process (again if the file changes)."""
    return _SHIPPED()


def allocate_powers(model: PowerAllocator, instance: PowerInstance, steps: int | None = None) -> PowerAllocation:
    """``model``'s powers for ``instance`` (on the model's device), never above ``pmax``; up to
    ``GREEDY_START_MAX_LINKS`` links the greedy schedule is refined as one more start."""
    device = next(model.parameters()).device
    graph = instance_graph(instance).to(device)
    starts = None
    if instance.num_links <= GREEDY_START_MAX_LINKS:
        starts = greedy_schedule(NormalisedProblem.of(instance)).to(device).unsqueeze(1)
    shares = model.shares(graph, steps, starts=starts).clamp(0.0, 1.0)
    power = shares.to("cpu", torch.float64).numpy() * instance.pmax
    return PowerAllocation(np.minimum(power, instance.pmax))


def gnn_allocate(
    *,
    allocator: PowerAllocator | None = None,
    checkpoint: str | Path | None = None,
    refine_steps: int | None = None,
) -> Callable[[PowerInstance], PowerAllocation]:
    """The ``gnn`` method as a function of the instance, its model loaded now, once: the shipped
    model unless ``allocator`` or ``checkpoint`` is given; ``refine_steps`` overrides the model's
    number of WMMSE refinement steps.

    Raises:
        ValueError: naming ``refine_steps``, ``allocator`` (not a :class:`PowerAllocator`) or
            ``checkpoint``.
    """
    if refine_steps is not None:
        check_count("refine_steps", refine_steps)
    model = resolve_allocator(allocator, checkpoint)
    return lambda instance: allocate_powers(model, instance, refine_steps)


def resolve_allocator(allocator: PowerAllocator | None = None, checkpoint: str | Path | None = None) -> PowerAllocator:
    """``allocator`` itself, else ``checkpoint``'s model, else the shipped model.

    Raises:
        ValueError: naming ``allocator`` (not a :class:`PowerAllocator`) or ``checkpoint``.
    """
    if allocator is not None and not isinstance(allocator, PowerAllocator):  # else an AttributeError per instance
        raise InputError(f"allocator: expected a PowerAllocator, got {type(allocator).__name__}")
    if allocator is not None:
        return allocator
    return shipped_power_allocator() if checkpoint is None else PowerAllocator.from_checkpoint(checkpoint)


@torch.inference_mode()
def predicted_fair_time(model: PowerAllocator, instance: PowerInstance) -> float:
    """The ``fair_time`` the time head of ``model`` predicts for ``instance``
    (:meth:`PowerAllocator.fair_time`), in [0, 1].

    Raises:
        ValueError: naming ``time_sharing`` if the model has no time head.
    """
    device = next(model.parameters()).device
    return min(max(float(model.fair_time(instance_graph(instance).to(device))[0]), 0.0), 1.0)


def solve_gnn(
    instance: PowerInstance,
    *,
    allocator: PowerAllocator | None = None,
    checkpoint: str | Path | None = None,
    refine_steps: int | None = None,
) -> SolveResult:
    """The ``gnn`` method (:func:`gnn_allocate`'s answer, model loading excluded from its time)."""
    allocate = gnn_allocate(allocator=allocator, checkpoint=checkpoint, refine_steps=refine_steps)
    start = time.perf_counter()
    allocation = allocate(instance)
    return SolveResult(allocation, "gnn", time.perf_counter() - start)
