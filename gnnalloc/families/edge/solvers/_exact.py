r"""Exact solver: the allocation problem as a conic program, solved by Clarabel through cvxpy.

The objective :math:`\max \sum_u w_u (f(X_u; m^c_u) + f(y_u; m^b_u))` is concave but piecewise, so
it is written with a hypograph variable per user and resource. In units of the minimum,
:math:`\rho = r/m`, the utility is :math:`f = \min(k(\rho - 1),\ \varphi(\rho))` where
:math:`\varphi(\rho) = \ln\rho` for :math:`\rho \ge 1` and :math:`\rho - 1` below (its tangent
extension). :math:`\varphi` is a sup-convolution,
:math:`\varphi(\rho) = \max_{v \ge \rho} \ln v + \rho - v`, so

.. math::  t \le f(\rho) \iff t \le k(\rho - 1),\ t \le \ln v + \rho - v,\ v \ge \rho

for some :math:`v`, which is exponential-cone representable (a power cone for :math:`\alpha \ne 1`).

A second, independent formulation (``formulation="split"``) works in natural units and splits each
resource into a part below the minimum and a part above it,
:math:`r = a + b,\ 0 \le a \le m,\ b \ge 0`, with utility :math:`k(a - m)/m + \ln(1 + b/m)`; it is
used to cross-check the first.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Literal

try:  # the optional [exact] extra; solve_exact says how to install it
    import cvxpy as cp
except ImportError:  # pragma: no cover - exercised only without the extra
    cp = None
import numpy as np
import scipy.sparse as sp
import torch

from gnnalloc.families.edge.problem import Allocation, fit_to_capacity
from gnnalloc.core import InputError, SolverError, check_positive, check_time_limit
from gnnalloc.families.edge.problem import Instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.solvers._bound import lagrangian_bound
from gnnalloc.families.edge.solvers.functional import bandwidth_waterfill

__all__ = ["CERTIFIED_GAP", "ExactResult", "solve_exact", "repair"]

Formulation = Literal["hypograph", "split"]


@dataclass(frozen=True)
class ExactResult:
    """What the exact solver returns.

    Args:
        allocation: the optimal allocation (after removing solver round-off, see ``repair``).
        objective: the allocation's objective, recomputed with the library's utility code.
        solver_objective: the objective the solver reported.
        status: cvxpy status (``"optimal"``, ``"optimal_inaccurate"``).
        certified: ``True`` iff ``upper_bound`` proves the allocation optimal to within
            :data:`CERTIFIED_GAP` per unit of user weight.
        seconds: wall time of model building plus solve.
        formulation: the formulation that produced this result (after any fallback).
        upper_bound: :func:`~gnnalloc.families.edge.solvers.lagrangian_bound` at the solver's capacity
            multipliers (and the exact bandwidth prices): no allocation can do better, so
            ``(upper_bound - objective) / sum(weight)`` bounds this result's mean per-user gap.
    """

    allocation: Allocation
    objective: float
    solver_objective: float
    status: str
    certified: bool
    seconds: float
    formulation: str
    upper_bound: float


#: A result is certified when its Lagrangian bound proves it within this of the optimum, in
#: utility per unit of user weight (the units of the mean per-user gap,
#: :func:`gnnalloc.metrics.functional.utility_gap`). The proof is the library's own arithmetic on
#: Clarabel's multipliers, so it holds whatever Clarabel's status and internal scaling: at
#: extreme magnitudes (minimums of 1e-12 beside capacities of 1e12) Clarabel has reported
#: "optimal" for allocations that the dual solver's feasible allocation beats.
CERTIFIED_GAP = 1e-6

#: Within this of alpha = 1 the log utility stands in for the alpha-fair power: no conic form of
#: the power is accurate there (the power cone's solution of max (v^p - 1)/p, v <= 10, drifts
#: from v = 10 as p -> 0; ``benchmarks/RESULTS.md``), and the two utilities differ by at most
#: |1 - alpha| (ln r)^2 / 2 per unit weight (2.4e-4 at r = 1,000).
LOG_UTILITY_BELOW = 1e-5


def _alpha_fair(ratio: cp.Expression, alpha: float) -> cp.Expression:
    r""":math:`((r)^{1-\alpha} - 1) / (1-\alpha)`, or :math:`\ln r` within
    :data:`LOG_UTILITY_BELOW` of :math:`\alpha = 1`."""
    p = 1.0 - alpha
    if abs(p) < LOG_UTILITY_BELOW:
        return cp.log(ratio)
    # cvxpy's default rounds the exponent to a fraction with denominator <= 1024, which turns
    # |p| < 1/2048 into 0 (a wrong, yet "optimal", solution): use the exact power cone there.
    return (cp.power(ratio, p, approx=abs(p) >= 1.0 / 1024) - 1.0) / p


def _upper_concave(rho: cp.Expression, v: cp.Variable, alpha: float) -> cp.Expression:
    # phi(rho) >= ln v + rho - v (resp. the alpha-fair power) for any v >= rho.
    return _alpha_fair(v, alpha) + rho - v


def _live_pairs(instance: Instance) -> np.ndarray:
    """Pairs that may carry compute: capacity on the server and, if migrated, on the link."""
    server_ok = instance.server_compute[instance.pair_server] > 0
    link = instance.pair_link
    link_ok = np.ones_like(server_ok)
    migrated = link >= 0
    link_ok[migrated] = (instance.link_capacity[link[migrated]] > 0) | (
        instance.pair_link_weight[migrated] == 0
    )
    return np.flatnonzero(server_ok & link_ok)


def _pair_matrices(instance: Instance, live: np.ndarray, scale: np.ndarray):
    """Sparse (user, server, link) incidence of the live pairs, with column scale ``scale``."""
    n = live.size
    cols = np.arange(n)
    users = sp.csr_matrix(
        (np.ones(n), (instance.pair_user[live], cols)), shape=(instance.num_users, n)
    )
    servers = sp.csr_matrix(
        (scale, (instance.pair_server[live], cols)), shape=(instance.num_servers, n)
    )
    link = instance.pair_link[live]
    migrated = link >= 0
    links = sp.csr_matrix(
        ((instance.pair_link_weight[live] * scale)[migrated], (link[migrated], cols[migrated])),
        shape=(instance.num_links, n),
    )
    return users, servers, links


class _CapacityRows:
    """``load <= capacity`` for the rows of ``matrix`` that carry load, row-normalised by
    capacity: Clarabel's residuals then stay comparable across servers whose capacities differ
    by orders of magnitude. Zero-capacity rows have no live pair and are left out."""

    def __init__(self, matrix: sp.csr_matrix, capacity: np.ndarray, x: cp.Expression) -> None:
        self.capacity = capacity
        self.rows = np.flatnonzero((capacity > 0) & (matrix.getnnz(axis=1) > 0))
        self.constraints: list = []
        if self.rows.size:
            scaled = sp.diags(1.0 / capacity[self.rows]) @ matrix[self.rows]
            self.constraints = [scaled @ x <= 1.0]

    def prices(self) -> np.ndarray:
        """The rows' multipliers per unit of load, in objective units (0 on rows left out)."""
        price = np.zeros(self.capacity.size)
        if self.constraints and self.constraints[0].dual_value is not None:
            dual = np.asarray(self.constraints[0].dual_value, dtype=np.float64).reshape(-1)
            price[self.rows] = np.maximum(dual, 0.0) / self.capacity[self.rows]
        return price


