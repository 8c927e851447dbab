"""The edge family's allocation methods, each returning the engine's :class:`SolveResult`.

``gnn`` is one of them: the solvers never import the model, the family wires both in. It
predicts the dual prices with the shipped :class:`~gnnalloc.families.edge.nn.PricePredictor`
and refines them with :func:`~gnnalloc.families.edge.solvers.solve_dual` until its bound proves
the answer within ``gap_tol`` (by default :func:`gnn_gap_tol`; ``solve_dual`` recovers a
feasible allocation and proves the bound); ``gnn-shares`` is the earlier share-head model, kept
as a baseline.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gnnalloc.core import InputError, Method, SolveResult, check_time_limit
from gnnalloc.nn import ShippedModel
from gnnalloc.families.edge.problem import Instance, ProblemTensors
from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.edge.solvers import (
    DEFAULT_TEMPERATURE, DualResult, equal_share, proportional_share, solve_dual, solve_exact,
)
from gnnalloc.families.edge.solvers.functional import waterfill_prices

if TYPE_CHECKING:
    from gnnalloc.families.edge.nn import Allocator, PricePredictor

__all__ = [
    "GNN_FIRST_CHUNK", "GNN_GAP_TOL", "GNN_GAP_TOL_MAX_PENALTY", "GNN_HIGH_PENALTY_GAP_TOL",
    "GNN_MODEL_TEMPERATURE_MAX_PENALTY", "METHODS", "default_checkpoint", "gnn_gap_tol", "gnn_refine",
    "gnn_refinement_options", "gnn_temperature",
    "load_edge_model", "shares_checkpoint", "shipped_allocator",
]

_CHECKPOINTS = Path(__file__).resolve().parents[3] / "checkpoints"

#: The shipped model of ``gnn`` (the price model) and of ``gnn-shares`` (the share-head model),
#: in ``checkpoints/`` of the source tree this package belongs to, whatever the working directory.
_DEFAULT_CHECKPOINT = _CHECKPOINTS / "prices.ckpt"
_SHARES_CHECKPOINT = _CHECKPOINTS / "default.ckpt"

#: ``gnn``'s default ``gap_tol``: it refines until its Lagrangian bound proves the answer within
#: this per unit of user weight, on instances with a penalty up to
#: :data:`GNN_GAP_TOL_MAX_PENALTY` ...
GNN_GAP_TOL = 0.005

#: ... and within this above it, where the penalty's steep slope below each minimum keeps the
#: smoothed dual's bound loose for longer (proving 0.005 there costs several times as much as
#: 0.02; ``benchmarks/RESULTS.md``).
GNN_HIGH_PENALTY_GAP_TOL = 0.02

#: The largest penalty :data:`GNN_GAP_TOL` is the default for.
GNN_GAP_TOL_MAX_PENALTY = 10.0

#: ``gnn``'s first chunk of iterations in its anytime solve (later chunks are ``dual``'s
#: default): a start near the minimiser ends the chunk sooner, a poorer one runs on without a
#: checkpoint until its KKT residual is small (``solve_dual``;
#: ``benchmarks/bench_learned_prices.py --anytime``).
GNN_FIRST_CHUNK = 100

#: With ``gap_tol`` or ``time_limit``, ``gnn`` refines at the model's own temperature on
#: instances with a penalty up to this, and at ``dual``'s default above it (as its one pass):
#: the drop value :math:`-k w_u` makes the keep-or-drop choice sharper, relative to the
#: smoothing, as the penalty grows, and the model's lower temperature then anneals into a dual
#: whose responses recover poor allocations. Since checkpoints wait for a small KKT residual,
#: ``dual``'s temperature is the faster one from penalty 15 on (``benchmarks/RESULTS.md``,
#: ``bench_learned_prices.py --anytime``).
GNN_MODEL_TEMPERATURE_MAX_PENALTY = 10.0


def gnn_temperature(model: "PricePredictor", instance: Instance, anytime: bool) -> float:
    """The smoothing temperature ``gnn`` refines ``model``'s prediction at on ``instance``.

    Anytime (``gap_tol`` or ``time_limit``) on penalties up to
    :data:`GNN_MODEL_TEMPERATURE_MAX_PENALTY`: the model's own, as its prediction approximates
    the minimiser of the dual smoothed at it (a start converged at another temperature is a
    poor one). Otherwise ``dual``'s default: a fixed one-pass budget does not converge at a
    lower one on high penalties, and anytime solves there stall at it.
    """
    if anytime and instance.penalty <= GNN_MODEL_TEMPERATURE_MAX_PENALTY:
        return model.temperature
    return DEFAULT_TEMPERATURE


def gnn_gap_tol(instance: Instance) -> float:
    """``gnn``'s default ``gap_tol`` on ``instance``: :data:`GNN_GAP_TOL` up to
    :data:`GNN_GAP_TOL_MAX_PENALTY`, :data:`GNN_HIGH_PENALTY_GAP_TOL` above."""
    return GNN_GAP_TOL if instance.penalty <= GNN_GAP_TOL_MAX_PENALTY else GNN_HIGH_PENALTY_GAP_TOL


def gnn_refinement_options(
    model: "PricePredictor",
    instance: Instance,
    *,
    iterations: int | None = None,
    search_rounds: int | None = None,
    bound_iterations: int | None = None,
    temperature: float | None = None,
    gap_tol: float | None = None,
    time_limit: float | None = None,
) -> dict[str, Any]:
    """The keyword options of :func:`~gnnalloc.families.edge.solvers.solve_dual` with which
    ``gnn`` refines ``model``'s prediction on ``instance`` (besides ``start`` and
    ``water_filling``), given ``gnn``'s own options (``None``: its default).

    Anytime to :func:`gnn_gap_tol` unless one pass is asked for (``iterations`` without
    ``gap_tol`` or ``time_limit``; ``time_limit`` alone bounds the solve, not its aim, and
    ``gap_tol=0`` with it refines until the limit), from a first chunk of
    :data:`GNN_FIRST_CHUNK`, at :func:`gnn_temperature`, with the predicted link prices cleared
    first (``clear_start_links``). Benchmarks that time ``gnn``'s steps apart use it too, so that
    they run what ``gnn`` runs.
    """
    if gap_tol is None and (iterations is None or time_limit is not None):
        gap_tol = gnn_gap_tol(instance)
    anytime = gap_tol is not None or time_limit is not None
    options: dict[str, Any] = {
        "iterations": GNN_FIRST_CHUNK if iterations is None else iterations,
        "search_rounds": 5 if search_rounds is None else search_rounds,
        "temperature": gnn_temperature(model, instance, anytime) if temperature is None else temperature,
        # The predicted link prices are the prediction's least reliable part: where each
        # migration is a sizeable share of a link, the solve first clears the links at the
        # predicted server prices.
        "clear_start_links": True,
    }
    if bound_iterations is not None:
        options["bound_iterations"] = bound_iterations
    for name, value in (("gap_tol", gap_tol), ("time_limit", time_limit)):
        if value is not None:
            options[name] = value
    if anytime:
        # Where the prediction is not used (its dual is not below the water-filling prices',
        # L-BFGS cannot leave it, or its solve stalls above gap_tol), the solve is dual's own:
        # at dual's default temperature, not the model's, which can stall higher on unfamiliar
        # instances. (In one pass, a prediction L-BFGS cannot leave is replaced likewise.)
        options["cold_temperature"] = DEFAULT_TEMPERATURE
    return options


def gnn_refine(model: "PricePredictor", instance: Instance, **refinement: Any) -> DualResult:
    """``gnn``'s solve with a price model, as a :class:`~gnnalloc.families.edge.solvers.DualResult`
    (prices, iterations, checkpoints): one water-filling for the model's references and the
    solver's cold start, the prediction, then :func:`~gnnalloc.families.edge.solvers.solve_dual`
    with :func:`gnn_refinement_options` (``refinement``: ``gnn``'s own options). ``gnn`` answers
    with its allocation; benchmarks read what else it measured."""
    water_filling = waterfill_prices(ProblemTensors.from_instance(instance, dtype=torch.float64))
    prices = model.predict(instance, water_filling)  # solve_dual starts from the water-filling prices if lower
    options = gnn_refinement_options(model, instance, **refinement)
    return solve_dual(instance, start=prices, water_filling=water_filling, **options)


def default_checkpoint() -> Path:
    """Path of the shipped checkpoint of the edge family's ``gnn`` method (the price model)."""
    return _DEFAULT_CHECKPOINT


def shares_checkpoint() -> Path:
    """Path of the shipped share-head model of ``gnn-shares``."""
    return _SHARES_CHECKPOINT


def load_edge_model(data: dict[str, Any], path: str | Path) -> "PricePredictor | Allocator":
    """The model of a loaded edge checkpoint: a price model if it records ``model: prices``,
    else a share-head :class:`~gnnalloc.families.edge.nn.Allocator`."""
    from gnnalloc.families.edge.nn import Allocator, PricePredictor

    if data.get("model") == "prices":
        return PricePredictor.from_checkpoint_data(data, path)
    return Allocator.from_checkpoint_data(data, path)


def _load_edge_checkpoint(path: Path) -> Any:
    from gnnalloc.nn import load_checkpoint_data

    return load_edge_model(load_checkpoint_data(path), path)


_SHIPPED = {path: ShippedModel(path, _load_edge_checkpoint) for path in (_DEFAULT_CHECKPOINT, _SHARES_CHECKPOINT)}


def _shipped_model(path: Path) -> Any:
    """The shipped model at ``path``, loaded once per process (again if the file changes)."""
    return _SHIPPED[path]()


def shipped_allocator() -> "PricePredictor":
    """The shipped price model of ``gnn``, loaded once per process (again if the file changes)."""
    return _shipped_model(_DEFAULT_CHECKPOINT)


def _objective(instance: Instance, allocation: Any) -> float:
    """``sum_u U_u`` of an allocation (the quantity every method maximises)."""
    return float(user_utilities(instance, allocation).sum())


def _at_least_baselines(instance: Instance, result: SolveResult) -> SolveResult:
    """``result``, or the best of equal and proportional share when it beats it.

    Both baselines are feasible and cost a few vector operations, so no method returns less
    than they would (the smoothed dual and the model can, e.g. at alpha near 0 where utilities
    are nearly linear). The upper bound stays valid (it bounds the optimum); the status says
    which allocation was returned and the time includes the check.
    """
    start = time.perf_counter()
    # A non-finite entry makes the objective non-finite: such an answer (a model at extreme
    # magnitudes) is no answer, and either baseline replaces it.
    best = _objective(instance, result.allocation)
    finite = math.isfinite(best)
    best = best if finite else -math.inf
    name, allocation = None, result.allocation
    for label, baseline in (("equal", equal_share), ("proportional", proportional_share)):
        candidate = baseline(instance)
        value = _objective(instance, candidate)
        # A relative margin: ties and rounding keep the method's own answer.
        if value > best + (1e-9 * max(1.0, abs(best)) if finite else 0.0):
            best, name, allocation = value, label, candidate
    seconds = result.seconds + time.perf_counter() - start
    if name is None:
        return replace(result, seconds=seconds)
    why = "was better and is returned" if finite else "is returned instead of a non-finite answer"
    return replace(
        result, allocation=allocation, seconds=seconds, certified_optimal=False,
        status=f"{result.status}; {name} share {why}",
    )


def _exact(instance: Instance, **options: Any) -> SolveResult:
    result = solve_exact(instance, **options)
    answer = SolveResult(
        result.allocation, "exact", result.seconds, result.status, result.certified, result.upper_bound
    )
    # A certified optimum cannot be beaten; an uncertified one is held to the baselines.
    return answer if result.certified else _at_least_baselines(instance, answer)


def _dual(instance: Instance, **options: Any) -> SolveResult:
    result = solve_dual(instance, **options)
    return _at_least_baselines(
        instance,
        SolveResult(result.allocation, "dual", result.seconds, result.status, upper_bound=result.upper_bound),
    )


def _timed(name: str, fn: Any, instance: Instance) -> SolveResult:
    start = time.perf_counter()
    allocation = fn(instance)
    return SolveResult(allocation, name, time.perf_counter() - start)


def _equal(instance: Instance) -> SolveResult:
    return _timed("equal", equal_share, instance)


def _proportional(instance: Instance) -> SolveResult:
    return _timed("proportional", proportional_share, instance)


def _is_share_head(model: Any) -> bool:
    from gnnalloc.families.edge.nn import Allocator

    return isinstance(model, Allocator)


def _model_of(allocator: Any, checkpoint: str | Path | None, shipped: Path) -> Any:
    """The model a learned method runs: ``allocator``, else ``checkpoint``'s, else the shipped
    one at ``shipped`` (loaded once per process); never both given."""
    if allocator is not None:
        if checkpoint is not None:
            raise InputError("checkpoint: give a checkpoint or an allocator, not both")
        return allocator
    return _shipped_model(shipped) if checkpoint is None else _load_edge_checkpoint(checkpoint)


def _gnn_shares(
    instance: Instance,
    *,
    allocator: "Allocator | None" = None,
    checkpoint: str | Path | None = None,
    search_rounds: int | None = None,
) -> SolveResult:
    allocator = _model_of(allocator, checkpoint, _SHARES_CHECKPOINT)
    if checkpoint is not None and not _is_share_head(allocator):
        raise InputError(
            f"checkpoint: {str(checkpoint)!r} holds a price model (method gnn); gnn-shares needs a "
            "share-head checkpoint"
        )
    if not _is_share_head(allocator):
        raise InputError(f"allocator: gnn-shares needs a share-head Allocator, got a {type(allocator).__name__}")
    start = time.perf_counter()  # model loading excluded
    allocation = allocator.allocate(instance, search_rounds=search_rounds)
    return _at_least_baselines(instance, SolveResult(allocation, "gnn-shares", time.perf_counter() - start))


def _gnn(
    instance: Instance,
    *,
    allocator: "PricePredictor | Allocator | None" = None,
    checkpoint: str | Path | None = None,
    **refinement: Any,
) -> SolveResult:
    """``gnn``: ``refinement`` holds :func:`gnn_refinement_options`' keyword options (the
    registry admits no other name)."""
    from gnnalloc.families.edge.nn import PricePredictor

    allocator = _model_of(allocator, checkpoint, _DEFAULT_CHECKPOINT)
    if _is_share_head(allocator):  # a share-head checkpoint: that model's own answer
        # It answers in one pass, well within any time limit (accepted, so that a caller such
        # as the server can bound every learned method alike); what only a dual refinement
        # uses is refused by name.
        for name in ("iterations", "bound_iterations", "temperature", "gap_tol"):
            if refinement.get(name) is not None:
                raise InputError(f"{name}: a share-head model answers in one pass and takes no {name}")
        if refinement.get("time_limit") is not None:
            check_time_limit(refinement["time_limit"])
        answer = _gnn_shares(instance, allocator=allocator, search_rounds=refinement.get("search_rounds"))
        return replace(answer, method="gnn")
    if not isinstance(allocator, PricePredictor):
        raise InputError(f"allocator: gnn needs a PricePredictor or a share-head Allocator, got a {type(allocator).__name__}")
    start = time.perf_counter()  # model loading excluded
    result = gnn_refine(allocator, instance, **refinement)
    seconds = time.perf_counter() - start
    return _at_least_baselines(
        instance, SolveResult(result.allocation, "gnn", seconds, result.status, upper_bound=result.upper_bound)
    )


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "exact", _exact,
            "global optimum of the conic program (Clarabel), with a Lagrangian bound",
            ("time_limit", "formulation", "tolerance", "verbose", "fallback"), "reference",
        ),
        Method(
            "dual", _dual,
            "smoothed dual ascent: near-optimal in seconds at 20,000 users, with its own bound; "
            "anytime with gap_tol / time_limit",
            (
                "iterations", "temperature", "search_rounds", "bound_iterations", "device", "start",
                "gap_tol", "time_limit",
            ),
            "classical",
        ),
        Method("equal", _equal, "equal shares of every capacity", (), "baseline"),
        Method("proportional", _proportional, "shares proportional to minimum demands", (), "baseline"),
        Method(
            "gnn", _gnn,
            f"learned dual prices refined by the certified dual until its bound proves gap_tol (default "
            f"{GNN_GAP_TOL:g} per unit of weight, {GNN_HIGH_PENALTY_GAP_TOL:g} above penalty "
            f"{GNN_GAP_TOL_MAX_PENALTY:g}; time_limit alone bounds the time, gap_tol=0 refines until it; "
            f"the shipped price model unless checkpoint or allocator is given)",
            (
                "allocator", "checkpoint", "iterations", "search_rounds", "bound_iterations", "temperature",
                "gap_tol", "time_limit",
            ),
            "learned",
        ),
        Method(
            "gnn-shares", _gnn_shares,
            "the earlier share-head model (decisions per pair, then projection), a baseline",
            ("allocator", "checkpoint", "search_rounds"), "learned", accepts=_is_share_head,
        ),
    )
}
