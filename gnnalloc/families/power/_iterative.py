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

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from gnnalloc.core import SolveResult, check_count, check_positive
from gnnalloc.families.power._allocation import PowerAllocation
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._normalised import NormalisedProblem

__all__ = [
    "WMMSE_MAX_ITER", "WMMSE_STARTS", "WMMSE_TOL", "IterationTrace", "fp", "fractional_programming",
    "starting_points", "wmmse", "wmmse_powers",
]

#: WMMSE's defaults: the stopping rule of common practice (relative objective change 1e-4, at
#: most 500 iterations) and the full-power start plus three random ones.
WMMSE_TOL = 1e-4
WMMSE_MAX_ITER = 500
WMMSE_STARTS = 4

_TINY = 1e-300
#: Step lengths the alpha-fair line search tries after the full step, in chunks of 8.
_STEPS = torch.tensor([2.0**-i for i in range(1, 33)], dtype=torch.float64)


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
    step: Callable[[Tensor, Tensor, Tensor], Tensor],
    x: Tensor,
    tol: float,
    max_iter: int,
) -> IterationTrace:
    """Run ``x <- step(x, sinr, weights)`` from the rows of ``x`` with the shared stopping rule."""
    sinr = problem.sinr(x)
    rates = torch.log1p(sinr) / math.log(2.0)
    value = problem.link_utility(rates).sum(-1)
    best_value, best_x = value.clone(), x.clone()
    history = [float(best_value.max())]
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):
        candidate = step(x, sinr, problem.slope(rates))
        if problem.utility != "sum_rate":
            candidate = _line_search(problem, x, candidate, value)
        x = candidate
        sinr = problem.sinr(x)
        rates = torch.log1p(sinr) / math.log(2.0)
        new = problem.link_utility(rates).sum(-1)
        better = new > best_value
        best_value = torch.where(better, new, best_value)
        best_x = torch.where(better.unsqueeze(-1), x, best_x)
        history.append(float(best_value.max()))
        change = (new - value).abs() <= tol * torch.maximum(new.abs(), value.abs()).clamp(min=_TINY)
        value = new
        if bool(change.all()):
            converged = True
            break
    top = int(torch.argmax(best_value))
    return IterationTrace(
        power=best_x[top], objective=float(best_value[top]), iterations=iterations,
        history=torch.tensor(history, dtype=torch.float64), converged=converged,
    )


def _line_search(problem: NormalisedProblem, x: Tensor, candidate: Tensor, value: Tensor) -> Tensor:
    """Per row, the full step ``candidate`` if it improves on ``value``, else the best improving
    ``x + t (candidate - x)`` for the first chunk of ``t = 1/2, 1/4, ..., 2^-32`` that has one,
    else ``x`` (module docstring: the step direction is an ascent direction)."""
    out = candidate.clone()
    todo = problem.objective(candidate) <= value
    for chunk in _STEPS.to(x).split(8):
        rows = torch.nonzero(todo).squeeze(-1)
        if rows.numel() == 0:
            return out
        base, direction = x[rows], candidate[rows] - x[rows]
        trial = base.unsqueeze(1) + chunk.view(1, -1, 1) * direction.unsqueeze(1)  # (R, T, K)
        values = problem.objective(trial.reshape(-1, x.shape[-1])).view(rows.numel(), -1)
        best, index = values.max(dim=1)
        improved = best > value[rows]
        out[rows[improved]] = trial[torch.arange(rows.numel(), device=x.device), index][improved]
        todo[rows[improved]] = False
    out[todo] = x[todo]
    return out


def _check(tol: float, max_iter: int, starts: int, seed: int) -> None:
    check_positive("tol", tol)
    check_count("max_iter", max_iter)
    check_count("seed", seed)
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts: must be an integer >= 1, got {starts!r}")


def wmmse_powers(
    problem: NormalisedProblem, x0: Tensor, tol: float = WMMSE_TOL, max_iter: int = WMMSE_MAX_ITER
) -> IterationTrace:
    r"""WMMSE (Shi, Razaviyayn, Luo, He, 2011) for the SISO interference channel from the rows of
    ``x0``. With amplitudes :math:`v_k = \sqrt{x_k}`, channel amplitudes
    :math:`h_{kj} = \sqrt{\tilde g_{kj}}` and link weights :math:`\omega_k`:

    .. math::

        u_k = \frac{h_{kk} v_k}{1 + \sum_j \tilde g_{kj} v_j^2}, \quad
        w_k = \frac{1}{1 - u_k h_{kk} v_k} = 1 + \mathrm{SINR}_k, \quad
        v_k \leftarrow \left[\frac{\omega_k w_k u_k h_{kk}}
            {\sum_j \omega_j w_j u_j^2 \tilde g_{jk}}\right]_0^1.

    :math:`w_k` is computed as :math:`1 + \mathrm{SINR}_k`, which equals the MSE form but does
    not cancel at the high SINRs of real layouts.
    """
    direct = problem.direct
    amplitude = direct.sqrt()

    def step(x: Tensor, sinr: Tensor, omega: Tensor) -> Tensor:
        v = x.sqrt()
        received = 1.0 + x @ problem.gains.T  # noise + interference + own signal
        u = amplitude * v / received
        a = omega * (1.0 + sinr)
        denominator = (a * u * u) @ problem.gains
        v = (a * u * amplitude / denominator.clamp(min=_TINY)).clamp(0.0, 1.0)
        return v * v

    return _iterate(problem, step, x0, tol, max_iter)


def fractional_programming(
    problem: NormalisedProblem, x0: Tensor, tol: float = WMMSE_TOL, max_iter: int = WMMSE_MAX_ITER
) -> IterationTrace:
    r"""Fractional programming with the quadratic transform (Shen & Yu, "Fractional programming
    for communication systems", 2018; FPLinQ's power step) from the rows of ``x0``: with
    :math:`\gamma_k = \mathrm{SINR}_k` and link weights :math:`\omega_k`,

    .. math::

        y_k = \frac{\sqrt{\omega_k (1 + \gamma_k) \tilde g_{kk} x_k}}
                   {1 + \sum_j \tilde g_{kj} x_j}, \qquad
        x_k \leftarrow \min\left(1, \frac{\omega_k (1 + \gamma_k) y_k^2 \tilde g_{kk}}
                   {\left(\sum_j y_j^2 \tilde g_{jk}\right)^2}\right),

    the closed-form maximisers of the Lagrangian-dual and quadratic transforms in turn
    (nondecreasing weighted sum rate).
    """
    direct = problem.direct

    def step(x: Tensor, sinr: Tensor, omega: Tensor) -> Tensor:
        a = omega * (1.0 + sinr)
        received = 1.0 + x @ problem.gains.T
        y = (a * direct * x).sqrt() / received
        denominator = (y * y) @ problem.gains
        return (a * y * y * direct / (denominator * denominator).clamp(min=_TINY)).clamp(0.0, 1.0)

    return _iterate(problem, step, x0, tol, max_iter)


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
    trace = algorithm(problem, starting_points(problem, starts, seed), tol, max_iter)
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
    ``"max_iter"`` otherwise. For ``alpha_fair`` instances it runs the reweighted form (module
    docstring)."""
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
