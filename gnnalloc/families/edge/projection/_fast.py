r"""Fast exact projection in pure torch: a safeguarded dual active-set Newton method.

**Bandwidth.** Users are grouped by home server, so :math:`y = \max(0, \hat y - \tau_s)` with the
capped-simplex threshold :math:`\tau_s` (:func:`~gnnalloc.families.edge.projection.functional.support_threshold`,
falling back to the sorting :func:`~gnnalloc.families.edge.projection.functional.group_threshold`): exact in one
shot and differentiated by ordinary autograd.

**Compute.** With :math:`A` stacking the server rows (unit weights) and the link rows (weights
:math:`a_p`) and :math:`b = (C, L)`, the projection of :math:`z` has the dual

.. math::  \max_{\nu \ge 0} g(\nu) = \tfrac12\|x(\nu) - z\|^2 + \nu^\top(A x(\nu) - b),\qquad
           x(\nu) = \max(0, z - A^\top \nu),

concave and differentiable with :math:`\nabla g = A x(\nu) - b`. Each pair sits in one server row
and at most one link row, so :math:`A` has at most two nonzeros per column and every operation
below is a gather or ``index_add`` over pairs (vectorised over users, servers and graphs). Each
iteration tries

1. a **regularised primal-dual active-set (semismooth Newton) step**: with free pairs
   :math:`F = \{z - A^\top\nu > 0\}`, Gram diagonal :math:`D = \operatorname{diag}(A_F A_F^\top)`
   and predicted active rows :math:`R = \{D_r \nu_r + (Ax - b)_r > 0\}`, solve

   .. math::  (A_{RF}A_{RF}^\top + \rho D_R)\,\delta = A_{RF}\,u_F - b_R,\qquad
              u = z - A_R^\top \nu_R,

   by Jacobi-preconditioned conjugate gradients and set :math:`\nu' = (\nu_R + \delta)_+`,
   :math:`\nu'_{\bar R} = 0`. The Gram couples a server row and a link row only through the
   pairs in both, so CG applies it over (server, link) edges, not over pairs; inexact (Newton
   forcing term :math:`\min(10^{-2}, r^2)` for KKT residual :math:`r`) far from the solution
   and stopped early when its iterate diverges. With :math:`\rho = 0` this is Newton's step
   (exact once the active set is right); :math:`\rho > 0` is a proximal (Levenberg-Marquardt)
   term that keeps the step bounded when the guessed active rows are dependent, e.g. a server and
   a link sharing their only free pair. The correction form avoids cancellation when raw values
   dwarf the capacities;
2. an exact **block-coordinate ascent sweep** from :math:`\nu'`: the server multipliers given the
   link ones, then the link multipliers given the server ones, each a closed-form group threshold
   (:func:`~gnnalloc.families.edge.projection.functional.support_threshold` warm-started from the previous
   sweep's supports; the sorting :func:`~gnnalloc.families.edge.projection.functional.group_threshold` if that
   does not settle).

The candidate is kept if it does not decrease :math:`g` (and :math:`\rho` shrinks), otherwise the
sweep is applied to the current point instead (and :math:`\rho` grows). The sweep alone is a
convergent (Dykstra-like) dual ascent, so the method is globally convergent; Newton makes it
finish in a few iterations once the active set is identified: 3-10 on model-like raw values.
With raw values hundreds of times the capacities the problem is close to a linear program and
takes tens to a hundred iterations; beyond about :math:`10^4` times it may stop at ``max_iter``
(still feasible, see :attr:`FastProjection.last_stats`).

It stops when every row satisfies :math:`(Ax - b)_+ \le \text{tol}\cdot b_r` and complementarity
:math:`\min(\nu_r D_r, (b - Ax)_r) \le \text{tol}\cdot b_r` (stationarity holds by construction;
here :math:`D` is the Gram diagonal over all pairs, and :math:`b_r` is floored at
:math:`10^{-6}` times the graph's largest server capacity, plus a round-off allowance).
Each graph is first rescaled by its largest server capacity (the projection is positively
homogeneous), so a batch mixing :math:`10^{-6}` and :math:`10^{6}` instances converges per
instance. A final repair scales down any group still above capacity (as
:func:`gnnalloc.families.edge.solvers.repair`), so outputs are feasible even if ``max_iter`` is hit.

**Backward.** The projection onto a polyhedron is piecewise linear; at a solution with free set
:math:`F = \{x_p > 0\}` and active rows :math:`R = \{\nu_r > 0\}` its Jacobian is the symmetric
:math:`J = P_F(I - A_{RF}^\top (A_{RF}A_{RF}^\top)^{+} A_{RF})P_F`. The vector-Jacobian product
:math:`v \mapsto v_F - A_{RF}^\top q` with :math:`A_{RF}A_{RF}^\top q = A_{RF} v_F` is computed by
conjugate gradients (the right-hand side lies in the Gram's range, so CG from 0 returns the
pseudo-inverse solution even for dependent rows); no iteration is unrolled.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from gnnalloc.core import InputError
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.projection._base import Projection, check_inputs
from gnnalloc.families.edge.projection.functional import (
    SegmentLayout,
    conjugate_gradient,
    group_threshold,
    segment_layout,
    support_threshold,
)

__all__ = ["FastProjection", "ProjectionStats"]

_WORK = torch.float64
_EPS = torch.finfo(_WORK).eps
# Rows with capacity below this fraction of their graph's largest server are judged against it
# instead of their own capacity, so a near-zero capacity cannot demand sub-round-off accuracy.
_SCALE_FLOOR = 1e-6
# Feasibility tests allow this many ulps of the row's gross load for round-off.
_NOISE_ULPS = 64.0
# Proximal weight schedule of the Newton step (relative to the Gram diagonal), tuned on EUA and
# random instances from moderate raw values (Newton finishes in 2-5 steps) to raw values 1000x
# the capacities (close to a linear program: 20-60 steps).
_RIDGE_START, _RIDGE_MIN, _RIDGE_MAX = 1e-4, 1e-12, 1.0
_RIDGE_SHRINK, _RIDGE_GROW = 0.1, 10.0
_RIDGE_FIRST = 0.0  # the first step is plain Newton: it usually finishes moderate problems


@dataclass
class ProjectionStats:
    """Diagnostics of the last :class:`FastProjection` forward.

    Args:
        iterations: outer iterations (one Newton attempt plus sweep each).
        newton_accepted: Newton candidates that were kept.
        cg_iterations: conjugate-gradient iterations summed over the Newton steps.
        residual: final largest relative KKT residual (violation, complementarity).
        converged: the tolerance was met before ``max_iter``.
    """

    iterations: int = 0
    newton_accepted: int = 0
    cg_iterations: int = 0
    residual: float = 0.0
    converged: bool = True


def _take(values: Tensor, index: Tensor) -> Tensor:
    # index_select rather than advanced indexing: the latter is far slower on small CPU tensors.
    return values.index_select(0, index)


@dataclass(frozen=True)
class _Structure:
    """The constraint structure in the solver's terms; rows are ``[servers (S), links (L)]``."""

    num_servers: int
    num_rows: int
    alive: Tensor  # (P,) pairs that can carry compute (server and, if weighted, link capacity > 0)
    alive_f: Tensor  # (P,) the same as 0/1 floats
    srow: Tensor  # (P,) server row of each pair
    lrow: Tensor  # (P,) link row, or the server row (with weight 0) for pairs in no link
    weight: Tensor  # (P,) a_p for alive pairs in a link row, else 0
    weight2: Tensor  # (P,) a_p^2
    capacity: Tensor  # (R,) b in original units
    full_diag: Tensor  # (R,) diag(A A^T) over alive pairs
    # The Gram A_F A_F^T couples a server row and a link row when a pair is in both; each such
    # (server, link) combination is an edge, so the Gram is applied in O(rows + edges) per CG
    # iteration instead of O(pairs).
    edge_server: Tensor  # (E,) server row of each edge
    edge_link: Tensor  # (E,) link row of each edge
    pair_edge: Tensor  # (P,) edge of each pair in a link row, E (a dummy slot) otherwise
    pair_scale: Tensor  # (P,) per-graph normalisation sigma
    row_scale: Tensor  # (R,)
    in_link: Tensor  # (P,) alive pairs with a weighted link constraint
    link: Tensor  # (P,) link index of each pair (0 where not in a link)
    user_alive: Tensor  # (U,) home server has bandwidth
    user_server: Tensor  # (U,)
    bandwidth_capacity: Tensor  # (S,)
    data_eps: float  # machine epsilon of the problem's own dtype (its capacities' precision)

    # Sorted layouts: the exact fallback when the threshold iteration does not settle; built on
    # first use only (cached_property writes the instance dict, which frozen dataclasses allow).
    @cached_property
    def server_layout(self) -> SegmentLayout:
        return segment_layout(self.srow, self.num_servers, self.alive)

    @cached_property
    def link_layout(self) -> SegmentLayout:
        return segment_layout(self.link, self.num_rows - self.num_servers, self.in_link)

    @cached_property
    def user_layout(self) -> SegmentLayout:
        return segment_layout(self.user_server, self.num_servers, self.user_alive)

    def gather(self, nu: Tensor) -> Tensor:
        """``A^T nu`` per pair."""
        return _take(nu, self.srow) + self.weight * _take(nu, self.lrow)

    def scatter(self, values: Tensor, squared: bool = False) -> Tensor:
        """``A u`` per row (with ``squared``, the same with squared coefficients)."""
        out = values.new_zeros(self.num_rows).index_add_(0, self.srow, values)
        return out.index_add_(0, self.lrow, (self.weight2 if squared else self.weight) * values)