def _natural_prices(constraint, size: int) -> np.ndarray:
    """Multipliers of ``load <= capacity`` written in natural units (0 where unavailable)."""
    if constraint is None or constraint.dual_value is None:
        return np.zeros(size)
    return np.maximum(np.asarray(constraint.dual_value, dtype=np.float64).reshape(-1), 0.0)


def _build_hypograph(instance: Instance, live: np.ndarray):
    k, alpha = instance.penalty, instance.alpha
    cmin = instance.compute_min
    users, servers, links = _pair_matrices(instance, live, cmin[instance.pair_user[live]])
    xi = cp.Variable(live.size, nonneg=True)  # compute in units of the user's minimum
    eta = cp.Variable(instance.num_users, nonneg=True)  # bandwidth in units of the minimum
    bandwidth_rows = sp.csr_matrix(
        (instance.bandwidth_min, (instance.user_server, np.arange(instance.num_users))),
        shape=(instance.num_servers, instance.num_users),
    )
    server_rows = _CapacityRows(servers, instance.server_compute, xi)
    link_rows = _CapacityRows(links, instance.link_capacity, xi)
    constraints = server_rows.constraints + link_rows.constraints
    constraints += _CapacityRows(bandwidth_rows, instance.server_bandwidth, eta).constraints
    dead_users = np.flatnonzero(instance.server_bandwidth[instance.user_server] <= 0)
    if dead_users.size:
        constraints.append(eta[dead_users] == 0)

    rho_c = users @ xi if live.size else np.zeros(instance.num_users)
    utility = 0
    for rho in (rho_c, eta):
        t = cp.Variable(instance.num_users)
        v = cp.Variable(instance.num_users)
        constraints += [t <= k * (rho - 1.0), t <= _upper_concave(rho, v, alpha), v >= rho]
        utility = utility + t
    problem = cp.Problem(cp.Maximize(instance.weight @ utility), constraints)

    def extract() -> tuple[np.ndarray, np.ndarray]:
        x = np.zeros(instance.num_pairs)
        if live.size:
            x[live] = xi.value * cmin[instance.pair_user[live]]
        return x, eta.value * instance.bandwidth_min

    def prices() -> tuple[np.ndarray, np.ndarray]:
        return server_rows.prices(), link_rows.prices()

    return problem, extract, prices


