r"""The classical iterative power-control algorithms: WMMSE and fractional programming.

Both run on :class:`NormalisedProblem` (powers :math:`x \in [0, 1]^K`, noise 1), in float64,
batched over several starting points (rows), with the same stopping rule: stop when every start's
objective changed by at most ``tol`` relative between two iterations, or after ``max_iter``;
keep the best start.

Utilities. Both algorithms are written for the weighted sum rate, for which each step never
decreases the objective (Shi et al. 2011; Shen & Yu 2018). For the ``alpha_fair`` utility
:math:`\sum_k U_k(r_k)`, :math:`U_k = w_k f(r_k; m_k)` concave and increasing, each iteration
computes the same closed-form step with the link weights :math:`\omega_k = U_k'(r_k)` at the
current rates (Shi et al.'s WMMSE for general utilities) and then searches the segment towards it:
the full step if it improves the objective, else the best improving one of the first chunk of
shorter steps :math:`2^{-1}, \dots, 2^{-32}` that has one, else the iterate stays (and the run
has converged). The step is an ascent direction: it maximises
the concave surrogate :math:`L(x) = \sum_k \omega_k \rho_k(x)` (:math:`\rho_k \le r_k` the
quadratic-transform minoriser of the rate, tight at the iterate) over the box, and by concavity
of :math:`U_k` the directional derivative of :math:`\sum_k U_k(\rho_k)` along it is at least
:math:`L(\text{step}) - L(x) \ge 0`. So the objective never decreases, and a fixed point satisfies
the KKT conditions. The plain reweighted iteration (step length 1 always) is not monotone for
these utilities (their slope jumps by ``penalty`` at the minimum rate) and was measured to end far
below a gradient method's value; the line search fixes that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from gnnalloc.core import SolveResult, check_count, check_positive
from gnnalloc.families.power._allocation import PowerAllocation
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._links import LinkBatch, fp_step, graph_utility, line_search, wmmse_step
from gnnalloc.families.power._normalised import NormalisedProblem

__all__ = [
    "MAX_SEED", "WMMSE_MAX_ITER", "WMMSE_MAX_STARTS", "WMMSE_STARTS", "WMMSE_TOL", "IterationTrace", "fp",
    "fractional_programming", "starting_points", "wmmse", "wmmse_powers",
]

#: WMMSE's defaults: the stopping rule of common practice (relative objective change 1e-4, at
#: most 500 iterations) and the full-power start plus three random ones.
WMMSE_TOL = 1e-4
WMMSE_MAX_ITER = 500
WMMSE_STARTS = 4
#: The most starts a solve takes: every start is one column of the (K, starts) arrays each
#: iteration updates, so memory and time grow with it (10,000 links x 1,024 starts is 80 MB per
#: array); far fewer random starts already find the best stationary point the starts can.
WMMSE_MAX_STARTS = 1024
#: The largest ``seed``: torch's generator takes a signed 64-bit one.
MAX_SEED = 2**63 - 1

_TINY = 1e-300
#: The α-fair line search tries step lengths down to 2^-_HALVINGS (in chunks of 8).
_HALVINGS = 32


@dataclass(frozen=True)
class IterationTrace:
    """How an iterative solve went.

    Args:
        power: best normalised powers :math:`x` found, ``(K,)``.
        objective: its objective.
        iterations: iterations run (the same for every start: they run as one batch).
        history: objective of the best start after each iteration, ``(iterations + 1,)``.
        converged: whether the stopping rule was met before ``max_iter``.
    """

    power: Tensor
    objective: float
    iterations: int
    history: Tensor
    converged: bool


def starting_points(problem: NormalisedProblem, starts: int, seed: int = 0) -> Tensor:
    """The rows the solvers start from, ``(starts, K)``: full power first, then uniformly random
    normalised powers (seeded)."""
    k = problem.num_links
    generator = torch.Generator(device="cpu").manual_seed(seed)
    random = torch.rand(starts - 1, k, generator=generator, dtype=torch.float64)
    x0 = torch.cat([torch.ones(1, k, dtype=torch.float64), random]).to(problem.gains)
    return x0


def _iterate(
    problem: NormalisedProblem,
    step: Callable[[LinkBatch, Tensor], Tensor],
    x: Tensor,
    tol: float,
    max_iter: int,
) -> IterationTrace:
    """Run ``step`` (re-weighted by the utility's slope, line-searched for the α-fair utility)
    from the rows of ``x`` ``(S, K)`` with the shared stopping rule."""
    links = problem.links
    q = x.T.contiguous()  # (K, S): one column per start, as LinkBatch iterates
    value = graph_utility(links, q)[0]
    best_value, best_q = value.clone(), q.clone()
    history = [float(best_value.max())]
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):
        if links.any_fair:
            q, searched = line_search(
                links, q, step(links, q), value.unsqueeze(0), halvings=_HALVINGS, return_value=True
            )
            new = searched[0]
        else:
            q = step(links, q)
            new = graph_utility(links, q)[0]
        better = new > best_value
        best_value = torch.where(better, new, best_value)
        best_q = torch.where(better.unsqueeze(0), q, best_q)
        history.append(float(best_value.max()))
        change = (new - value).abs() <= tol * torch.maximum(new.abs(), value.abs()).clamp(min=_TINY)
        value = new
        if bool(change.all()):
            converged = True
            break
    top = int(torch.argmax(best_value))
    return IterationTrace(
        power=best_q[:, top], objective=float(best_value[top]), iterations=iterations,
        history=torch.tensor(history, dtype=torch.float64), converged=converged,
    )


def _check(tol: float, max_iter: int, starts: int, seed: int) -> None:
    """Raise ``ValueError`` naming the first bad option (numpy integers count as integers)."""
    check_positive("tol", tol)
    check_count("max_iter", max_iter)
    check_count("seed", seed, 0, MAX_SEED)  # torch's generator takes a 64-bit seed; beyond it an unnamed overflow
    check_count("starts", starts, 1, WMMSE_MAX_STARTS)  # before the (starts, K) arrays are allocated


def wmmse_powers(
    problem: NormalisedProblem, x0: Tensor, tol: float = WMMSE_TOL, max_iter: int = WMMSE_MAX_ITER
) -> IterationTrace:
    """WMMSE (Shi, Razaviyayn, Luo, He, 2011) for the SISO interference channel from the rows of
    ``x0`` ``(S, K)``: the update of :func:`~gnnalloc.families.power._links.wmmse_step` (the one the
    learned allocator unrolls), iterated with the stopping rule of the module docstring."""
    return _iterate(problem, wmmse_step, x0, tol, max_iter)


def fractional_programming(
    problem: NormalisedProblem, x0: Tensor, tol: float = WMMSE_TOL, max_iter: int = WMMSE_MAX_ITER
) -> IterationTrace:
    """Fractional programming with the quadratic transform (Shen & Yu 2018; FPLinQ's power step)
    from the rows of ``x0`` ``(S, K)``: the update of :func:`~gnnalloc.families.power._links.fp_step`,
    iterated with the stopping rule of the module docstring."""
    return _iterate(problem, fp_step, x0, tol, max_iter)


def _solve(
    name: str,
    algorithm: Callable[[NormalisedProblem, Tensor, float, int], IterationTrace],
    instance: PowerInstance,
    tol: float,
    max_iter: int,
    starts: int,
    seed: int,
) -> SolveResult:
    _check(tol, max_iter, starts, seed)
    start = time.perf_counter()
    problem = NormalisedProblem.of(instance)
    # As Python ints: torch's generator refuses a numpy integer seed.
    trace = algorithm(problem, starting_points(problem, int(starts), int(seed)), tol, int(max_iter))
    power = trace.power.cpu().numpy() * instance.pmax
    seconds = time.perf_counter() - start
    return SolveResult(
        allocation=PowerAllocation(power=power), method=name, seconds=seconds,
        status="ok" if trace.converged else "max_iter",
    )


def wmmse(
    instance: PowerInstance,
    tol: float = WMMSE_TOL,
    max_iter: int = WMMSE_MAX_ITER,
    starts: int = WMMSE_STARTS,
    seed: int = 0,
) -> SolveResult:
    """The ``wmmse`` method: :func:`wmmse_powers` from full power and ``starts - 1`` random
    starts (seeded by ``seed``), the best kept. Status ``"ok"`` when the stopping rule was met,
    ``"max_iter"`` otherwise. ``starts`` is at most :data:`WMMSE_MAX_STARTS`, ``seed`` in
    ``[0, 2**63)`` (``ValueError`` naming them otherwise). For ``alpha_fair`` instances it runs
    the reweighted form (module docstring)."""
    return _solve("wmmse", wmmse_powers, instance, tol, max_iter, starts, seed)


def fp(
    instance: PowerInstance,
    tol: float = WMMSE_TOL,
    max_iter: int = WMMSE_MAX_ITER,
    starts: int = 1,
    seed: int = 0,
) -> SolveResult:
    """The ``fp`` method: :func:`fractional_programming` from full power (as published), with
    optional extra random starts; reweighted for ``alpha_fair`` (module docstring)."""
    return _solve("fp", fractional_programming, instance, tol, max_iter, starts, seed)