def _build_structure(problem: ProblemTensors, device: torch.device) -> _Structure:
    p = problem.to(device=device, dtype=_WORK)
    num_servers, num_links = p.num_servers, p.num_links
    migrated = p.pair_link >= 0
    link = p.pair_link.clamp_min(0)
    server_cap, link_cap = p.server_compute, p.link_capacity
    weighted = migrated & (p.pair_link_weight > 0)
    link_ok = torch.ones_like(migrated)
    if num_links:
        link_ok = ~weighted | (_take(link_cap, link) > 0)
    alive = (_take(server_cap, p.pair_server) > 0) & link_ok
    in_link = weighted & alive
    srow = p.pair_server
    lrow = torch.where(in_link, num_servers + link, srow)
    weight = torch.where(in_link, p.pair_link_weight, torch.zeros_like(p.pair_link_weight))
    num_rows = num_servers + num_links

    # Per-graph scale: the largest capacity of a server that can carry compute.
    pair_graph = _take(p.user_graph, p.pair_user)
    sigma = torch.zeros(max(p.num_graphs, 1), dtype=_WORK, device=device)
    sigma = sigma.scatter_reduce(0, pair_graph[alive], _take(server_cap, srow)[alive], "amax")
    sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    pair_scale = _take(sigma, pair_graph)
    row_scale = torch.ones(num_rows, dtype=_WORK, device=device)
    row_scale = row_scale.index_put((srow[alive],), pair_scale[alive])
    row_scale = row_scale.index_put((lrow[in_link],), pair_scale[in_link])

    combination = torch.where(in_link, srow * num_rows + lrow, torch.full_like(srow, -1))
    edges, pair_edge = torch.unique(combination, return_inverse=True)
    if edges.numel() and int(edges[0]) < 0:
        # unique sorts -1 (no link) first: move it to the dummy slot E at the end.
        edges = edges[1:]
        pair_edge = torch.where(pair_edge == 0, edges.numel(), pair_edge - 1)
    else:
        pair_edge = torch.where(in_link, pair_edge, edges.numel())

    alive_f = alive.to(_WORK)
    full_diag = alive_f.new_zeros(num_rows).index_add_(0, srow, alive_f)
    full_diag = full_diag.index_add_(0, lrow, weight * weight * alive_f)
    user_alive = _take(p.server_bandwidth, p.user_server) > 0
    return _Structure(
        num_servers=num_servers,
        num_rows=num_rows,
        alive=alive,
        alive_f=alive_f,
        srow=srow,
        lrow=lrow,
        weight=weight,
        weight2=weight * weight,
        capacity=torch.cat([server_cap, link_cap]),
        full_diag=full_diag,
        edge_server=torch.div(edges, num_rows, rounding_mode="floor"),
        edge_link=torch.remainder(edges, num_rows),
        pair_edge=pair_edge,
        pair_scale=pair_scale,
        row_scale=row_scale,
        in_link=in_link,
        link=link,
        user_alive=user_alive,
        user_server=p.user_server,
        bandwidth_capacity=p.server_bandwidth,
        data_eps=float(torch.finfo(problem.dtype).eps),
    )