def _split_utility(amount: cp.Expression, minimum: np.ndarray, k: float, alpha: float, constraints):
    below = cp.Variable(minimum.size, nonneg=True)
    above = cp.Variable(minimum.size, nonneg=True)
    constraints += [below <= minimum, below + above == amount]
    ratio = 1.0 + cp.multiply(above, 1.0 / minimum)
    return k * (cp.multiply(below, 1.0 / minimum) - 1.0) + _alpha_fair(ratio, alpha)


def _build_split(instance: Instance, live: np.ndarray):
    k, alpha = instance.penalty, instance.alpha
    users, servers, links = _pair_matrices(instance, live, np.ones(live.size))
    x = cp.Variable(live.size, nonneg=True)
    y = cp.Variable(instance.num_users, nonneg=True)
    homes = sp.csr_matrix(
        (np.ones(instance.num_users), (instance.user_server, np.arange(instance.num_users))),
        shape=(instance.num_servers, instance.num_users),
    )
    server_rows = servers @ x <= instance.server_compute
    link_rows = links @ x <= instance.link_capacity if instance.num_links else None
    constraints = [server_rows, homes @ y <= instance.server_bandwidth]
    if link_rows is not None:
        constraints.append(link_rows)
    total = users @ x if live.size else np.zeros(instance.num_users)
    utility = _split_utility(total, instance.compute_min, k, alpha, constraints)
    utility = utility + _split_utility(y, instance.bandwidth_min, k, alpha, constraints)
    problem = cp.Problem(cp.Maximize(instance.weight @ utility), constraints)

    def extract() -> tuple[np.ndarray, np.ndarray]:
        full = np.zeros(instance.num_pairs)
        if live.size:
            full[live] = x.value
        return full, y.value

    def prices() -> tuple[np.ndarray, np.ndarray]:
        return (
            _natural_prices(server_rows, instance.num_servers),
            _natural_prices(link_rows, instance.num_links),
        )

    return problem, extract, prices


def repair(instance: Instance, compute: np.ndarray, bandwidth: np.ndarray) -> Allocation:
    """Remove interior-point round-off: clip at 0, then scale down each pair by its worst ratio
    (:func:`~gnnalloc.families.edge.problem.fit_to_capacity`).

    Scaling a pair down can only lower every load it appears in, so one pass makes the allocation
    feasible. On a certified solve the factors differ from 1 by about the solver tolerance.
    """
    return fit_to_capacity(instance, Allocation(compute=compute, bandwidth=bandwidth))


#: Clarabel's default fraction of the step to the cone boundary (0.99), and the shorter one a
#: retry takes: the interior-point iterates of some high-penalty instances approach the boundary
#: of the exponential cones too fast and stall ("insufficient progress") a few percent from the
#: optimum in both formulations, while shorter steps converge.
_DEFAULT_STEP, _SHORT_STEP = 0.99, 0.9

#: The loosest ``tolerance`` accepted: looser, Clarabel's "optimal" is far from the optimum
#: (1e1 gave -186.6 where the optimum is -54.5), which the certificate would only refuse.
_MAX_TOLERANCE = 1e-2


def _attempt(
    instance: Instance, live: np.ndarray, formulation: str, tolerance: float,
    time_limit: float | None, verbose: bool, step_fraction: float = _DEFAULT_STEP,
) -> tuple[str, float, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    build = _build_hypograph if formulation == "hypograph" else _build_split
    problem, extract, prices = build(instance, live)
    options = dict(
        tol_feas=tolerance, tol_gap_abs=tolerance, tol_gap_rel=tolerance, max_iter=500,
        max_step_fraction=step_fraction,
    )
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem.solve(solver=cp.CLARABEL, verbose=verbose, **options)
    except cp.error.SolverError:
        return None
    # USER_LIMIT (cvxpy's status for Clarabel's time and iteration limits alike): under a time
    # limit (one attempt, nothing follows) the iterate it stopped at is repaired to feasibility and
    # held to the library's bound like any other (uncertified unless that bound proves it),
    # labelled by the limit Clarabel's own clock says stopped it; without one the iteration cap
    # was hit, and the next attempt (shorter steps, the other formulation) is the better answer.
    limited = problem.status == cp.USER_LIMIT
    if limited and time_limit is None:
        return None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT) or problem.value is None:
        return None
    compute, bandwidth = extract()
    if compute is None or bandwidth is None:
        return None
    if not (np.isfinite(compute).all() and np.isfinite(bandwidth).all()):
        return None
    if limited:
        solve_time = getattr(problem.solver_stats, "solve_time", None) or 0.0
        status = "time limit reached" if solve_time >= 0.9 * time_limit else "iteration limit reached"
    else:
        status = problem.status
    return status, float(problem.value), compute, bandwidth, prices()


