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
different servers can differ by orders of magnitude). The response is then
made feasible by the fast projection, the home split is re-solved exactly
(:func:`~gnnalloc.families.edge.solvers.functional.refill_home_compute`) and, optionally, the migration search
(:func:`~gnnalloc.families.edge.solvers.improve_migrations`) completes users left short. Access bandwidth
separates per home server and is water-filled exactly.

This is classical dual decomposition for network utility maximisation, not a learned method:
the evaluation reports it beside the exact solver as the strongest non-learned reference.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gnnalloc.families.edge.generators import random_instance
from gnnalloc.families.edge.problem import Allocation
from gnnalloc.core import check_count, check_positive
from gnnalloc.families.edge.problem import fit_to_capacity
from gnnalloc.families.edge.problem import Instance
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.core import resource_utility
from gnnalloc.families.edge.projection import FastProjection
from gnnalloc.families.edge.solvers._bound import lagrangian_bound
from gnnalloc.families.edge.solvers._dual_kernel import evaluate_dual, minimise_dual
from gnnalloc.families.edge.solvers._migration_search import improve_migrations
from gnnalloc.families.edge.solvers.functional import bandwidth_waterfill, refill_home_compute, waterfill_prices

__all__ = [
    "DualResult", "MAX_ITERATIONS", "MIN_ITERATIONS", "default_iterations", "load_dual_kernels",
    "smoothed_dual", "solve_dual",
]

#: L-BFGS iterations of :func:`solve_dual` at least: on large instances, where many users set
#: each price, a few hundred are near-exact after the search and fewer are clearly not
#: (gap against iterations: ``benchmarks/bench_dual.py``).
MIN_ITERATIONS = 300

#: ... and at most: small instances need more (fewer users set each price), and they are
#: cheap, as an iteration costs one pass over the pairs (``benchmarks/RESULTS.md``).
MAX_ITERATIONS = 3000

#: Pair visits the default spends: 300 iterations at 5,000 pairs, 2,700 at 550.
_PAIR_VISIT_BUDGET = 1_500_000


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
    """An allocation from :func:`solve_dual` with the prices that produced it.

    Args:
        allocation: the feasible allocation.
        server_price, link_price: the final prices :math:`\\lambda`, :math:`\\mu`.
        dual_value: the smoothed dual at those prices.
        iterations: L-BFGS iterations run.
        seconds: wall time of the whole solve, the bound included.
        upper_bound: the lower :func:`~gnnalloc.families.edge.solvers.lagrangian_bound` at the final prices
            and at the ``bound_iterations`` prices: no allocation does better, so ``(upper_bound - objective) / sum(weight)`` bounds this
            result's mean per-user gap without solving the conic program.
    """

    allocation: Allocation
    server_price: np.ndarray
    link_price: np.ndarray
    dual_value: float
    iterations: int
    seconds: float
    upper_bound: float


@dataclass(frozen=True)
class _UserConstants:
    """The smoothed dual's per-user constants at one temperature (module docstring), shared by
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
    check_positive("temperature", temperature)
    sizes = {"server_price": problem.num_servers, "link_price": problem.num_links}
    if reference_price is not None:
        sizes["reference_price"] = problem.num_users
    given = {"server_price": server_price, "link_price": link_price, "reference_price": reference_price}
    for name, size in sizes.items():
        value = given[name]
        if not isinstance(value, Tensor) or tuple(value.shape) != (size,):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name}: expected shape ({size},), got {shape}")
        if value.numel() and not bool((torch.isfinite(value) & (value >= 0)).all()):
            raise ValueError(f"{name}: every entry must be finite and >= 0")
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

    def evaluate(self, prices: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Dual value, gradient and soft response ``(P,)`` in the problem's pair order."""
        gradient = np.empty(self.supply.shape[0] + 1)
        compute = np.empty(self.num_pairs)
        value = evaluate_dual(
            np.append(np.asarray(prices, dtype=np.float64), 0.0), self.supply, *self.pairs,
            *self.users, gradient, compute, np.empty(self.num_pairs),
        )
        if self.order is not None:
            compute[self.order] = compute.copy()
        return float(value), gradient[:-1], compute

    def minimise(self, start: np.ndarray, scale: np.ndarray, iterations: int) -> tuple[np.ndarray, float, int]:
        """Projected L-BFGS on the prices ``scale * z`` from ``start``: final prices, dual value,
        iterations run."""
        if iterations == 0 or start.size == 0:  # nothing to optimise (e.g. no servers)
            return start, self.evaluate(start)[0], 0
        prices, value, done, _ = minimise_dual(
            np.ascontiguousarray(start, dtype=np.float64), np.ascontiguousarray(scale, dtype=np.float64),
            iterations, _MEMORY, self.supply, *self.pairs, *self.users,
        )
        return prices, float(value), int(done)