@dataclass
class _Point:
    """A dual point and what the solver needs about it."""

    nu: Tensor
    x: Tensor
    load: Tensor
    dual: float
    excess: float  # max over rows of (KKT residual - allowance); <= 0 means converged
    residual: float  # max relative KKT residual


def _gram_operator(
    st: _Structure, free_f: Tensor, diag: Tensor, active_f: Tensor, ridge: float = 0.0
) -> Callable[[Tensor], Tensor]:
    """``v -> (A_RF A_RF^T + ridge diag) v`` on the active rows ``R`` (zero outside ``R``).

    Args:
        free_f: 0/1 free pairs ``F``.
        diag: the Gram's diagonal over ``F`` (``st.scatter(free_f, squared=True)``).
        active_f: 0/1 active rows ``R``.
        ridge: proximal weight.
    """
    num_edges = st.edge_server.numel()
    coupling = free_f.new_zeros(num_edges + 1).index_add_(0, st.pair_edge, st.weight * free_f)
    # Edges leaving R carry nothing: with v zero outside R, so is the product.
    coupling = coupling[:num_edges] * _take(active_f, st.edge_server) * _take(active_f, st.edge_link)
    scaled_diag = (1.0 + ridge) * diag * active_f

    def matvec(v: Tensor) -> Tensor:
        out = scaled_diag * v
        out = out.index_add_(0, st.edge_server, coupling * _take(v, st.edge_link))
        return out.index_add_(0, st.edge_link, coupling * _take(v, st.edge_server))

    return matvec