def solve_exact(
    instance: Instance,
    *,
    formulation: Formulation = "hypograph",
    tolerance: float = 1e-8,
    time_limit: float | None = None,
    verbose: bool = False,
    fallback: bool = True,
) -> ExactResult:
    """Solve ``instance`` to the global optimum.

    Clarabel occasionally stalls ("insufficient progress") on instances with thousands of
    users or high penalties, in either formulation. The solver therefore tries the requested
    formulation, then the same with shorter interior-point steps, then the other formulation
    (default, then shorter steps), then the requested one at ten times the tolerance, and
    returns the first certified result; if none is certified it returns the best uncertified
    one with ``certified=False``.

    Args:
        instance: the network.
        formulation: ``"hypograph"`` (default, normalised units) or ``"split"`` (independent
            cross-check in natural units).
        tolerance: Clarabel's feasibility and relative/absolute gap tolerances.
        time_limit: seconds after which Clarabel stops (one attempt, no fallback); its last
            iterate is then repaired to feasibility and returned with status ``"time limit
            reached"`` (``"iteration limit reached"`` where Clarabel's iteration cap stopped it
            first), certified only if the bound proves it.
        verbose: print the solver log.
        fallback: whether to try the other formulation when the requested one fails (off for
            cross-checks, which must compare two independent solves; the shorter steps are
            still tried).

    Raises:
        SolverError: if every attempt fails (a valid instance is never infeasible: the zero
            allocation is feasible).
    """
    from gnnalloc.families.edge.metrics import user_utilities

    if cp is None:
        raise ImportError(
            "method 'exact' needs cvxpy and clarabel: pip install 'gnnalloc[exact]'"
        )
    if formulation not in ("hypograph", "split"):
        raise InputError(f"formulation: unknown {formulation!r}, expected 'hypograph' or 'split'")
    if time_limit is not None:
        check_time_limit(time_limit)
    if not isinstance(fallback, bool):
        raise InputError(f"fallback: must be true or false, got {fallback!r}")
    if not isinstance(verbose, bool):
        raise InputError(f"verbose: must be true or false, got {verbose!r}")
    check_positive("tolerance", tolerance)
    if tolerance > _MAX_TOLERANCE:
        raise InputError(f"tolerance: at most {_MAX_TOLERANCE:g} (Clarabel's default is 1e-8), got {tolerance!r}")
    start = time.perf_counter()
    live = _live_pairs(instance)
    other = "split" if formulation == "hypograph" else "hypograph"
    plan = [
        (formulation, tolerance, _DEFAULT_STEP), (formulation, tolerance, _SHORT_STEP),
        (other, tolerance, _DEFAULT_STEP), (other, tolerance, _SHORT_STEP),
        (formulation, 10 * tolerance, _DEFAULT_STEP),
    ]
    if not fallback:
        plan = [step for step in plan if step[0] == formulation]
    if time_limit is not None:
        plan = plan[:1]  # a bounded request gets one bounded attempt
    problem = ProblemTensors.from_instance(instance)
    _, bandwidth_price = bandwidth_waterfill(problem)  # the same for every attempt
    total_weight = float(instance.weight.sum())
    best: ExactResult | None = None
    for name, tol, step_fraction in plan:
        outcome = _attempt(instance, live, name, tol, time_limit, verbose, step_fraction)
        if outcome is None:
            continue
        status, solver_objective, compute, bandwidth, (server_price, link_price) = outcome
        allocation = repair(instance, compute, bandwidth)
        objective = float(user_utilities(instance, allocation).sum())
        upper_bound = float(lagrangian_bound(
            problem, torch.from_numpy(server_price), torch.from_numpy(link_price), bandwidth_price
        ))
        certified = upper_bound - objective <= CERTIFIED_GAP * total_weight
        result = ExactResult(
            allocation=allocation,
            objective=objective,
            solver_objective=solver_objective,
            status=status,
            certified=certified,
            upper_bound=upper_bound,
            seconds=time.perf_counter() - start,
            formulation=name,
        )
        if certified:
            return result
        if best is None or result.objective > best.objective:
            best = result
    if best is None:
        if time_limit is not None:  # one attempt: the limit may be what stopped it
            raise SolverError(f"Clarabel found no solution of {instance!r} in its one attempt (time_limit {time_limit:g} s)")
        raise SolverError(f"Clarabel failed on {instance!r} in every formulation")
    return best