def _start_prices(start: object, num_servers: int, num_links: int) -> np.ndarray:
    """``solve_dual``'s ``start`` as one float64 array (server prices, then link prices),
    checked by name."""
    if not isinstance(start, (tuple, list)) or len(start) != 2:
        raise ValueError("start: expected a pair (server_price, link_price)")
    parts = []
    for name, value, size in (("server_price", start[0], num_servers), ("link_price", start[1], num_links)):
        array = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value, dtype=np.float64)
        if array.shape != (size,):
            raise ValueError(f"start.{name}: expected shape ({size},), got {array.shape}")
        if not bool(np.all(np.isfinite(array) & (array >= 0))):
            raise ValueError(f"start.{name}: every entry must be finite and >= 0")
        parts.append(array)
    return np.ascontiguousarray(np.concatenate(parts))


def solve_dual(
    instance: Instance,
    *,
    iterations: int | None = None,
    temperature: float = 0.03,
    search_rounds: int = 5,
    bound_iterations: int = 50,
    device: torch.device | str | None = None,
    start: tuple[Tensor | np.ndarray, Tensor | np.ndarray] | None = None,
) -> DualResult:
    """Approximately solve ``instance`` by smoothed dual ascent (module docstring).

    Args:
        instance: the network.
        iterations: L-BFGS iterations on the S + L prices (the cost: each evaluates the
            dual once or a few times, one pass over the pairs; fewer run once the dual has
            converged to rounding); 0 takes the response to the starting prices. Default:
            :func:`default_iterations` of the instance's pairs.
        temperature: smoothing :math:`\\tau`, relative to each user's own price unit (module
            docstring); smaller is closer to the true dual but needs more iterations.
        search_rounds: rounds of :func:`~gnnalloc.families.edge.solvers.improve_migrations` on the result.
        bound_iterations: further iterations, from the final prices at a tenth of the
            temperature, that only tighten ``upper_bound`` (the allocation keeps the prices of
            ``temperature``: the response to less smoothed prices is a worse allocation, while
            their Lagrangian bound is closer to the optimum). 0 takes the bound at the final
            prices. The default is a small share of the solve's iterations; what it costs and
            how much closer it brings the bound: ``benchmarks/RESULTS.md``.
        device: where the projection, refill and search run (default CPU); the prices are
            always minimised on the CPU by compiled kernels (a few hundred kilobytes of
            constants copied once).
        start: ``(server_price, link_price)`` to start L-BFGS from, shapes ``(S,)`` and ``(L,)``,
            finite and non-negative (e.g. a learned prediction or an earlier solve's prices).
            Default: the per-server water-filling prices and zero link prices. The price
            units (and the soft-min temperatures) stay those of the water-filling prices, so
            a start changes where the iterations begin, not what they minimise.

    Returns:
        A feasible :class:`DualResult` (projection plus refill make the soft response feasible).
    """
    if iterations is not None:
        check_count("iterations", iterations)
    check_count("search_rounds", search_rounds)
    check_count("bound_iterations", bound_iterations)
    check_positive("temperature", temperature)
    try:
        device = None if device is None else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: {exc}") from None
    load_dual_kernels()  # a one-off cost per process, not part of any solve
    start_time = time.perf_counter()
    problem = ProblemTensors.from_instance(instance, dtype=torch.float64, device=device)
    server_start = waterfill_prices(problem)
    if start is None:
        initial = _host(torch.cat([server_start, problem.link_capacity.new_zeros(problem.num_links)]))
    else:
        initial = _start_prices(start, problem.num_servers, problem.num_links)
    reference = _reference_price(problem, server_start)
    dual = _CompiledDual(problem, _UserConstants.of(problem, float(temperature), reference))
    scale = _host(_price_scale(problem, server_start))
    if iterations is None:
        iterations = default_iterations(problem.num_pairs)
    prices, value, used = dual.minimise(initial, scale, iterations)
    _, _, response = dual.evaluate(prices)
    response = torch.from_numpy(response).to(device=problem.device, dtype=problem.dtype)
    bandwidth, bandwidth_price = bandwidth_waterfill(problem)
    projected, bandwidth = FastProjection()(response, bandwidth, problem)
    compute = refill_home_compute(projected, problem)
    if search_rounds:
        compute = improve_migrations(compute, problem, search_rounds)
    allocation = fit_to_capacity(instance, Allocation(
        compute=compute.to("cpu", torch.float64).numpy(),
        bandwidth=bandwidth.to("cpu", torch.float64).numpy(),
    ))
    num_servers = problem.num_servers

    def bound_at(p: np.ndarray) -> float:
        return float(lagrangian_bound(
            problem, torch.from_numpy(p[:num_servers]), torch.from_numpy(p[num_servers:]), bandwidth_price
        ))

    bound = bound_at(prices)
    if bound_iterations:
        sharper = _CompiledDual(problem, _UserConstants.of(problem, float(temperature) / 10, reference))
        bound = min(bound, bound_at(sharper.minimise(prices, scale, bound_iterations)[0]))
    return DualResult(
        allocation, prices[:num_servers], prices[num_servers:], value, used,
        time.perf_counter() - start_time, bound,
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
    dual.evaluate(prices)