def _inverse(diag: Tensor, active: Tensor) -> Tensor:
    return torch.where(active, 1.0 / torch.where(active, diag, 1.0), 0.0)


@dataclass
class _Problem:
    """One normalised compute projection: structure, raw point and per-row tolerances."""

    st: _Structure
    z: Tensor  # (P,) normalised raw compute, 0 on dead pairs
    b: Tensor  # (R,) normalised capacities
    inv_ref: Tensor  # (R,) 1 / scale of each row's tolerance
    allowance: Tensor  # (R,) tol * row scale + round-off noise
    gross: Tensor  # (R,) A|z|: the largest load a row could see
    cg_max_iter: int
    stats: ProjectionStats = field(default_factory=ProjectionStats)
    # Support of the last sweep's link thresholds: the next sweep may start from it.
    support: Tensor | None = None

    def evaluate(self, nu: Tensor) -> _Point:
        st = self.st
        # Dead pairs have z = 0 and nu >= 0, so they come out 0 without a mask.
        x = torch.relu(self.z - st.gather(nu))
        load = st.scatter(x)
        gap = load - self.b
        # Complementarity measured with the full Gram diagonal: an upper bound on the load a
        # multiplier holds back, so the test is (slightly) conservative.
        kkt = torch.maximum(torch.relu(gap), torch.minimum(nu * st.full_diag, torch.relu(-gap)))
        diff = x - self.z
        dual = 0.5 * torch.dot(diff, diff) + torch.dot(nu, gap)
        if kkt.numel():
            summary = torch.stack([(kkt - self.allowance).max(), (kkt * self.inv_ref).max(), dual])
            excess, residual, dual_value = summary.tolist()
        else:
            excess, residual, dual_value = 0.0, 0.0, float(dual)
        return _Point(nu, x, load, dual_value, excess, residual)

    def sweep(self, nu: Tensor, free: Tensor | None = None) -> Tensor:
        """Exact block-coordinate ascent: server multipliers, then link multipliers.

        Args:
            nu: the multipliers to start from.
            free: the free pairs at ``nu`` if known: the supports of both thresholds are close to
                it, which makes the threshold iteration settle in a round or two.
        """
        st = self.st
        s = st.num_servers
        values = self.z - st.weight * _take(nu, st.lrow)
        lam, support, exact = support_threshold(
            values, self.b[:s], st.srow, st.alive, support=free if free is not None else self.support
        )
        if not exact:
            lam = group_threshold(values, self.b[:s], st.server_layout)
        values = self.z - _take(lam, st.srow)
        # The server step's support is the free set for the new server multipliers.
        mu, support, exact = support_threshold(
            values, self.b[s:], st.link, st.in_link, st.weight, support=support
        )
        if not exact:
            mu = group_threshold(values, self.b[s:], st.link_layout, st.weight)
        self.support = support
        return torch.cat([lam, mu])

    def newton(self, point: _Point, ridge: float) -> Tensor:
        """Regularised active-set step from ``point``; returns the candidate multipliers."""
        st, nu = self.st, point.nu
        free_f = (point.x > 0).to(_WORK)
        diag = st.scatter(free_f, squared=True)
        gap = point.load - self.b
        active = (diag > 0) & (nu * diag + gap > 0)
        active_f = active.to(_WORK)
        # u = z - A_R^T nu_R on F: the free values once the other rows release their multipliers.
        u = (self.z - st.gather(nu * active_f)) * free_f
        rhs = (st.scatter(u) - self.b) * active_f
        gram = _gram_operator(st, free_f, diag, active_f, ridge)
        inverse = _inverse(diag, active)
        # Far from the solution an inexact step does as well (Newton's forcing term). A
        # correction moving a row's load by more than 100x its gross load means the guessed
        # active rows are inconsistent: stop CG early, the step will be rejected or repaired.
        forcing = min(1e-2, point.residual**2)
        delta, iters = conjugate_gradient(
            gram, rhs, inverse / (1.0 + ridge), atol=0.1 * self.allowance, rtol=forcing,
            bound=torch.where(active, 100.0 * (self.gross + self.b) * inverse, math.inf),
            max_iter=self.cg_max_iter,
        )
        self.stats.cg_iterations += iters
        return torch.relu((nu + delta) * active_f)

    def _no_worse(self, candidate: _Point, point: _Point) -> bool:
        # g sums P terms: allow for round-off in the comparison.
        return candidate.dual >= point.dual - 1e-12 * (abs(point.dual) + 1.0)

    def solve(self, max_iter: int) -> _Point:
        point = self.evaluate(self.sweep(torch.zeros_like(self.b)))
        ridge = _RIDGE_FIRST
        iterations = 0
        while point.excess > 0 and iterations < max_iter:
            iterations += 1
            step = self.newton(point, ridge)
            candidate = self.evaluate(step)
            if candidate.excess <= 0 and self._no_worse(candidate, point):
                point = candidate
                self.stats.newton_accepted += 1
                break
            candidate = self.evaluate(self.sweep(step, candidate.x > 0))
            if self._no_worse(candidate, point):
                point = candidate
                self.stats.newton_accepted += 1
                ridge = max(ridge * _RIDGE_SHRINK, _RIDGE_MIN)
            else:
                point = self.evaluate(self.sweep(point.nu, point.x > 0))
                ridge = min(max(ridge * _RIDGE_GROW, _RIDGE_START), _RIDGE_MAX)
        self.stats.iterations = iterations
        self.stats.residual = point.residual
        self.stats.converged = point.excess <= 0
        return point


