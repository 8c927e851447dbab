r"""Smoothed dual ascent: a fast approximate solver of the compute problem through its prices.

The compute problem

.. math::  \max_{x \ge 0} \sum_u w_u f(X_u; m_u) \quad \text{s.t.} \quad
    \sum_{p \text{ at } s} x_p \le C_s, \qquad \sum_{p \text{ over } l} d_p x_p \le L_l

has one price per server (:math:`\lambda_s`) and per link (:math:`\mu_l`), whatever the number of
users. Given prices, pair :math:`p = (u, s)` costs :math:`\pi_p = \lambda_s + d_p \mu_{l(p)}` per
unit and each user's best response is closed form: it buys at its cheapest pair
:math:`\pi_u = \min_p \pi_p`, and since :math:`f` is linear below the minimum it either buys
nothing or at least :math:`m_u`:

.. math::  h^{keep}_u(\pi) = \max_{X \ge m_u} w_u f(X; m_u) - \pi X, \qquad
    h^{drop}_u = -k w_u, \qquad h_u = \max(h^{keep}_u, h^{drop}_u),

with :math:`X = m_u \max(1, (w_u / (m_u \pi))^{1/\alpha})` in the keep branch. The dual
:math:`D(\lambda, \mu) = \sum_u h_u(\pi_u) + \lambda^\top C + \mu^\top L` is convex, and its
minimum equals the optimum (strong duality). Both maxima make it non-smooth exactly where the
optimum sits (users at their minimum, users indifferent between servers), so the response to
even the exact optimal prices is a poor allocation. Here both are smoothed, each in the user's
own units:

.. math::  \pi_u = -t_u \ln \sum_p e^{-\pi_p / t_u},\ t_u = \tau \min(w_u / m_u, \pi^0_u);
    \qquad h_u = T_u \ln\big(e^{h^{keep}_u / T_u} + e^{h^{drop}_u / T_u}\big),\ T_u = \tau w_u,

with :math:`\pi^0_u` the user's cheapest starting price (a user far above its minimum pays far
less than :math:`w_u/m_u`; a temperature above its price would push the soft-min below zero).
Both smoothings only raise each :math:`h_u`, so the smoothed dual still bounds the optimum from
above (while every user's cheapest price is above its floor of :math:`10^{-12} w_u/m_u`). Its
gradient is the soft response :math:`x_p = \sigma_u X_u s_p` (:math:`s_p` the soft-min
weights, :math:`\sigma_u` the keep probability):
:math:`\partial D / \partial \lambda_s = C_s - \sum_{p \text{ at } s} x_p`,
:math:`\partial D / \partial \mu_l = L_l - \sum_{p \text{ over } l} d_p x_p`.

A projected L-BFGS (compiled, :mod:`gnnalloc.families.edge.solvers._dual_kernel`) minimises it over
:math:`\lambda, \mu \ge 0` from the per-server water-filling prices (server prices in units of
their start, link prices in units of their servers' per unit of data rate, as prices of
different servers can differ by orders of magnitude). The response is then made feasible in
two ways, and the better allocation kept: by the fast (Euclidean) projection, and by keeping
only its migrations, shrunk to capacity (:func:`~gnnalloc.families.edge.problem.fit_compute_to_capacity`).
The projection shaves every pair of an overloaded server, which at high penalties pushes users
just below their minimum at the penalty's slope; the second way leaves the home split whole to
the refill. In both, the home split is then re-solved exactly
(:func:`~gnnalloc.families.edge.solvers.functional.refill_home_compute`) and, optionally, the migration search
(:func:`~gnnalloc.families.edge.solvers.improve_migrations`) completes users left short. Access bandwidth
separates per home server and is water-filled exactly.

Any prices give a Lagrangian upper bound :math:`\bar g` on the optimum
(:func:`~gnnalloc.families.edge.solvers.lagrangian_bound`), so every answer carries the proven
per-weight gap :math:`(\bar g - \text{objective}) / \sum_u w_u`. With ``gap_tol`` or
``time_limit`` the solve is anytime: warm L-BFGS chunks, each followed by a checkpoint (recovery
and bound, the best of each kept), and the temperature annealed whenever a chunk stops shrinking
the gap, because a smoothed dual's minimiser is only :math:`O(\tau)` from the true dual's, which
at high penalties (a steep drop value :math:`-k w_u`) leaves a large gap at any one temperature.
A learned prediction on an instance with few users per server first has its link prices replaced
by those that clear the links at its server prices (``clear_start_links``, a bisection of all links
at once: L-BFGS crosses the jumps of a link's load slowly where each migration is a sizeable
share of it). From a given start below the default temperature, the first chunk is
preceded by a warm-up at three times the temperature, at most the default (continuation: the
smoother dual takes fewer iterations, and its minimiser is close to the colder one's); where
that smoothing puts a user's soft-min price at its floor at the start, at 1.5 times the
temperature (at most the default), and none where that does too; with many users per server it
runs on a sample of them, capacities scaled (whose dual has a minimiser close
to the whole one's, at a fraction of the cost per iteration). As the minimiser moves about
linearly in :math:`\tau`, a checkpoint with prices from a warmer temperature (the warm-up's, or
where the solve annealed) also takes the bound at their extrapolation to :math:`\tau = 0`,
usually much closer to the true dual's minimiser; and its recovery completes the response's
migrations (refilled, then searched) before its projection, each against the bound sharpened as
far as it needs.

This is classical dual decomposition for network utility maximisation, not a learned method:
the evaluation reports it beside the exact solver as the strongest non-learned reference.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from gnnalloc.families.edge.generators import random_instance
from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.edge.problem import Allocation
from gnnalloc.core import (
    InputError, SolverError, as_nonnegative_vector, check_count, check_nonnegative, check_positive, check_time_limit,
)
from gnnalloc.families.edge.problem import fit_compute_to_capacity, fit_to_capacity
from gnnalloc.families.edge.problem import Instance
from gnnalloc.families.edge.problem import ProblemTensors, sample_user_indices
from gnnalloc.core import resource_utility
from gnnalloc.families.edge.projection import FastProjection
from gnnalloc.families.edge.solvers._bound import bandwidth_part
from gnnalloc.families.edge.solvers._dual_kernel import (
    clear_links, evaluate_dual, lagrangian_compute_part, minimise_dual, minimise_dual_without_raising, scaled_residual,
)
from gnnalloc.families.edge.solvers._migration_search import improve_migrations
from gnnalloc.families.edge.solvers.functional import (
    bandwidth_waterfill, refill_home_compute, waterfill_prices, waterfill_prices_from,
)

__all__ = [
    "DEFAULT_TEMPERATURE", "DualResult", "MAX_ITERATIONS", "MIN_ITERATIONS", "MIN_TEMPERATURE", "check_temperature",
    "default_iterations",
    "load_dual_kernels", "smoothed_dual", "solve_dual",
]

#: :func:`solve_dual`'s default smoothing temperature (relative to each user's price unit).
DEFAULT_TEMPERATURE = 0.03

#: The lowest smoothing temperature :func:`solve_dual` takes. Its bound stages run at a tenth of
#: the temperature, and each user's soft-min scale is the temperature times its price unit; at
#: 1e-308 that product underflowed to 0 and the evaluation divided by it.
MIN_TEMPERATURE = 1e-6

#: L-BFGS iterations of :func:`solve_dual` at least: on large instances, where many users set
#: each price, a few hundred are near-exact after the search and fewer are clearly not
#: (gap against iterations: ``benchmarks/bench_dual.py``).
MIN_ITERATIONS = 300

#: ... and at most: small instances need more (fewer users set each price), and they are
#: cheap, as an iteration costs one pass over the pairs (``benchmarks/RESULTS.md``).
MAX_ITERATIONS = 3000

#: Pair visits the default spends: 300 iterations at 5,000 pairs, 2,700 at 550.
_PAIR_VISIT_BUDGET = 1_500_000


def check_temperature(name: str, value: object) -> None:
    """Raise :class:`~gnnalloc.core.InputError` naming ``name`` unless ``value`` is a finite
    smoothing temperature of at least :data:`MIN_TEMPERATURE`: the one check of every
    temperature a solve, a smoothed dual, a price model or its training takes."""
    check_positive(name, value)
    if value < MIN_TEMPERATURE:  # type: ignore[operator]  # a real number, checked above
        raise InputError(f"{name}: must be at least {MIN_TEMPERATURE:g}, got {value!r}")


def default_iterations(num_pairs: int) -> int:
    """Iterations :func:`solve_dual` runs by default on ``num_pairs`` pairs: a fixed budget of
    pair visits (about the work of 300 iterations at 816 EUA users), within
    [:data:`MIN_ITERATIONS`, :data:`MAX_ITERATIONS`]."""
    check_count("num_pairs", num_pairs)
    return int(min(MAX_ITERATIONS, max(MIN_ITERATIONS, -(-_PAIR_VISIT_BUDGET // max(num_pairs, 1)))))


#: Curvature pairs the projected L-BFGS keeps: with 557 prices (EUA) a pair costs far less than
#: an evaluation, and 40 reach a lower dual in 300 iterations than L-BFGS-B's default of 10.
_MEMORY = 40


def _host(t: Tensor) -> np.ndarray:
    """A CPU float64 copy of ``t`` for the compiled kernels."""
    return np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy())


def _host_index(t: Tensor) -> np.ndarray:
    """A CPU int64 copy of the index tensor ``t`` for the compiled kernels."""
    return np.ascontiguousarray(t.detach().to("cpu", torch.int64).numpy())


@dataclass(frozen=True)
class DualResult:
    r"""An allocation from :func:`solve_dual` with the prices that produced it.

    Args:
        allocation: the feasible allocation.
        server_price, link_price: the final prices :math:`\lambda`, :math:`\mu`.
        dual_value: the smoothed dual at those prices.
        iterations: L-BFGS iterations run.
        seconds: wall time of the whole solve, the bound included.
        upper_bound: the lowest :func:`~gnnalloc.families.edge.solvers.lagrangian_bound` found:
            at the final prices and at the prices further iterations at a tenth of the
            temperature reach from them (``bound_iterations``; anytime, at every checkpoint's,
            stopped once they prove ``gap_tol``, and also at the checkpoint's prices extrapolated
            to zero temperature from warmer ones, see :class:`_SharpBound`). No allocation does
            better, so ``(upper_bound -
            objective) / sum(weight)`` bounds this result's mean per-user gap without solving the
            conic program.
        objective: the allocation's :math:`\sum_u U_u`.
        gap_bound: the proven per-weight gap ``(upper_bound - objective) / sum(weight)``
            (at least 0).
        temperature: the smoothing temperature of the final prices.
        stop: why the solve stopped: ``"single pass"`` (no ``gap_tol`` or ``time_limit``),
            ``"gap_tol"``, ``"time_limit"`` or ``"stalled"``.
        status: one line for users: the proven gap against ``gap_tol``, and the certified
            method to use when the solve stopped above it (``"ok"`` for a single pass).
        checkpoints: anytime solves: ``(seconds, proven gap)`` after each chunk.
    """

    allocation: Allocation
    server_price: np.ndarray
    link_price: np.ndarray
    dual_value: float
    iterations: int
    seconds: float
    upper_bound: float
    objective: float = math.nan
    gap_bound: float = math.nan
    temperature: float = math.nan
    stop: str = "single pass"
    status: str = "ok"
    checkpoints: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class _UserConstants:
    r"""The smoothed dual's per-user constants at one temperature (module docstring), shared by
    the torch reference and the compiled kernels so that both read one definition.

    Args:
        scale: the soft-min temperature :math:`t_u`, ``(U,)``.
        price_floor: the smallest price a user's soft-min may reach, ``(U,)``.
        drop: :math:`h^{drop}_u = -k w_u`, ``(U,)``.
        smooth: the keep-or-drop temperature :math:`T_u = \tau w_u`, ``(U,)``.
        supply: capacities, servers then links, ``(S + L,)``.
        log_utility: every user has :math:`\alpha = 1` (closed-form log fast path).
    """

    scale: Tensor
    price_floor: Tensor
    drop: Tensor
    smooth: Tensor
    supply: Tensor
    log_utility: bool

    @classmethod
    def of(cls, problem: ProblemTensors, temperature: float, reference_price: Tensor) -> "_UserConstants":
        weight, minimum = problem.weight, problem.compute_min
        # t_u: the soft-min's temperature in user u's price units, the smaller of its value per
        # unit at the minimum and its reference price (a user far above its minimum pays far
        # less than w/m, and a temperature above its price would push the soft-min below 0).
        unit = torch.minimum(weight / minimum, reference_price).clamp(min=1e-12 * weight / minimum)
        return cls(
            scale=temperature * unit,
            # A zero price would make w / price infinite: prices count from 1e-12 of each w/m.
            price_floor=1e-12 * weight / minimum,
            drop=-problem.penalty * weight,
            smooth=temperature * weight,
            supply=torch.cat([problem.server_compute, problem.link_capacity]),
            log_utility=bool((problem.alpha == 1.0).all()),
        )


class _SmoothedDual:
    """The smoothed dual of one problem in torch (any device, differentiable): the reference the
    compiled kernels are tested against, and :func:`smoothed_dual`'s implementation."""

    def __init__(self, problem: ProblemTensors, constants: _UserConstants) -> None:
        self.problem = problem
        self.constants = constants
        num_servers, num_links = problem.num_servers, problem.num_links
        pair_user = problem.pair_user
        self.pair_inverse_scale = 1.0 / constants.scale.index_select(0, pair_user)
        # Home pairs read a zero link price from one extra slot, so no pair needs masking.
        link_slot = torch.where(problem.pair_link >= 0, problem.pair_link, num_links)
        self.price_index = torch.cat([problem.pair_server, num_servers + link_slot])
        self.price_weight = torch.stack([torch.ones_like(problem.pair_link_weight), problem.pair_link_weight])
        # Instances keep each user's pairs contiguous: a segment max is then cheaper than a
        # scatter max (hand-built problems fall back to the scatter).
        self.pair_count = torch.bincount(pair_user, minlength=problem.num_users)
        self.contiguous = bool((pair_user[1:] >= pair_user[:-1]).all())
        self.has_pair = torch.zeros(problem.num_users, dtype=torch.bool, device=problem.device)
        self.has_pair[pair_user] = True

    def _user_max(self, values: Tensor) -> Tensor:
        """Per user, the largest of its pairs' ``values`` (0 for users without pairs)."""
        if self.contiguous:
            peak = torch.segment_reduce(values, "max", lengths=self.pair_count, unsafe=True)
            return torch.where(self.has_pair, peak, 0.0)
        return values.new_zeros(self.problem.num_users).scatter_reduce_(
            0, self.problem.pair_user, values, "amax", include_self=False
        )

    def __call__(self, prices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Dual value, its gradient ``(S + L,)`` and the soft response ``(P,)`` at ``prices``
        (server prices, then link prices)."""
        problem, c = self.problem, self.constants
        pair_user, num_users = problem.pair_user, problem.num_users
        weight, minimum = problem.weight, problem.compute_min
        padded = torch.cat([prices, prices.new_zeros(1)])
        cost = (padded.index_select(0, self.price_index).view(2, -1) * self.price_weight).sum(0)

        logit = -cost * self.pair_inverse_scale
        peak = self._user_max(logit)
        exp = (logit - peak.index_select(0, pair_user)).exp()
        total = logit.new_zeros(num_users).index_add_(0, pair_user, exp)
        choice = exp / total.index_select(0, pair_user)
        # Users without pairs get total 0 (a price of +inf) and are dropped below.
        price = -c.scale * (peak + torch.log(total.clamp(min=torch.finfo(total.dtype).tiny)))
        price = price.clamp(min=c.price_floor)

        ratio = torch.clamp(weight / (minimum * price), min=1.0)
        if c.log_utility:
            utility = torch.log(ratio)
        else:
            ratio = ratio.pow(1.0 / problem.alpha)
            utility = resource_utility(ratio, 1.0, 1.0, problem.alpha)
        amount = minimum * ratio
        keep = weight * utility - price * amount
        high = torch.maximum(keep, c.drop)
        log_sum = torch.logaddexp((keep - high) / c.smooth, (c.drop - high) / c.smooth)
        value_u = torch.where(self.has_pair, high + c.smooth * log_sum, c.drop)
        keep_prob = torch.where(self.has_pair, torch.exp((keep - high) / c.smooth - log_sum), 0.0)
        compute = (keep_prob * amount).index_select(0, pair_user) * choice

        load = prices.new_zeros(prices.shape[0] + 1).index_add_(
            0, self.price_index, (self.price_weight * compute).reshape(-1)
        )
        gradient = c.supply - load[:-1]
        value = value_u.sum() + prices @ c.supply
        return value, gradient, compute


def smoothed_dual(
    server_price: Tensor,
    link_price: Tensor,
    problem: ProblemTensors,
    temperature: float,
    reference_price: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The smoothed dual :math:`D(\lambda, \mu)` and its response :math:`x` (module docstring).

    Args:
        server_price: :math:`\lambda \ge 0`, ``(S,)``.
        link_price: :math:`\mu \ge 0`, ``(L,)``.
        problem: the instances (one or a collated batch; prices are then per collated entity).
        temperature: :math:`\tau > 0`.
        reference_price: :math:`\pi^0_u` per user ``(U,)``; default: each user's cheapest
            server price in ``server_price``.

    Returns:
        ``value`` (a scalar, at least the compute objective of any feasible allocation) and
        ``compute`` ``(P,)``, the soft response, whose loads give the gradient:
        :math:`C - \text{server load}`, :math:`L - \text{link load}`.
    """
    check_temperature("temperature", temperature)
    sizes = {"server_price": problem.num_servers, "link_price": problem.num_links}
    if reference_price is not None:
        sizes["reference_price"] = problem.num_users
    given = {"server_price": server_price, "link_price": link_price, "reference_price": reference_price}
    for name, size in sizes.items():
        value = given[name]
        if not isinstance(value, Tensor) or tuple(value.shape) != (size,):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(f"{name}: expected shape ({size},), got {shape}")
        if value.numel() and not bool((torch.isfinite(value) & (value >= 0)).all()):
            raise InputError(f"{name}: every entry must be finite and >= 0")
    if reference_price is None:
        reference_price = _reference_price(problem, server_price)
    dual = _SmoothedDual(problem, _UserConstants.of(problem, float(temperature), reference_price))
    value, _, compute = dual(torch.cat([server_price, link_price]))
    return value, compute


def _reference_price(problem: ProblemTensors, server_price: Tensor) -> Tensor:
    """Each user's cheapest server price (``inf`` without pairs), ``(U,)``: the unit its
    soft-min is tempered in."""
    return server_price.new_full((problem.num_users,), torch.inf).scatter_reduce_(
        0, problem.pair_user, server_price.index_select(0, problem.pair_server), "amin"
    )


def _price_scale(problem: ProblemTensors, server_start: Tensor) -> Tensor:
    """Units of the prices L-BFGS works in: server prices relative to their starting value
    (prices of different servers can differ by many orders of magnitude), link prices relative
    to the larger of their two servers' per unit of the link's mean data rate."""
    positive = server_start > 0
    fallback = server_start.max() if bool(positive.any()) else server_start.new_tensor(1.0)
    server = torch.where(positive, server_start, fallback)
    migrated = problem.pair_link >= 0
    link = problem.pair_link[migrated]
    rate_sum = server.new_zeros(problem.num_links).index_add_(0, link, problem.pair_link_weight[migrated])
    count = server.new_zeros(problem.num_links).index_add_(0, link, torch.ones_like(rate_sum[link]))
    mean_rate = torch.where(rate_sum > 0, rate_sum / count.clamp(min=1.0), 1.0)
    home = problem.user_server[problem.pair_user[migrated]]
    pair_ends = torch.maximum(server[home], server[problem.pair_server[migrated]])
    ends = server.new_zeros(problem.num_links).scatter_reduce_(0, link, pair_ends, "amax")
    ends = torch.where(ends > 0, ends, fallback)  # links no pair can use: any positive unit
    return torch.cat([server, ends / mean_rate])


class _CompiledDual:
    """The same smoothed dual as :class:`_SmoothedDual` (from the same :class:`_UserConstants`)
    on CPU arrays, evaluated and minimised by the compiled kernels of
    :mod:`gnnalloc.families.edge.solvers._dual_kernel`. Pairs are regrouped by user when needed."""

    def __init__(self, problem: ProblemTensors, constants: _UserConstants) -> None:
        pair_user = _host_index(problem.pair_user)
        # The kernel walks each user's pairs as one run; hand-built problems may interleave them.
        grouped = bool(np.all(pair_user[1:] >= pair_user[:-1]))
        self.order = None if grouped else np.argsort(pair_user, kind="stable")
        regroup = (lambda a: a) if self.order is None else (lambda a: np.ascontiguousarray(a[self.order]))
        counts = np.bincount(pair_user, minlength=problem.num_users)
        self.num_pairs = pair_user.shape[0]
        # Home pairs read their link price from one extra slot that always holds 0.
        num_servers, num_links = problem.num_servers, problem.num_links
        pair_link = _host_index(problem.pair_link)
        pair_slot = np.where(pair_link >= 0, num_servers + pair_link, num_servers + num_links)
        self.pairs = (
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            regroup(_host_index(problem.pair_server)),
            regroup(pair_slot),
            regroup(_host(problem.pair_link_weight)),
        )
        self.users = (
            _host(problem.weight), _host(problem.compute_min), _host(constants.scale),
            _host(constants.price_floor), _host(constants.drop), _host(constants.smooth),
            _host(problem.alpha), constants.log_utility,
        )
        self.supply = _host(constants.supply)
        #: The share of the problem's users this dual is over, and which (:meth:`subsample`;
        #: ``None``: all).
        self.share = 1.0
        self.kept_users: np.ndarray | None = None

    def subsample(self, fraction: float, seed: int = 0) -> _CompiledDual:
        """This dual over a uniform random ``fraction`` (in (0, 1]) of the users, drawn with
        ``seed``, at least one, every capacity scaled by the share kept. With many users per
        server it is close to the whole dual scaled by that share: its minimiser is close to the
        whole dual's, at that share of the cost per evaluation (its value, gradient and KKT
        residual are in the share's units). For minimising only: its response is the sample's,
        in its own pair order. The users are :func:`~gnnalloc.families.edge.problem.sample_user_indices`'
        draw, as :func:`~gnnalloc.families.edge.problem.sample_users` takes them; this one samples
        the compiled arrays instead of building an instance (a sampled instance would have to be
        compiled again)."""
        if not 0.0 < fraction <= 1.0:
            raise InputError(f"fraction: expected a share in (0, 1], got {fraction!r}")
        user_start, pair_server, pair_slot, pair_link_weight = self.pairs
        num_users = user_start.shape[0] - 1
        kept = sample_user_indices(num_users, max(1, round(fraction * num_users)), seed)
        chosen = np.zeros(num_users, dtype=bool)
        chosen[kept] = True
        counts = np.diff(user_start)
        pairs = np.flatnonzero(np.repeat(chosen, counts))  # the kept users' pairs, still grouped
        share = kept.shape[0] / num_users
        sample = object.__new__(_CompiledDual)
        sample.order = None
        sample.num_pairs = pairs.shape[0]
        sample.pairs = (np.concatenate([[0], np.cumsum(counts[kept])]).astype(np.int64),
                        pair_server[pairs], pair_slot[pairs], pair_link_weight[pairs])
        sample.users = (*(a[kept] for a in self.users[:-1]), self.users[-1])  # the last: log_utility
        sample.supply = self.supply * share
        sample.share = self.share * share
        sample.kept_users = kept if self.kept_users is None else self.kept_users[kept]
        return sample

    def _evaluated(self, prices: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, int]:
        """One kernel evaluation: dual value, gradient, soft response ``(P,)`` in the problem's
        pair order, the Hessian diagonal, and how many users' soft-min prices are at their floor."""
        gradient = np.empty(self.supply.shape[0] + 1)
        compute = np.empty(self.num_pairs)
        curvature = np.empty_like(gradient)
        value, floored_users = evaluate_dual(
            np.append(np.asarray(prices, dtype=np.float64), 0.0), self.supply, *self.pairs,
            *self.users, gradient, compute, np.empty(self.num_pairs), curvature,
        )
        if self.order is not None:
            compute[self.order] = compute.copy()
        return float(value), gradient[:-1], compute, curvature[:-1], int(floored_users)

    def evaluate(self, prices: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Dual value, gradient and soft response ``(P,)`` in the problem's pair order."""
        value, gradient, compute, _, _ = self._evaluated(prices)
        return value, gradient, compute

    def curvature(self, prices: np.ndarray) -> np.ndarray:
        """The Hessian diagonal at ``prices`` (what the minimiser scales its steps by)."""
        return self._evaluated(prices)[3]

    def floored_users(self, prices: np.ndarray) -> int:
        """How many users' soft-min prices are at their floor at ``prices`` (where the smoothed
        dual is flat in their pair costs); one evaluation: why a warm-up stopped at its start,
        and for tests and diagnostics (the minimiser counts them itself)."""
        return self._evaluated(prices)[4]

    def clear_links(
        self, prices: np.ndarray, scale: np.ndarray, num_servers: int, steps: int, tolerance: float,
    ) -> tuple[np.ndarray, float]:
        """``prices`` with the link prices replaced by those at which each link's market clears
        at the server prices, except links already clear to ``tolerance`` (a share of their
        capacity) (:func:`~gnnalloc.families.edge.solvers._dual_kernel.clear_links`: ``steps + 1``
        evaluations of the dual), and the dual's value at ``prices``."""
        cleared, value = clear_links(
            np.ascontiguousarray(prices, dtype=np.float64), np.ascontiguousarray(scale, dtype=np.float64),
            num_servers, steps, float(tolerance), self.supply, *self.pairs, *self.users,
        )
        return cleared, float(value)

    def residual(self, prices: np.ndarray, scale: np.ndarray) -> float:
        """The KKT residual at ``prices`` (:func:`kkt_residual`, price scale ``scale``)."""
        return kkt_residual(prices, self.evaluate(prices)[1], scale)

    def minimise(
        self, start: np.ndarray, scale: np.ndarray, iterations: int, tolerance: float = 0.0,
        memory: _CurvatureMemory | None = None, max_evaluations: int = 0, stop_at_floored_start: bool = False,
    ) -> tuple[np.ndarray, float, int, float]:
        """Projected L-BFGS on the prices ``scale * z`` from ``start``, for ``iterations`` or
        until the KKT residual is at most ``tolerance`` (or ``max_evaluations`` evaluations of
        the dual have run, if positive): final prices, dual value, iterations run and the
        residual there (:func:`kkt_residual`). ``memory``: the curvature pairs of the run that
        stopped at ``start``, which this one continues (and updates); ``None`` starts afresh.
        ``stop_at_floored_start``: run no iteration if some user's soft-min price is at its floor
        at ``start`` (:meth:`floored_users`), where L-BFGS's first line search can fail every
        step."""
        start = np.ascontiguousarray(start, dtype=np.float64)
        scale = np.ascontiguousarray(scale, dtype=np.float64)
        if iterations == 0 or start.size == 0:  # nothing to optimise (e.g. no servers)
            value, gradient, _ = self.evaluate(start)
            return start, value, 0, kkt_residual(start, gradient, scale)
        if memory is None:
            memory = _CurvatureMemory(start.size)
        elif memory.steps.shape != (_MEMORY, start.size):  # the kernel does not bound-check
            raise InputError(f"memory: kept for {memory.steps.shape[1]} prices, not {start.size}")
        arguments = (start, scale, iterations, float(tolerance), int(max_evaluations), bool(stop_at_floored_start))
        data = (self.supply, *self.pairs, *self.users)
        arrays = (memory.steps, memory.changes, memory.inverse_curvatures, memory.ring)
        # What a rerun would restore: a memory with no pairs stored is its ring alone (the kernel
        # reads no pair it has not written), so only a continued run copies the pairs.
        kept = tuple(array.copy() for array in arrays) if memory.ring[0] > 0 else (memory.ring.copy(),)
        try:
            prices, value, done, _, residual = minimise_dual(*arguments, *arrays, *data)
        except ZeroDivisionError:
            # The minimiser keeps numba's error model for its numerics (_dual_kernel): run it
            # again, from the memory it started with, compiled under numpy's.
            for array, before in zip(arrays[-len(kept):], kept):
                array[...] = before
            prices, value, done, _, residual = minimise_dual_without_raising()(*arguments, *arrays, *data)
        return prices, float(value), int(done), float(residual)


class _CurvatureMemory:
    """L-BFGS's memory between runs of :meth:`_CompiledDual.minimise` on ``size`` prices: the
    newest :data:`_MEMORY` steps :math:`s`, gradient changes :math:`y` and :math:`1 / s^\\top y`,
    and how many are stored and which is the newest."""

    def __init__(self, size: int) -> None:
        self.steps = np.zeros((_MEMORY, size))
        self.changes = np.zeros((_MEMORY, size))
        self.inverse_curvatures = np.zeros(_MEMORY)
        self.ring = np.array([0, -1], dtype=np.int64)


def kkt_residual(prices: np.ndarray, gradient: np.ndarray, scale: np.ndarray) -> float:
    r"""How far ``prices`` are from a KKT point of the smoothed dual, in units of the objective:

    .. math::  \rho = \sum_i p_i\,|g_i| + c_i \max(-g_i, 0),

    with :math:`g = \nabla D` (each capacity's supply minus the soft response's use of it) and
    :math:`c` the price scale: the complementary slackness, plus every overload priced at its
    capacity's unit price. It is 0 exactly at the smoothed dual's minimiser; divided by the
    total weight it is comparable with the per-weight gap (``solve_dual``'s anytime checkpoints
    wait for it). It is the compiled minimiser's stopping sum on its scaled variables
    :math:`z = p / c` and :math:`c \odot g`, computed by the same kernel."""
    prices, gradient, scale = (np.asarray(a, dtype=np.float64) for a in (prices, gradient, scale))
    return float(scaled_residual(prices / scale, gradient * scale))


def _start_prices(start: object, num_servers: int, num_links: int) -> np.ndarray:
    """``solve_dual``'s ``start`` as one float64 array (server prices, then link prices),
    checked by name."""
    if not isinstance(start, (tuple, list)) or len(start) != 2:
        raise InputError("start: expected a pair (server_price, link_price)")
    return np.ascontiguousarray(np.concatenate([
        _prices_of("start.server_price", start[0], num_servers), _prices_of("start.link_price", start[1], num_links),
    ]))


def _prices_of(name: str, value: object, size: int) -> np.ndarray:
    """``value`` as a float64 host array of ``size`` finite non-negative prices, checked by
    ``name`` (:func:`~gnnalloc.core.as_nonnegative_vector`)."""
    return as_nonnegative_vector(name, value, size, "prices").detach().to("cpu", torch.float64).numpy()


#: Anytime solving divides the smoothing temperature by this at each checkpoint (warm restart
#: from the previous prices) ...
_ANNEAL_FACTOR = 3.0

#: ... down to the starting temperature times this: below it the response gains nothing
#: measurable while L-BFGS needs more iterations per unit of progress.
_ANNEAL_FLOOR = 0.01

#: A checkpoint that shrinks the proven gap by less than this fraction of the previous one moves
#: on to the next temperature.
_ANNEAL_PROGRESS = 0.1

#: At the floor, two slow checkpoints in a row (as for annealing) stop an anytime solve as
#: stalled, and so does one where L-BFGS converged and the gap shrank by less than this fraction.
_STALL_PROGRESS = 0.01

#: With a positive ``gap_tol``, a chunk of L-BFGS iterations ends early once the per-weight KKT
#: residual (:func:`kkt_residual`) is at most this times ``gap_tol``: a primal recovery from
#: prices much further from the smoothed minimiser wastes a checkpoint ...
_CHECKPOINT_RESIDUAL = 4.0

#: ... and after a checkpoint that does not anneal, the next waits for the lower of that aim and
#: the residual reached, divided by this.
_AIM_SHRINK = 3.0

#: A checkpoint whose per-weight KKT residual is at most this times ``gap_tol`` has converged at
#: its temperature: if its gap is above ``gap_tol``, the smoothing is what is left, so it anneals
#: (or, at the floor, counts as slow) without a second checkpoint at that temperature.
_CONVERGED_RESIDUAL = 0.2

#: Chunks that end with the residual above their aim are followed, without a checkpoint, by
#: at most this many more in a row (with a time limit, only while it leaves room:
#: :func:`_room_to_skip`).
_MAX_SKIPS = 6

#: With a positive ``gap_tol``, an anytime solve from a given start first minimises the smoothed
#: dual at this times its temperature, but never above :data:`DEFAULT_TEMPERATURE` (none at or
#: above it), (continuation: L-BFGS crosses the smoother dual in fewer iterations, and its
#: minimiser is a closer start for the temperature's own; measured, warming up from the default
#: 0.03 at 0.09 cost more than it saved at penalties 25-30) ...
_WARM_UP_FACTOR = 3.0

#: ... or, where some user's soft-min price is at its floor at the start at that temperature (so
#: that the warm-up cannot start, :meth:`_CompiledDual.minimise`'s ``stop_at_floored_start``),
#: at this times it: the soft-min lies at most the temperature times ``ln(pairs)`` below the
#: cheapest pair, so a lower one floors fewer users (measured on lightly loaded instances at
#: alpha 2, where predicted prices lie far below the water-filling ones: ``benchmarks/RESULTS.md``).
_FLOORED_WARM_UP_FACTOR = 1.5

#: ... until the per-weight KKT residual there is at most this times ``gap_tol`` (or
#: :data:`_WARM_UP_CHUNKS` first chunks of iterations ran), then goes on at its temperature from
#: those prices, no checkpoint in between.
_WARM_UP_RESIDUAL = 10.0

#: ... for at most this many times the first chunk's iterations: from a learned start the
#: warmer dual's minimiser takes more than one chunk to approach, and what the warm-up leaves,
#: the colder chunks make up at a higher cost per unit of progress (``benchmarks/RESULTS.md``) ...
_WARM_UP_CHUNKS = 1.5

#: ... on a uniform sample of this many users per server (on average), capacities scaled to
#: match, where the instance has at least twice as many: with that many users per server the
#: sample's smoothed dual has a minimiser close to the whole one's, at a fraction of the cost per
#: iteration (measured: 0.86x `gnn`'s time at 20,000 users; no gain at 5,000 from sampling 20
#: per server, 1.07x from 10).
_WARM_UP_USERS_PER_SERVER = 40

#: ... and for at most this many evaluations of the dual per iteration it is allowed: where
#: the warmer dual's L-BFGS steps keep overshooting (its line search halving them several times
#: per iteration, measured on lightly loaded instances at alpha 2), the warm-up costs more than
#: it saves, and the solve goes on at its own temperature.
_WARM_UP_EVALUATIONS = 1.5

#: With ``clear_start_links``, a given start's link prices are replaced by those that clear
#: every link at its server prices (:meth:`_CompiledDual.clear_links`) on instances with at most
#: this many users per server on average. There a migrating user's demand is a sizeable share of
#: a link's capacity, so a link's load jumps with its price and L-BFGS on the smoothed dual
#: crosses those jumps slowly; clearing saves iterations from a learned start. With more users
#: per server a link's load is smooth in its price, L-BFGS moves the predicted link prices well,
#: and clearing them against the (inexact) predicted server prices only puts them where the
#: servers' errors push them, which costs iterations (``benchmarks/RESULTS.md``,
#: ``bench_link_clearing.py``).
_CLEARING_MAX_USERS_PER_SERVER = 12

#: ... by this many bisection steps, one evaluation of the dual each (and one before them): 12
#: halvings of the kernel's bracket (:data:`~gnnalloc.families.edge.solvers._dual_kernel._CLEARING_BRACKET`)
#: leave each link's price within 0.3 % of its clearing price at the other links' trial prices.
_CLEARING_STEPS = 12

#: ... except links whose load at the start is within this share of their capacity (or, at
#: price 0, at most this share above it): already clear, they keep their price (as a converged
#: solve's links usually are).
_CLEARING_TOLERANCE = 1e-3

#: The status of an anytime solve that stopped above ``gap_tol``: the certified alternative.
_USE_EXACT = "method exact certifies the optimum"


@dataclass(frozen=True)
class _Setup:
    """Everything a solve computes once from the instance, before any prices."""

    instance: Instance
    problem: ProblemTensors
    reference: Tensor
    scale: np.ndarray
    bandwidth: Tensor
    bandwidth_price: Tensor
    total_weight: float
    search_rounds: int
    _duals: dict[float, _CompiledDual] = field(default_factory=dict, repr=False, compare=False)
    # One projection per solve: it caches the problem's structure across checkpoints.
    _projection: FastProjection = field(default_factory=FastProjection, repr=False, compare=False)

    def dual(self, temperature: float) -> _CompiledDual:
        """The compiled smoothed dual at ``temperature`` (the same units whatever it is), built
        once per temperature: checking a given start and the solve from it share one."""
        if temperature not in self._duals:
            self._duals[temperature] = _CompiledDual(
                self.problem, _UserConstants.of(self.problem, temperature, self.reference)
            )
        return self._duals[temperature]

    def recover(
        self, dual: _CompiledDual, prices: np.ndarray, certifies: Callable[[float], bool] | None = None,
    ) -> tuple[Allocation, float]:
        """The primal recovery from ``prices``: the better of two completions of the soft
        response, each followed by the exact home refill, the migration search and the capacity
        fit: its Euclidean projection onto the feasible set, and its migrations alone shrunk to
        capacity (:meth:`_migrations_fitted`). Neither is better everywhere; the allocation with
        the higher objective is returned, with that objective.

        With ``certifies`` (whether an objective is proven within the solve's ``gap_tol``: an
        anytime checkpoint's :meth:`_SharpBound.certifies`, which sharpens the bound as far as
        each question needs), the recovery ends at the first allocation it certifies, cheapest
        first: the shrunk migrations refilled at home, then searched, and only then the
        projection's completion before and after its search. The projection is most of a recovery's cost, and on the instances measured
        (``benchmarks/RESULTS.md``) the migrations' completion was about as good, so where it
        is not proven the bound is usually what falls short. Where neither is proven, the
        better of the two searched completions is returned."""
        problem = self.problem
        response = dual.evaluate(prices)[2]  # host float64, as the compiled kernel writes it
        self._require_finite(np.isfinite(response).all())
        # Refilled once: both completions of the migrations start from the same compute.
        migrations = refill_home_compute(self._migrations_fitted(response), problem)
        if certifies is None:  # one pass, or a time limit alone: both completions
            projected = self._projected(response)
            migrated = self._searched(migrations, projected[2])
            return migrated if migrated[1] > projected[1] else projected[:2]
        migrated = self._searched(migrations, self.bandwidth, certifies)
        # Asking again sharpens nothing: either this allocation was just certified, or the bound
        # ran every stage on the refilled one's question.
        if certifies(migrated[1]):
            return migrated
        projected = self._projected(response, certifies)
        return migrated if migrated[1] > projected[1] else projected[:2]

    def _require_finite(self, finite: bool) -> None:
        """Raise :class:`~gnnalloc.core.SolverError` unless the recovery's numbers are
        ``finite``: a response ``(w / (m pi))^(1 / alpha)`` beyond float64 (a tiny alpha),
        or a projection or refill of quantities whose products overflow (magnitudes near the
        instance's bounds). The conic solver has neither."""
        if not finite:
            raise SolverError(
                "the smoothed dual's recovery overflows on this instance (alpha "
                f"{self.instance.alpha:g}, or quantities of extreme magnitudes); use method exact"
            )

    def _projected(
        self, response: np.ndarray, certifies: Callable[[float], bool] | None = None,
    ) -> tuple[Allocation, float, Tensor]:
        """The response's Euclidean projection onto the feasible set, refilled at home and
        searched (:meth:`_searched`, with ``certifies``), its objective, and the projection's
        bandwidth."""
        problem = self.problem
        projected, bandwidth = self._projection(
            torch.from_numpy(response).to(device=problem.device, dtype=problem.dtype), self.bandwidth, problem,
        )
        return (*self._searched(refill_home_compute(projected, problem), bandwidth, certifies), bandwidth)

    def _migrations_fitted(self, response: np.ndarray) -> Tensor:
        """The response's migrations alone, shrunk to fit every link and server
        (:func:`~gnnalloc.families.edge.problem.fit_compute_to_capacity`); the home pairs are left to the
        refill. Unlike the Euclidean projection, which shaves every pair of an overloaded server
        (at high penalties pushing many users just below their minimum), it leaves the home split
        to the refill's exact water-filling."""
        problem = self.problem
        # Only the compute is fitted here: the bandwidth is the completions' own.
        migrations = np.where(self.instance.pair_link < 0, 0.0, response)
        fitted = fit_compute_to_capacity(self.instance, migrations)
        return torch.from_numpy(fitted).to(device=problem.device, dtype=problem.dtype)

    def _fitted(self, compute: Tensor, bandwidth: Tensor) -> tuple[Allocation, float]:
        """``(compute, bandwidth)`` fitted to capacity (rounding), with its objective."""
        allocation = fit_to_capacity(self.instance, Allocation(
            compute=compute.to("cpu", torch.float64).numpy(),
            bandwidth=bandwidth.to("cpu", torch.float64).numpy(),
        ))
        return allocation, float(user_utilities(self.instance, allocation).sum())

    def _searched(
        self, compute: Tensor, bandwidth: Tensor, certifies: Callable[[float], bool] | None = None,
    ) -> tuple[Allocation, float]:
        """``compute`` (migrations within capacity, refilled at home) searched and fitted to
        capacity, with its objective; not searched if ``certifies`` the refilled allocation."""
        problem = self.problem
        self._require_finite(bool(torch.isfinite(compute).all()))
        if not self.search_rounds:
            return self._fitted(compute, bandwidth)
        if certifies is not None:
            refilled = self._fitted(compute, bandwidth)
            if certifies(refilled[1]):
                return refilled
        return self._fitted(improve_migrations(compute, problem, self.search_rounds), bandwidth)

    def sharp_bound(
        self, prices: np.ndarray, temperature: float, iterations: int, stages: Sequence[float] = (1.0,),
        ceiling: float = math.inf, warmer: _WarmerPrices | None = None,
    ) -> _SharpBound:
        """The bound at ``prices`` (at most ``ceiling``, a bound already proven; with
        ``warmer``, also at the prices extrapolated to zero temperature), to be sharpened by up
        to ``iterations`` L-BFGS iterations at a tenth of ``temperature`` in ``stages``
        (:class:`_SharpBound`)."""
        return _SharpBound(self, prices, temperature, iterations, stages, ceiling, warmer)

    def gap(self, bound: float, objective: float) -> float:
        """The proven per-weight gap ``(bound - objective) / sum(weight)``, at least 0."""
        return max((bound - objective) / self.total_weight, 0.0) if self.total_weight > 0 else 0.0

    def meets(self, bound: float, objective: float, gap_tol: float | None) -> bool:
        """Whether ``objective`` is proven within ``gap_tol`` by ``bound`` (never without a
        ``gap_tol``): the one test an anytime solve stops on and ends a recovery early on."""
        return gap_tol is not None and self.gap(bound, objective) <= gap_tol

    def bound(self, prices: np.ndarray) -> float:
        """The Lagrangian bound (:func:`~gnnalloc.families.edge.solvers.lagrangian_bound`) at
        ``prices`` (valid at any prices, smoothed or not; the minimiser's, so finite and
        non-negative) and the exact bandwidth prices, whose terms are computed once. The
        compute terms are the compiled kernel's (the same terms as the torch bound's, without
        its per-operation overhead, which a checkpoint paid several times)."""
        num_servers = self.problem.num_servers
        prices = np.asarray(prices, dtype=np.float64)
        server, link = (np.ascontiguousarray(part) for part in (prices[:num_servers], prices[num_servers:]))
        return float(lagrangian_compute_part(server, link, *self._bound_arrays)) + self._bandwidth_terms

    @functools.cached_property
    def _bound_arrays(self) -> tuple[object, ...]:
        return _bound_arrays(self.problem)

    @functools.cached_property
    def _bandwidth_terms(self) -> float:
        """The bound's bandwidth terms at the exact bandwidth prices (they never change)."""
        return float(bandwidth_part(self.problem, self.bandwidth_price))


#: An anytime checkpoint sharpens its bound in stages that end at these shares of
#: ``bound_iterations`` (one L-BFGS run, continued), each only while the allocation asked about
#: is not proven: a solve's last checkpoint often stops before the last stage, the others run
#: every stage.
_BOUND_STAGES = (0.3, 1.0)


@dataclass(frozen=True)
class _WarmerPrices:
    """Prices near the smoothed dual's minimiser at ``ratio`` (> 1) times the temperature of
    the prices a bound starts from: with both, :class:`_SharpBound` extrapolates to zero
    temperature."""

    prices: np.ndarray
    ratio: float


#: :class:`_SharpBound` evaluates the bound at these multiples of the linear extrapolation's
#: step (see :class:`_SharpBound`): where the price path bends (users switching
#: pairs), the whole step can overshoot.
_EXTRAPOLATION_STEPS = (0.5, 1.0)

#: ... and only from prices at least this many times warmer: the step divides their distance by
#: ``ratio - 1``, so near 1 it would amplify whatever is left of their minimisation a hundredfold
#: (the solve's warm-up and each anneal are 3x; the last anneal to the floor may be less).
_MIN_EXTRAPOLATION_RATIO = 1.5


class _SharpBound:
    r"""The Lagrangian bound from some prices, sharpened only as far as needed: the lowest of
    the bounds at the prices and at the points one L-BFGS run at a tenth of ``temperature``
    reaches from them after each stage of ``iterations`` (``stages``: the shares of it at which
    stages end). Those iterations only serve the bound: the response to less smoothed prices
    is a worse allocation, their bound is closer to the optimum. ``ceiling``: a bound already
    proven (an earlier checkpoint's), which :attr:`value` never exceeds.

    With ``warmer`` prices :math:`p_{r\tau}` (near the minimiser at ``ratio`` :math:`r` times the
    temperature), the bound is also taken where the minimiser's path
    :math:`\tau \mapsto p_\tau`, taken as linear through both, meets zero temperature:
    :math:`p_0 = p_\tau + (p_\tau - p_{r\tau}) / (r - 1)` (and half that step; prices clipped
    at 0). The smoothing biases :math:`p_\tau` by about a multiple of :math:`\tau`, so
    :math:`p_0` is closer to the unsmoothed dual's minimiser, where the bound is the optimum
    (measured in ``benchmarks/RESULTS.md``). Any non-negative prices give a valid bound, so the
    lowest of these is one. Sharpening starts from the point of the lowest bound; with ``ratio``
    below :data:`_MIN_EXTRAPOLATION_RATIO`, only the prices count."""

    def __init__(
        self, setup: _Setup, prices: np.ndarray, temperature: float, iterations: int, stages: Sequence[float],
        ceiling: float = math.inf, warmer: _WarmerPrices | None = None,
    ) -> None:
        self._setup, self._temperature = setup, temperature
        ends = sorted({round(share * iterations) for share in stages} - {0})
        self._stages = [end - begin for begin, end in zip([0] + ends[:-1], ends)]
        self._memory: _CurvatureMemory | None = None  # the run's, from its first stage
        candidates = [prices]
        if warmer is not None and warmer.ratio >= _MIN_EXTRAPOLATION_RATIO:
            step = (prices - warmer.prices) / (warmer.ratio - 1.0)
            candidates += [np.maximum(prices + share * step, 0.0) for share in _EXTRAPOLATION_STEPS]
        bounds = [setup.bound(p) for p in candidates]
        lowest = int(np.argmin(bounds))
        self._prices = candidates[lowest]
        self.value = min(ceiling, bounds[lowest])

    def _sharpen(self) -> bool:
        """Run the next stage; ``False`` if none is left."""
        if not self._stages:
            return False
        sharper = self._setup.dual(self._temperature / 10)
        if self._memory is None:
            self._memory = _CurvatureMemory(self._prices.size)
        self._prices = sharper.minimise(self._prices, self._setup.scale, self._stages.pop(0), memory=self._memory)[0]
        self.value = min(self.value, self._setup.bound(self._prices))
        return True

    def proves(self, objective: float, gap_tol: float | None) -> bool:
        """Whether ``objective`` is proven within ``gap_tol`` by the bound as it stands (no
        sharpening; never without a ``gap_tol``)."""
        return self._setup.meets(self.value, objective, gap_tol)

    def certifies(self, objective: float, gap_tol: float | None) -> bool:
        """Whether ``objective`` is proven within ``gap_tol`` (:meth:`_Setup.meets`), sharpening
        stage by stage until it is or none is left (never without a ``gap_tol``)."""
        while not self.proves(objective, gap_tol):
            if gap_tol is None or not self._sharpen():
                return False
        return True

    def settle(self) -> float:
        """The bound after every stage."""
        while self._sharpen():
            pass
        return self.value


def _bound_arrays(problem: ProblemTensors) -> tuple[object, ...]:
    """The host arrays :func:`lagrangian_compute_part` reads after the prices."""
    return (
        *(_host_index(t) for t in (problem.pair_user, problem.pair_server, problem.pair_link)),
        *(_host(t) for t in (problem.pair_link_weight, problem.server_compute, problem.link_capacity,
                             problem.compute_min, problem.weight, problem.penalty, problem.alpha)),
        bool((problem.alpha == 1.0).all()),
    )


def _check_limits(gap_tol: object, time_limit: object) -> None:
    """``gap_tol`` finite and >= 0, ``time_limit`` finite and > 0, each ``None`` allowed."""
    if gap_tol is not None:
        check_nonnegative("gap_tol", gap_tol)
    if time_limit is not None:
        check_time_limit(time_limit)


def solve_dual(
    instance: Instance,
    *,
    iterations: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    search_rounds: int = 5,
    bound_iterations: int = 50,
    device: torch.device | str | None = None,
    start: tuple[Tensor | np.ndarray, Tensor | np.ndarray] | None = None,
    gap_tol: float | None = None,
    time_limit: float | None = None,
    cold_temperature: float | None = None,
    water_filling: Tensor | np.ndarray | None = None,
    clear_start_links: bool = False,
) -> DualResult:
    r"""Approximately solve ``instance`` by smoothed dual ascent (module docstring), once or
    anytime until a proven gap.

    With neither ``gap_tol`` nor ``time_limit`` this is one pass: L-BFGS, the primal recovery
    and the bound. With either, the solve is *anytime*: L-BFGS runs in chunks of
    ``iterations``, warm, with checkpoints between them (Lagrangian bound and primal recovery
    at the chunk's prices, the recovery ending at its first allocation that meets ``gap_tol``
    against the bound, even before the migration search, and skipped if the best allocation so
    far meets it; the best allocation and the lowest bound so far are kept) and the
    smoothing temperature divided by 3 whenever a checkpoint follows a converged chunk or
    shrinks the gap by less than 10 %, down to a hundredth of ``temperature`` (annealing: a
    smaller temperature is closer to the true dual, and the warm start makes it cheap to
    reach). With ``time_limit`` alone (or ``gap_tol`` 0) every chunk ends in a checkpoint. With
    a positive ``gap_tol``, checkpoints wait for the prices to be near the smoothed minimiser,
    measured by the KKT residual (:func:`kkt_residual` per unit of weight): a chunk ends once it
    is at most 4 ``gap_tol``; up to six whole chunks in a row that end above it run without a
    checkpoint (with a time limit, while it leaves room for another chunk and a checkpoint); a
    checkpoint at a residual of at most ``gap_tol`` / 5 counts as converged (the smoothing is
    what is left: it anneals at once); and after a checkpoint that does not anneal, the next
    waits for a third of the lower of the aim and the residual reached. It stops at the first
    checkpoint whose proven per-weight gap
    :math:`(\bar g - \text{objective}) / \sum_u w_u` is at most ``gap_tol`` (``"gap_tol"``),
    before a chunk that would end after ``time_limit`` (``"time_limit"``), or when two
    checkpoints in a row at the lowest temperature follow a converged chunk or shrink the gap by
    less than 10 %, or one follows L-BFGS converging to rounding without shrinking it by 1 %
    (``"stalled"``; the status then names
    :func:`~gnnalloc.families.edge.solvers.solve_exact` as the certified method).

    Args:
        instance: the network.
        iterations: L-BFGS iterations on the S + L prices (the cost: each evaluates the
            dual once or a few times, one pass over the pairs; fewer run once the dual has
            converged to rounding); 0 takes the response to the starting prices. Default:
            :func:`default_iterations` of the instance's pairs. Anytime: the first chunk's
            (0 checks the start as it is; a given start replaced by the water-filling prices
            runs at least the default instead, and a given start's warm-up at most 1.5 times
            as many);
            later chunks run at least the default.
        temperature: smoothing :math:`\tau`, relative to each user's own price unit (module
            docstring); smaller is closer to the true dual but needs more iterations. Anytime:
            the first chunk's.
        search_rounds: rounds of :func:`~gnnalloc.families.edge.solvers.improve_migrations` in
            each primal recovery.
        bound_iterations: further iterations, from the final prices (anytime: each
            checkpoint's) at a tenth of the temperature, that only tighten ``upper_bound`` (the
            allocation keeps the prices of ``temperature``: the response to less smoothed prices
            is a worse allocation, while their Lagrangian bound is closer to the optimum). 0
            takes the bound at the final prices. Anytime, a checkpoint runs none of them if the
            bound at its prices proves ``gap_tol``, else 30 % of them if those prove it, else
            all.
        device: where the projection, refill and search run (default CPU); the prices are
            always minimised on the CPU by compiled kernels (a few hundred kilobytes of
            constants copied once), and the capacity fits (one of them shrinking the
            response's migrations, see :meth:`_Setup.recover`) run on the CPU too.
        start: ``(server_price, link_price)`` to start L-BFGS from, shapes ``(S,)`` and ``(L,)``,
            finite and non-negative (e.g. a learned prediction or an earlier solve's prices).
            Default: the per-server water-filling prices and zero link prices. The price
            units (and the soft-min temperatures) stay those of the water-filling prices, so
            a start changes where the iterations begin, not what they minimise. Where the
            given start's smoothed dual (at ``temperature``) is not below the water-filling
            start's, the solve begins at the water-filling prices instead, and so it does
            when L-BFGS stops short from the given start without halving its KKT residual or
            bringing it below the water-filling prices' (no useful step; the status says so):
            a poor prediction costs the iterations that find this out, usually a few (with
            ``gap_tol``, also its warm-up's). Anytime with a positive ``gap_tol`` and a
            ``temperature`` below :data:`DEFAULT_TEMPERATURE`, a given start whose per-weight KKT
            residual at ``temperature`` is above 10 ``gap_tol`` is first warmed up: refined at
            three times ``temperature`` (at most the default) until its residual there is at
            most that, for at most 1.5 times the first chunk's iterations (under ``time_limit``,
            a quarter of the time left), then at ``temperature`` (continuation: the smoother dual takes
            fewer iterations); with at least 80 users per server on average, the warm-up runs
            on a uniform sample of 40 per server, capacities scaled. Where some user's soft-min
            price at the warm-up's temperature is at its floor at the start (there the warmer
            dual's first line search can fail every trial step), the warm-up runs at 1.5 times
            ``temperature`` (at most the default) instead, and there is none where that floors
            a user too, or is the same temperature. Anytime, a solve from the
            given start that stalls above ``gap_tol`` restarts from the water-filling prices in the time left and returns the
            better allocation with the lower bound of the two (the status says so).
        gap_tol: stop once the proven per-weight gap is at most this (finite, >= 0).
        time_limit: seconds (finite, > 0) the solve may take: no chunk starts that its
            measured cost says would end later. The first checkpoint always completes, as an
            answer needs one, so a limit below its cost is exceeded by that checkpoint.
        cold_temperature: anytime, the first temperature of a solve from the water-filling
            prices that replaces a given start: the start's smoothed dual is not below theirs
            (the solve then also runs at least the default first chunk), L-BFGS cannot leave
            it, or its solve stalled above ``gap_tol`` and restarts from them. Default
            ``temperature``. A start refined at a lower temperature than the default can pass
            :data:`DEFAULT_TEMPERATURE`, so that wherever the start is not used the solve is
            the cold one at the default settings (a low temperature can stall higher).
        clear_start_links: on instances with at most 12 users per server on average, replace
            the link prices of a given ``start``, before anything else, by those that clear the
            links at its server prices (:meth:`_CompiledDual.clear_links`: every link not clear
            already has its log-price bisected, all at once, 13 evaluations of the dual at
            ``temperature``), unless that raises the start's smoothed dual. For a start whose
            link prices are unreliable and whose server prices are far off, as a learned
            prediction's (the ``gnn`` method sets it): L-BFGS moves link prices slowly where
            each migration is a sizeable share of a link. From server prices a few per cent off,
            the given link prices are the better start (measured in ``benchmarks/RESULTS.md``).
            No effect without a ``start``.
        water_filling: the instance's water-filling server prices
            (:func:`~gnnalloc.families.edge.solvers.functional.waterfill_prices`), if the
            caller has them (the price model computes them for its prediction): the cold start,
            and the units of the prices and the smoothing. Default: computed here.

    Returns:
        A feasible :class:`DualResult` with its proven gap and why it stopped.

    Raises:
        ValueError: naming the argument that is out of range.
    """
    if iterations is not None:
        check_count("iterations", iterations)
    if not isinstance(clear_start_links, bool):
        raise InputError(f"clear_start_links: must be true or false, got {clear_start_links!r}")
    check_count("search_rounds", search_rounds)
    check_count("bound_iterations", bound_iterations)
    check_temperature("temperature", temperature)
    if cold_temperature is not None:
        check_temperature("cold_temperature", cold_temperature)
    _check_limits(gap_tol, time_limit)
    try:
        device = None if device is None else torch.device(device)
        if device is not None:
            # An unavailable device (no CUDA here), or one whose tensors hold no numbers to read
            # back (meta), fails now, named.
            torch.zeros(1, device=device).tolist()
    except (RuntimeError, TypeError, AssertionError) as exc:  # torch asserts on a build without CUDA
        raise InputError(f"device: {exc}") from None
    load_dual_kernels()  # a one-off cost per process, not part of any solve
    start_time = time.perf_counter()
    problem = ProblemTensors.from_instance(instance, dtype=torch.float64, device=device)
    server_start = waterfill_prices_from(problem, water_filling)
    # The water-filling prices with zero link prices: the cold start, and every fallback.
    classical = _host(torch.cat([server_start, problem.link_capacity.new_zeros(problem.num_links)]))
    given_prices = None if start is None else _start_prices(start, problem.num_servers, problem.num_links)
    given_value: float | None = None  # the smoothed dual at the given start, once computed
    bandwidth, bandwidth_price = bandwidth_waterfill(problem)
    setup = _Setup(
        instance, problem, _reference_price(problem, server_start), _host(_price_scale(problem, server_start)),
        bandwidth, bandwidth_price, float(instance.weight.sum()), search_rounds,
    )
    if (given_prices is not None and clear_start_links and problem.num_links
            and problem.num_users <= _CLEARING_MAX_USERS_PER_SERVER * problem.num_servers):
        given_prices, given_value = _cleared(setup.dual(float(temperature)), given_prices, setup.scale, problem.num_servers)
    # A given start is used if its smoothed dual is below the water-filling prices' (L-BFGS
    # minimises that value, so it starts from the better point); L-BFGS might be unable to leave it.
    given, classical_residual = False, math.inf
    if given_prices is not None:
        given, classical_residual = _compare_starts(setup, given_prices, classical, float(temperature), given_value)
    # For a given start in use, the residual below which it is never abandoned; None otherwise.
    stuck_above = classical_residual if given else None
    initial = given_prices if given else classical
    if iterations is None:
        iterations = default_iterations(problem.num_pairs)
    if gap_tol is None and time_limit is None:
        result = _one_pass(setup, initial, stuck_above, iterations, float(temperature), bound_iterations, start_time)
        if result is not None:
            return result
        # L-BFGS cannot leave the given start: the same pass from the water-filling prices.
        cold = _one_pass(setup, classical, None, iterations, float(temperature), bound_iterations, start_time)
        assert cold is not None  # not a given start
        return _after_stuck_start(cold)
    if start is None:
        return _anytime(
            setup, classical, None, iterations, float(temperature), bound_iterations, gap_tol, time_limit,
            start_time,
        )
    # Wherever the given start is not used, the solve is the cold one from the water-filling
    # prices, at cold_temperature and at least the default first chunk.
    cold_chunk = max(iterations, default_iterations(problem.num_pairs))
    cold_tau = float(temperature if cold_temperature is None else cold_temperature)

    def cold_solve() -> DualResult:
        result = _anytime(
            setup, classical, None, cold_chunk, cold_tau, bound_iterations, gap_tol, time_limit, start_time,
        )
        assert result is not None  # not a given start
        return result

    if not given:  # the given start's smoothed dual is not below the water-filling one's
        return cold_solve()
    result = _anytime(
        setup, initial, stuck_above, iterations, float(temperature), bound_iterations, gap_tol, time_limit,
        start_time,
    )
    if result is None:  # L-BFGS cannot leave the given start
        return _after_stuck_start(cold_solve())
    if result.stop != "stalled":
        return result
    # The given start's solve stalled above gap_tol: the water-filling start gets the time left
    # (its own limit is the same deadline), and the better allocation and the lower bound of the
    # two are returned. The restart's first checkpoint always completes, so it only runs when the
    # time left is at least twice what the given solve's first checkpoint took.
    if time_limit is not None:
        left = time_limit - (time.perf_counter() - start_time)
        if left < 2.0 * result.checkpoints[0][0]:
            return result
    return _better_of(setup, result, cold_solve(), gap_tol, time_limit, start_time)


def _cleared(
    dual: _CompiledDual, prices: np.ndarray, scale: np.ndarray, num_servers: int,
) -> tuple[np.ndarray, float]:
    """``prices`` with their link prices cleared at their server prices (``solve_dual``'s
    ``clear_start_links``), or as given where that would raise the smoothed dual ``dual``: the
    links are bisected together, and links that share users can overshoot. Also the smoothed
    dual's value at the prices returned."""
    cleared, given_value = dual.clear_links(prices, scale, num_servers, _CLEARING_STEPS, _CLEARING_TOLERANCE)
    if np.array_equal(cleared, prices):  # every link clear already
        return prices, given_value
    cleared_value = dual.evaluate(cleared)[0]
    return (cleared, cleared_value) if cleared_value <= given_value else (prices, given_value)


def _better_of(
    setup: _Setup, given: DualResult, restart: DualResult, gap_tol: float | None, time_limit: float | None,
    start_time: float,
) -> DualResult:
    """One result from an anytime solve whose given start stalled and its restart from the
    water-filling prices: the better allocation, the lower of the two bounds, both runs'
    iterations and checkpoints, and a status saying what happened."""
    best = given if given.objective >= restart.objective else restart
    bound = min(given.upper_bound, restart.upper_bound)
    gap = setup.gap(bound, best.objective)
    stop = "gap_tol" if setup.meets(bound, best.objective, gap_tol) else restart.stop
    stalled_at = f"proven gap {given.gap_bound:.4g}" if math.isfinite(given.gap_bound) else "no finite proven gap"
    status = (f"{_stop_status(stop, gap, gap_tol, time_limit)}; the given start stalled at {stalled_at} "
              f"and the solve restarted from the water-filling prices")
    return replace(
        best, iterations=given.iterations + restart.iterations, seconds=time.perf_counter() - start_time,
        upper_bound=bound, gap_bound=gap, stop=stop, status=status,
        checkpoints=given.checkpoints + restart.checkpoints,
    )


def _stop_status(stop: str, gap: float, gap_tol: float | None, time_limit: float | None) -> str:
    """The status line of an anytime solve that stopped for ``stop`` at proven ``gap``: the gap
    against ``gap_tol`` and, above it, the certified method to use instead."""
    if stop == "gap_tol":
        return f"proven gap {gap:.4g} <= gap_tol {gap_tol:g}"
    proven = f"proven gap {gap:.4g}" if math.isfinite(gap) else "no finite proven gap"
    if gap_tol is None:
        return f"time limit {time_limit:g} s reached at {proven}"
    reason = f"time limit {time_limit:g} s reached" if stop == "time_limit" else "the dual stalled"
    return f"{reason} at {proven} > gap_tol {gap_tol:g}; {_USE_EXACT}"


def _compare_starts(
    setup: _Setup, given: np.ndarray, classical: np.ndarray, temperature: float, given_value: float | None = None,
) -> tuple[bool, float]:
    """Whether the smoothed dual at ``temperature`` is lower at ``given`` than at ``classical``,
    and the KKT residual at ``classical`` (what :func:`_cannot_leave` compares with).
    ``given_value``: the smoothed dual at ``given``, where the caller has it."""
    dual = setup.dual(temperature)
    classical_value, classical_gradient, _ = dual.evaluate(classical)
    if given_value is None:
        given_value = dual.evaluate(given)[0]
    return given_value < classical_value, kkt_residual(classical, classical_gradient, setup.scale)


#: The status of a solve whose given start stalled L-BFGS (see :func:`_cannot_leave`).
_STALLED_START = "the given start stalled L-BFGS; refined from the water-filling prices"


def _after_stuck_start(cold: DualResult) -> DualResult:
    """The solve from the water-filling prices that replaced a start L-BFGS could not leave,
    its status saying so."""
    return replace(cold, status=f"{cold.status}; {_STALLED_START}")


#: A given start L-BFGS stops short from is abandoned unless its KKT residual shrank to this
#: fraction of the start's (or below the water-filling prices', see :func:`_cannot_leave`).
_STUCK_PROGRESS = 0.5


def _cannot_leave(used: int, asked: int, residual: float, start_residual: float, classical_residual: float) -> bool:
    """Whether L-BFGS, from a given start, stopped short of the ``asked`` iterations (no
    acceptable step) with a KKT residual neither :data:`_STUCK_PROGRESS` of the start's nor
    below ``classical_residual`` (the water-filling prices' at the same temperature): a start
    on a cliff of the smoothed dual (e.g. a predicted price far below the users' own units) has
    a huge gradient and no acceptable step, or only steps too small to matter. A start already
    near the minimiser also stops short (converged to rounding), but below the water-filling
    prices' residual, and is kept."""
    return (asked > 0 and used < asked and not residual <= _STUCK_PROGRESS * start_residual
            and not residual <= classical_residual)


def _result(
    setup: _Setup, allocation: Allocation, objective: float, prices: np.ndarray, value: float, used: int,
    bound: float, start_time: float, temperature: float, stop: str, status: str,
    checkpoints: tuple[tuple[float, float], ...] = (),
) -> DualResult:
    num_servers = setup.problem.num_servers
    return DualResult(
        allocation, prices[:num_servers], prices[num_servers:], value, used,
        time.perf_counter() - start_time, bound, objective=objective, gap_bound=setup.gap(bound, objective),
        temperature=temperature, stop=stop, status=status, checkpoints=checkpoints,
    )


def _one_pass(
    setup: _Setup, initial: np.ndarray, stuck_above: float | None, iterations: int, temperature: float,
    bound_iterations: int, start_time: float,
) -> DualResult | None:
    """``solve_dual`` without ``gap_tol`` or ``time_limit``: one L-BFGS run, one recovery.
    ``stuck_above``: as for :func:`_anytime`; if L-BFGS cannot leave the given start
    (:func:`_cannot_leave`), ``None`` is returned before any recovery, and the caller solves
    from the water-filling prices."""
    dual = setup.dual(temperature)
    prices, value, used, residual = dual.minimise(initial, setup.scale, iterations)
    # The start's residual costs an evaluation: only a run that stopped short needs it.
    if stuck_above is not None and used < iterations and _cannot_leave(
        used, iterations, residual, dual.residual(initial, setup.scale), stuck_above,
    ):
        return None
    allocation, objective = setup.recover(dual, prices)
    bound = setup.sharp_bound(prices, temperature, bound_iterations).settle()
    return _result(setup, allocation, objective, prices, value, used, bound, start_time, temperature, "single pass", "ok")


def _iterations_that_fit(time_limit: float, start_time: float, per_iteration: float, per_checkpoint: float) -> int:
    """L-BFGS iterations that still fit before ``time_limit`` with a checkpoint after them, by
    the costs measured so far, with margins: timings vary from chunk to chunk (a shared
    machine, other threads)."""
    return int(0.9 * (_time_left(time_limit, start_time) - 1.5 * per_checkpoint) / per_iteration)


def _room_to_skip(
    time_limit: float | None, start_time: float, chunk: int, per_iteration: float, per_checkpoint: float | None,
) -> bool:
    """Whether an anytime solve may run another chunk before its next checkpoint: always
    without a time limit; before the first checkpoint, in the first half of the limit; after
    it, if a whole chunk and a checkpoint still fit (:func:`_iterations_that_fit`)."""
    if time_limit is None:
        return True
    if per_checkpoint is None:
        return time.perf_counter() - start_time < 0.5 * time_limit
    return _iterations_that_fit(time_limit, start_time, per_iteration, per_checkpoint) >= chunk


def _iterations_within(n: int, budget: float, per_iteration: float) -> int:
    """At most ``n`` iterations, and at least 1, that fit ``budget`` seconds at the measured
    ``per_iteration``."""
    return min(n, max(1, int(budget / per_iteration)))


def _time_left(time_limit: float, start_time: float) -> float:
    """Seconds left before ``time_limit`` (negative once past it)."""
    return time_limit - (time.perf_counter() - start_time)


def _warm_up(
    setup: _Setup, prices: np.ndarray, warm_tau: float, warm_aim: float, first: int,
    per_iteration: float, time_limit: float | None, start_time: float,
) -> tuple[np.ndarray, int, float, float, float | None, bool]:
    """The anytime solve's warm-up of a given start at ``warm_tau`` (:func:`_anytime`): at most
    :data:`_WARM_UP_CHUNKS` times ``first`` iterations (under ``time_limit``, a quarter of the
    time left), their evaluation budget, until the KKT residual there is at most ``warm_aim``
    (the objective's units; the sample's where it runs on a sample); none from a start with a
    floored user. Returns the prices, iterations run, the residual there and its aim, the
    measured cost of an iteration (``None`` where none ran, or on a sample, whose iterations
    cost less than the solve's), and whether it stopped at its start for a floored user."""
    warm_dual = setup.dual(warm_tau)  # built before the clock: not iteration time
    num_users, num_servers = setup.problem.num_users, setup.problem.num_servers
    sampled = num_users >= 2 * _WARM_UP_USERS_PER_SERVER * num_servers
    if sampled:
        warm_dual = warm_dual.subsample(_WARM_UP_USERS_PER_SERVER * num_servers / num_users)
    n = math.ceil(_WARM_UP_CHUNKS * first)
    if time_limit is not None:
        n = _iterations_within(n, 0.25 * _time_left(time_limit, start_time), per_iteration * warm_dual.share)
    clock = time.perf_counter()
    warm_tolerance = warm_aim * warm_dual.share
    prices, _, used, warm_residual = warm_dual.minimise(
        prices, setup.scale, n, warm_tolerance, max_evaluations=math.ceil(_WARM_UP_EVALUATIONS * n),
        stop_at_floored_start=True,
    )
    iteration_cost = (time.perf_counter() - clock) / used if used and not sampled else None
    # Whether it stopped at its start for a floored user: one more evaluation, only where it ran
    # no iteration (the minimiser counted them at the start but does not say).
    floored = not used and not warm_residual <= warm_tolerance and warm_dual.floored_users(prices) > 0
    return prices, used, warm_residual, warm_tolerance, iteration_cost, floored


def _anytime(
    setup: _Setup, initial: np.ndarray, stuck_above: float | None, chunk: int, temperature: float,
    bound_iterations: int, gap_tol: float | None, time_limit: float | None, start_time: float,
) -> DualResult | None:
    """``solve_dual`` with ``gap_tol`` or ``time_limit``: annealed chunks with checkpoints.
    ``stuck_above``: ``initial`` is a given start, which counts as stuck only above this KKT
    residual (the water-filling prices'); if L-BFGS cannot leave it (:func:`_cannot_leave`),
    ``None`` is returned before any recovery, and the caller solves from the water-filling
    prices.

    With a positive ``gap_tol``, checkpoints wait for the prices to be near the smoothed
    minimiser: a chunk ends early once the KKT residual reaches its aim
    (:data:`_CHECKPOINT_RESIDUAL`, tightened after each checkpoint that does not anneal), one that
    ends above it is followed by another without a checkpoint (:data:`_MAX_SKIPS`), and a
    checkpoint at a converged residual (:data:`_CONVERGED_RESIDUAL`) anneals at once."""
    floor = temperature * _ANNEAL_FLOOR
    prices, tau = initial, temperature
    best: tuple[Allocation, float] | None = None
    bound, value, used_total = math.inf, math.nan, 0
    checkpoints: list[tuple[float, float]] = []
    # Residual aims, in the objective's units (the kernel's): none without a positive gap_tol
    # (0 is never reached: the solve refines until it stalls or its time is up).
    first_aim = _CHECKPOINT_RESIDUAL * (gap_tol or 0.0) * setup.total_weight
    converged_at = first_aim * (_CONVERGED_RESIDUAL / _CHECKPOINT_RESIDUAL)
    warm_aim = first_aim * (_WARM_UP_RESIDUAL / _CHECKPOINT_RESIDUAL)
    aim = first_aim
    # Cost model for the time limit, measured as the solve goes: seconds per L-BFGS iteration
    # (first guessed from one evaluation of the dual) and per checkpoint.
    dual = setup.dual(tau)
    clock = time.perf_counter()
    initial_residual = dual.residual(prices, setup.scale)
    per_iteration = 2.0 * (time.perf_counter() - clock)
    # The residual where the first chunk begins (its stuck test compares with it).
    start_residual: float | None = initial_residual
    per_checkpoint: float | None = None
    slow_checkpoints, skips, stop = 0, 0, "stalled"
    # The first chunk is the caller's (e.g. a few iterations to check a learned start); later
    # ones at least the default, as each checkpoint costs about a hundred iterations' time.
    first, chunk = chunk, max(chunk, default_iterations(setup.problem.num_pairs))
    # Continuation: a given start (e.g. a prediction) is warmed up first at _WARM_UP_FACTOR
    # times the temperature (at _FLOORED_WARM_UP_FACTOR times it where that floors a user at the
    # start), at most the default one (none from it or above: there a smoother
    # dual measured slower), whose smoother dual L-BFGS crosses in fewer iterations, until the
    # residual there is at most warm_aim (or it has run its iterations, or their evaluation
    # budget, _WARM_UP_EVALUATIONS); not a start already within it at tau (e.g. an earlier
    # solve's prices, which the warmer dual would only pull away). Measured, the water-filling
    # prices' anytime solve (whose first checkpoints anneal anyway) gains nothing from it.
    # Under a time limit it takes at most a quarter of the time left and the first chunk half
    # of the rest, so the first checkpoint keeps about 3/8 (by the measured iteration cost).
    # Prices near the minimiser at a warmer temperature than tau's (the warm-up's, or those at
    # which the solve last annealed): each checkpoint's bound extrapolates from them.
    warmer: _WarmerPrices | None = None
    if stuck_above is not None and warm_aim > 0 and first > 0 and initial_residual > warm_aim:
        tried = tau
        for factor in (_WARM_UP_FACTOR, _FLOORED_WARM_UP_FACTOR):
            warm_tau = min(factor * tau, DEFAULT_TEMPERATURE)
            if warm_tau <= tau or warm_tau == tried:  # no warmer dual, or the one that floored
                break
            tried = warm_tau
            # Not from a start where some user's soft-min price at the warmer temperature is at
            # its floor (a start well below the prices its temperature is scaled to): there the
            # warmer dual is flat in that user's prices while its gradient is not, and L-BFGS's
            # first line search can fail every trial step (benchmarks/RESULTS.md). Such a
            # warm-up stops at its start, at the cost of two evaluations, and the next factor's
            # less smooth dual is tried.
            prices, used, warm_residual, warm_tolerance, iteration_cost, floored = _warm_up(
                setup, prices, warm_tau, warm_aim, first, per_iteration, time_limit, start_time,
            )
            if used or warm_residual <= warm_tolerance:
                # Where the warm-up stopped is as near the warmer temperature's minimiser as its
                # iterations got (or the start was within its aim there): each checkpoint's
                # bound extrapolates from there. Not from a start it could not leave.
                # (warm_tau / tau, exactly the factor where it is not capped: 1.5 * tau / tau
                # can round below the extrapolation's least ratio)
                warmer = _WarmerPrices(prices, min(factor, DEFAULT_TEMPERATURE / tau))
            if used:
                if iteration_cost is not None:
                    per_iteration = iteration_cost
                used_total += used
                start_residual = None  # evaluated only if the stuck test needs it
            if not floored:
                break
    first_chunk = True
    while True:
        n = intended = first if first_chunk else chunk
        if time_limit is not None:
            if per_checkpoint is None:
                # The first checkpoint keeps at least half the time left when the first chunk
                # starts (after a warm-up, about 3/8 of it before): that chunk takes half of
                # it, a chunk that skipped the checkpoint may run to half the limit.
                elapsed = time.perf_counter() - start_time
                budget = 0.5 * (time_limit - elapsed) if first_chunk else 0.5 * time_limit - elapsed
                n = _iterations_within(n, budget, per_iteration)
            else:
                n = min(chunk, _iterations_that_fit(time_limit, start_time, per_iteration, per_checkpoint))
                if n < max(1, chunk // 10):  # too short a chunk to change anything
                    stop = "time_limit"
                    break
        clock = time.perf_counter()
        chunk_start = prices
        prices, value, used, residual = dual.minimise(prices, setup.scale, n, aim)
        reached = aim > 0 and residual <= aim
        if first_chunk and stuck_above is not None and not reached and used < n:
            if start_residual is None:  # after a warm-up: the residual where the chunk began
                start_residual = dual.residual(chunk_start, setup.scale)
            if _cannot_leave(used, n, residual, start_residual, stuck_above):
                return None
        first_chunk = False
        if used:
            per_iteration = (time.perf_counter() - clock) / used
        used_total += used
        # L-BFGS ran a whole chunk short of its aim: iterate on before recovering, if the time
        # limit leaves room for another whole chunk and then a checkpoint (a chunk the limit cut
        # short always ends in one).
        if (first_aim > 0 and 0 < n == intended and used == n and not reached and skips < _MAX_SKIPS
                and _room_to_skip(time_limit, start_time, chunk, per_iteration, per_checkpoint)):
            skips += 1
            continue
        skips = 0
        clock = time.perf_counter()
        sharp = setup.sharp_bound(prices, tau, bound_iterations, _BOUND_STAGES, ceiling=bound, warmer=warmer)
        # The bound first: an objective it proves within gap_tol ends the recovery early, and
        # one the best allocation so far already has makes it unnecessary; it is sharpened as
        # far as that needs, and to the end where it proves nothing.
        certifies = functools.partial(sharp.certifies, gap_tol=gap_tol)
        if best is not None and certifies(best[1]):
            allocation, objective = best
        else:
            allocation, objective = setup.recover(dual, prices, certifies if gap_tol is not None else None)
        if best is None or objective > best[1]:
            best = (allocation, objective)
        bound = sharp.value if certifies(best[1]) else sharp.settle()
        per_checkpoint = time.perf_counter() - clock
        previous = checkpoints[-1][1] if checkpoints else math.inf
        gap = setup.gap(bound, best[1])
        checkpoints.append((time.perf_counter() - start_time, gap))
        if setup.meets(bound, best[1], gap_tol):
            stop = "gap_tol"
            break
        def shrank(fraction: float) -> bool:  # an infinite bound (no proof) never progresses
            return math.isfinite(gap) and gap < (1.0 - fraction) * previous

        # L-BFGS stopping short of the chunk and of its aim has converged at this temperature
        # (to rounding); so has a chunk at a converged residual or one that barely shrank the
        # gap: then anneal, or at the floor count it.
        rounding = used < n and not reached
        slow = rounding or (converged_at > 0 and residual <= converged_at) or not shrank(_ANNEAL_PROGRESS)
        if tau > floor:
            if slow:
                warmer_tau, tau = tau, max(tau / _ANNEAL_FACTOR, floor)
                warmer = _WarmerPrices(prices, warmer_tau / tau)
                dual = setup.dual(tau)
                aim = first_aim
                continue
        else:
            slow_checkpoints = slow_checkpoints + 1 if slow else 0
            if slow_checkpoints >= 2 or (rounding and not shrank(_STALL_PROGRESS)):
                break
        # The solve goes on at this temperature: the next checkpoint waits for less.
        aim = min(aim, residual) / _AIM_SHRINK
    assert best is not None
    status = _stop_status(stop, checkpoints[-1][1], gap_tol, time_limit)
    return _result(
        setup, best[0], best[1], prices, value, used_total, bound, start_time, tau, stop, status,
        tuple(checkpoints),
    )


@functools.cache
def load_dual_kernels() -> None:
    """Load :func:`solve_dual`'s compiled kernels now: they compile on a machine's first use
    (seconds) and load from numba's cache (much faster) in every new process after
    that. :func:`solve_dual` calls this before starting its clock, so its ``seconds`` are the
    solve's own; call it yourself to pay the cost at start-up (the server does). Idempotent."""
    problem = ProblemTensors.from_instance(random_instance(8, 2, 1.0, 0))
    start = waterfill_prices(problem)
    dual = _CompiledDual(problem, _UserConstants.of(problem, 0.1, _reference_price(problem, start)))
    prices = np.concatenate([_host(start), np.zeros(problem.num_links)])
    dual.minimise(prices, np.ones_like(prices), 2)
    dual.residual(prices, np.ones_like(prices))  # evaluate_dual and scaled_residual from Python
    dual.clear_links(prices, np.ones_like(prices), problem.num_servers, 1, 0.0)
    lagrangian_compute_part(prices[:problem.num_servers], prices[problem.num_servers:], *_bound_arrays(problem))
