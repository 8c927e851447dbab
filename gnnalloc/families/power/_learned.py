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

__all__ = ["DEFAULT_CHECKPOINT", "allocate_powers", "gnn_allocate", "shipped_power_allocator", "solve_gnn"]

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
    if allocator is not None and not isinstance(allocator, PowerAllocator):  # else an AttributeError per instance
        raise InputError(f"allocator: expected a PowerAllocator, got {type(allocator).__name__}")
    if allocator is None:
        allocator = shipped_power_allocator() if checkpoint is None else PowerAllocator.from_checkpoint(checkpoint)
    model = allocator
    return lambda instance: allocate_powers(model, instance, refine_steps)


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