def _margin(dtype: torch.dtype, st: _Structure) -> float:
    return 4.0 * max(torch.finfo(dtype).eps, st.data_eps)


def _repair_factor(index: Tensor, load: Tensor, capacity: Tensor, margin: float) -> Tensor:
    """Per-element factor ``min(1, target / load)`` of the group in ``index``."""
    target = capacity * (1.0 - margin)
    over = load > target
    factor = torch.where(over, target / torch.where(over, load, 1.0), torch.ones_like(load))
    return _take(factor, index)


class _ComputeProjection(torch.autograd.Function):
    """Exact compute projection with the implicit (active-set) vector-Jacobian product."""

    @staticmethod
    def forward(ctx: Any, raw: Tensor, st: _Structure, options: dict[str, Any]) -> Tensor:
        z = raw.to(_WORK) / st.pair_scale * st.alive_f
        b = st.capacity / st.row_scale
        row_ref = torch.clamp_min(b, _SCALE_FLOOR)
        gross = st.scatter(z.abs())
        allowance = options["tol"] * row_ref + _NOISE_ULPS * _EPS * gross
        problem = _Problem(
            st, z, b, 1.0 / row_ref, allowance, gross, options["cg_max_iter"], options["stats"]
        )
        point = problem.solve(options["max_iter"])

        x = point.x * st.pair_scale
        # Guarantee feasibility whatever the iteration reached, with a margin for rounding to the
        # output dtype and for capacities stored in a lower precision (the factors differ from 1
        # by about the tolerance).
        margin = _margin(raw.dtype, st)
        load = st.scatter(x)
        factor = _repair_factor(st.srow, load, st.capacity, margin)
        link_factor = _repair_factor(st.lrow, load, st.capacity, margin)
        x = x * torch.where(st.weight > 0, torch.minimum(factor, link_factor), factor)

        free = point.x > 0
        diag = st.scatter(free.to(_WORK), squared=True)
        ctx.save_for_backward(free, (point.nu > 0) & (diag > 0))
        ctx.st = st
        ctx.cg_max_iter = options["cg_max_iter"]
        ctx.num_threads = options["num_threads"]
        ctx.raw_dtype = raw.dtype
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        free, active = ctx.saved_tensors
        st: _Structure = ctx.st
        free_f, active_f = free.to(_WORK), active.to(_WORK)
        v = grad.to(_WORK) * free_f
        with _intra_op_threads(ctx.num_threads, grad.device):
            if bool(active.any()):
                rhs = st.scatter(v) * active_f
                diag = st.scatter(free_f, squared=True)
                q, _ = conjugate_gradient(
                    _gram_operator(st, free_f, diag, active_f), rhs, _inverse(diag, active),
                    rtol=1e-13, max_iter=ctx.cg_max_iter,
                )
                v = v - st.gather(q) * free_f
        return v.to(ctx.raw_dtype), None, None


