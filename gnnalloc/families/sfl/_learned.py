"""The sfl family's learned method ``gnn``: the predictor's round time, finished by the exact
solver's bisection from it (:func:`solve_from_guess`), never worse than the ``equal`` baseline."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gnnalloc.core import InputError, InstanceError, SolveResult, SolverError, check_positive
from gnnalloc.families.sfl._allocation import SflAllocation
from gnnalloc.families.sfl._allocator import RoundTimePredictor
from gnnalloc.families.sfl._baselines import equal_allocation
from gnnalloc.families.sfl._exact import CERTIFIED_GAP
from gnnalloc.families.sfl._graph import instance_graph
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import max_violation, round_costs
from gnnalloc.families.sfl._warm import solve_from_guess
from gnnalloc.nn import ShippedModel

__all__ = ["DEFAULT_CHECKPOINT", "LearnedSolution", "learned_allocation", "shipped_predictor", "solve_gnn"]

#: The shipped model (``gnnalloc fit --config training/configs/sfl.yaml``, then ``export``).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "checkpoints" / "sfl.ckpt"
_SHIPPED = ShippedModel(DEFAULT_CHECKPOINT, RoundTimePredictor.from_checkpoint)


def shipped_predictor() -> RoundTimePredictor:
    """The shipped model, loaded once per process (again if the file changes)."""
    return _SHIPPED()


@dataclass(frozen=True)
class LearnedSolution:
    """The learned method's answer.

    Attributes:
        allocation: the allocation returned.
        guess: the predicted round time (s).
        t_lower: a round time proven infeasible.
        t_upper: the round time the bisection achieved.
        evaluations: round times evaluated by the bisection.
        source: ``"bisection"``, or ``"equal"`` when the baseline's round was shorter.
    """

    allocation: SflAllocation
    guess: float
    t_lower: float
    t_upper: float
    evaluations: int
    source: str


def learned_allocation(
    model: RoundTimePredictor, instance: SflInstance, tolerance: float = 1e-3, spread: float = 0.01,
) -> LearnedSolution:
    """``model``'s round time for ``instance``, finished by :func:`solve_from_guess`; the
    ``equal`` baseline's allocation instead when its round is shorter (or the bisection's
    allocation is not feasible), so the answer is never worse than that baseline."""
    device = next(model.parameters()).device
    graph = instance_graph(instance)
    guess = float(model.round_time(graph.to(device))[0])
    if not (math.isfinite(guess) and guess > 0):
        raise SolverError(f"the model predicted a round time of {guess!r}")
    # graph.scale is the budget-free round time, proven infeasible (module _relaxed).
    solution = solve_from_guess(instance, guess, spread=spread, tolerance=tolerance, lower=float(graph.scale[0]))
    allocation, source = solution.allocation, "bisection"
    latency = float(round_costs(instance, allocation).latency.max())
    feasible = max_violation(instance, allocation) == 0.0
    if feasible and latency <= float(graph.equal_floor[0]):
        # Proven no longer than the baseline's round without computing it.
        return LearnedSolution(allocation, guess, solution.t_lower, solution.t_upper, solution.evaluations, source)
    try:
        baseline = equal_allocation(instance)
    except InstanceError:  # no common split fits every budget: the baseline does not exist
        baseline = None
    if baseline is not None and max_violation(instance, baseline) == 0.0:
        if float(round_costs(instance, baseline).latency.max()) < latency or not feasible:
            allocation, source = baseline, "equal"
    return LearnedSolution(allocation, guess, solution.t_lower, solution.t_upper, solution.evaluations, source)


def solve_gnn(
    instance: SflInstance, *, allocator: RoundTimePredictor | None = None, checkpoint: str | Path | None = None,
    tolerance: float = 1e-3, spread: float = 0.01,
) -> SolveResult:
    """The ``gnn`` method: the shipped model unless ``allocator`` or ``checkpoint`` is given.
    Its bound is the bisection's proven-infeasible round time (min-max objective only).

    Raises:
        ValueError: naming ``objective``, ``spread``, ``tolerance`` or ``allocator`` (not a
            :class:`RoundTimePredictor`).
    """
    if instance.objective != "minmax":
        raise InputError(f"objective: the gnn method solves 'minmax' rounds, got {instance.objective!r}")
    check_positive("spread", spread)
    if not (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and 0 < tolerance < 1):
        raise InputError(f"tolerance: must be a number in (0, 1), got {tolerance!r}")
    if allocator is not None and not isinstance(allocator, RoundTimePredictor):
        raise InputError(f"allocator: expected a RoundTimePredictor, got {type(allocator).__name__}")
    if allocator is None:
        allocator = shipped_predictor() if checkpoint is None else RoundTimePredictor.from_checkpoint(checkpoint)
    start = time.perf_counter()  # model loading excluded
    with torch.no_grad():
        found = learned_allocation(allocator, instance, tolerance, spread)
    return SolveResult(
        allocation=found.allocation, method="gnn", seconds=time.perf_counter() - start,
        certified_optimal=(found.t_upper - found.t_lower) <= CERTIFIED_GAP * found.t_upper and found.source == "bisection",
        upper_bound=-found.t_lower,
    )