@contextlib.contextmanager
def _intra_op_threads(count: int | None, device: torch.device) -> Iterator[None]:
    if count is None or device.type != "cpu" or torch.get_num_threads() == count:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tiled(problem: ProblemTensors, batch: int) -> ProblemTensors:
    """``problem`` repeated ``batch`` times (a batch of decisions for the same instance)."""
    return problem if batch == 1 else ProblemTensors.collate([problem] * batch)


class FastProjection(Projection):
    """Exact, vectorised, batched projection in pure torch (see the module docstring for the math).

    Args:
        tol: relative KKT tolerance per constraint row (violation and complementarity relative to
            the row's capacity).
        max_iter: cap on outer iterations (Newton attempt + block-coordinate sweep); the output is
            made feasible even when it is hit (see :attr:`last_stats`).
        cg_max_iter: cap on conjugate-gradient iterations per linear solve (forward and backward).
        num_threads: torch intra-op threads while solving on CPU, restored afterwards. The solver
            issues many small operations, for which thread synchronisation costs more than it
            saves (and much more on a busy machine); ``None`` leaves torch's setting alone.
        cache_size: number of problem structures kept (keyed on tensor identity and version).
    """

    def __init__(
        self,
        tol: float = 1e-9,
        max_iter: int = 500,
        cg_max_iter: int = 1000,
        num_threads: int | None = 1,
        cache_size: int = 8,
    ) -> None:
        super().__init__()
        if not tol > 0:
            raise InputError(f"tol: must be > 0, got {tol!r}")
        if max_iter < 0:
            raise InputError(f"max_iter: must be >= 0, got {max_iter!r}")
        if cg_max_iter < 1:
            raise InputError(f"cg_max_iter: must be >= 1, got {cg_max_iter!r}")
        if num_threads is not None and num_threads < 1:
            raise InputError(f"num_threads: must be >= 1 or None, got {num_threads!r}")
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.cg_max_iter = int(cg_max_iter)
        self.num_threads = num_threads
        self.cache_size = int(cache_size)
        self.last_stats: ProjectionStats | None = None
        self._cache: OrderedDict[tuple, tuple[ProblemTensors, _Structure]] = OrderedDict()

    def extra_repr(self) -> str:
        return f"tol={self.tol:g}, max_iter={self.max_iter}, cg_max_iter={self.cg_max_iter}"

    def _structure(self, problem: ProblemTensors, batch: int, device: torch.device) -> _Structure:
        tensors = (
            problem.pair_user, problem.pair_server, problem.pair_link, problem.pair_link_weight,
            problem.user_server, problem.server_compute, problem.server_bandwidth,
            problem.link_capacity, problem.user_graph,
        )
        if any(t.is_inference() for t in tensors):
            # Inference tensors (torch.inference_mode, e.g. Lightning's validate/test) have no
            # version counter, so an in-place change could not be told from a cache hit.
            return _build_structure(_tiled(problem, batch), device)
        key = (str(device), batch, problem.num_graphs) + tuple(
            (t.data_ptr(), t._version, tuple(t.shape), t.dtype, str(t.device)) for t in tensors
        )
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit[1]
        st = _build_structure(_tiled(problem, batch), device)
        # Holding `problem` keeps its storage alive, so a cached data_ptr cannot be reused.
        self._cache[key] = (problem, st)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return st

    def forward(
        self, raw_compute: Tensor, raw_bandwidth: Tensor, problem: ProblemTensors
    ) -> tuple[Tensor, Tensor]:
        """Project ``(raw_compute, raw_bandwidth)``; see :meth:`Projection.forward`."""
        batch_shape = check_inputs(raw_compute, raw_bandwidth, problem)
        batch = batch_shape[0] if batch_shape else 1
        device = raw_compute.device
        stats = ProjectionStats()
        options = dict(
            tol=self.tol, max_iter=self.max_iter, cg_max_iter=self.cg_max_iter,
            num_threads=self.num_threads, stats=stats,
        )
        with _intra_op_threads(self.num_threads, device):
            st = self._structure(problem, batch, device)
            x = _ComputeProjection.apply(raw_compute.reshape(-1), st, options)
            y = _project_bandwidth(raw_bandwidth.reshape(-1), st)
        self.last_stats = stats
        return (
            x.to(raw_compute.dtype).reshape(raw_compute.shape),
            y.to(raw_bandwidth.dtype).reshape(raw_bandwidth.shape),
        )


def _project_bandwidth(raw: Tensor, st: _Structure) -> Tensor:
    """Exact capped-simplex projection per home server, differentiable by autograd."""
    values = raw.to(_WORK)
    tau, _, exact = support_threshold(values, st.bandwidth_capacity, st.user_server, st.user_alive)
    if not exact:
        tau = group_threshold(values, st.bandwidth_capacity, st.user_layout)
    y = torch.relu(values - _take(tau, st.user_server))
    y = torch.where(st.user_alive, y, torch.zeros_like(values))
    margin = _margin(raw.dtype, st)
    fixed = y.detach()
    load = fixed.new_zeros(st.num_servers).index_add(0, st.user_server, fixed)
    return y * _repair_factor(st.user_server, load, st.bandwidth_capacity, margin)
