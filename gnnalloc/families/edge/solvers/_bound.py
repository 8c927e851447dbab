r"""A certified upper bound on the optimum from any prices (weak Lagrangian duality).

Pricing the capacities, :math:`\lambda_s \ge 0` per unit of server compute, :math:`\mu_l \ge 0`
per unit of link load and :math:`\nu_s \ge 0` per unit of server bandwidth, and letting every
user buy freely at those prices gives

.. math::

    g(\lambda, \mu, \nu) = \sum_s \lambda_s C_s + \sum_l \mu_l L_l + \sum_s \nu_s B_s
        + \sum_u \Big( h_u\big(\min_{p \in P(u)} c_p;\ m^c_u\big) + h_u\big(\nu_{h(u)};\ m^b_u\big) \Big),

with a pair's unit cost :math:`c_p = \lambda_{s(p)} + \mu_{l(p)} d_p` (:math:`d_p` its link load
per unit compute, no link term at home) and a user's best value at unit price :math:`c`,

.. math::  h_u(c; m) = \sup_{r \ge 0}\ w_u f(r; m) - c\, r = w_u f(r^*; m) - c\, r^*,

whose maximiser :math:`r^*` is the closed-form water-filling response (:math:`m (w/(cm))^{1/\alpha}`
above the minimum, :math:`m` at it, :math:`0` once :math:`c \ge k w/m`). Any feasible allocation
keeps every priced term non-negative, so its objective is at most :math:`g` for *every*
non-negative price vector: ``bound - objective`` is a proof of how far that allocation is from the
optimum, whoever computed the prices, and the bound is tight (equal to the optimum) at the
optimal prices, the problem being concave with linear constraints. Pairs on a server (or a
link they load) of zero capacity carry no compute and are left out, as an infinite price would.

Used by :func:`~gnnalloc.families.edge.solvers.solve_exact` to check Clarabel's answer independently of
Clarabel's own tolerances, and by :func:`~gnnalloc.families.edge.solvers.solve_dual` to report how far its
result can be from the optimum without solving the conic program.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.core import as_nonnegative_vector, resource_utility
from gnnalloc.families.edge.solvers.functional import _response, _uniform, bandwidth_waterfill

__all__ = ["bandwidth_part", "best_value", "compute_part", "lagrangian_bound"]


def best_value(price: Tensor, minimum: Tensor, weight: Tensor, penalty: Tensor, alpha: Tensor | float) -> Tensor:
    r""":math:`h(c; m) = \sup_{r \ge 0} w f(r; m) - c r` elementwise (module docstring).

    Args:
        price: unit prices :math:`c \ge 0`; ``inf`` means the resource is out of reach.
        minimum, weight, penalty: :math:`m > 0`, :math:`w > 0`, :math:`k \ge 1`, same shape.
        alpha: :math:`\alpha > 0`, a float or a tensor of the same shape.

    Returns:
        The best values: :math:`-w k` at an infinite price (nothing bought); at price 0,
        :math:`w/(\alpha - 1)` for :math:`\alpha > 1` (the utility's supremum) and ``inf``
        otherwise. Any non-finite intermediate gives ``inf``: no bound rather than a wrong one.
    """
    alpha_t = torch.as_tensor(alpha, dtype=price.dtype, device=price.device).expand_as(price)
    positive_finite = torch.isfinite(price) & (price > 0)
    safe = torch.where(positive_finite, price, torch.ones_like(price))
    amount = _response(safe, minimum, weight, penalty, alpha, torch.zeros_like(minimum))
    bought = torch.where(amount > 0, safe * amount, torch.zeros_like(amount))
    value = weight * resource_utility(amount, minimum, penalty, alpha) - bought
    value = torch.where(torch.isnan(value), torch.full_like(value, torch.inf), value)
    free = torch.where(alpha_t > 1, weight / (alpha_t - 1).clamp(min=torch.finfo(price.dtype).tiny), torch.inf)
    unreachable = -weight * penalty
    return torch.where(positive_finite, value, torch.where(price > 0, unreachable, free))


def lagrangian_bound(
    problem: ProblemTensors,
    server_price: Tensor,
    link_price: Tensor,
    bandwidth_price: Tensor | None = None,
) -> Tensor:
    r"""The upper bound :math:`g(\lambda, \mu, \nu)` on the optimum of ``problem`` (module
    docstring), a 0-dim tensor in ``problem.dtype``; for a batch, the sum of its graphs' bounds.

    Args:
        problem: the instance(s).
        server_price: :math:`\lambda \ge 0` per unit of server compute, ``(S,)`` (finite; a
            closed capacity needs no price, see the module docstring).
        link_price: :math:`\mu \ge 0` per unit of link load, ``(L,)``.
        bandwidth_price: :math:`\nu \ge 0` per unit of server bandwidth, ``(S,)``. Default: each
            server's exact water-filling price
            (:func:`~gnnalloc.families.edge.solvers.functional.bandwidth_waterfill`; pass it when bounding the
            same problem more than once), which makes the bandwidth part tight (bandwidth
            couples nothing else, so its optimum is known in closed form).

    Raises:
        ValueError: naming the price argument with a wrong shape, a negative or a non-finite
            entry.
    """
    dtype, device = problem.dtype, problem.device
    server_price, link_price = (
        as_nonnegative_vector(name, price, size, "prices").to(dtype=dtype, device=device)
        for name, price, size in (
            ("server_price", server_price, problem.num_servers), ("link_price", link_price, problem.num_links),
        )
    )
    if bandwidth_price is None:
        _, bandwidth_price = bandwidth_waterfill(problem)
    else:
        bandwidth_price = as_nonnegative_vector("bandwidth_price", bandwidth_price, problem.num_servers, "prices")
    bandwidth_price = bandwidth_price.to(dtype=dtype, device=device)
    return compute_part(problem, server_price, link_price) + bandwidth_part(problem, bandwidth_price)


def _priced(price: Tensor, capacity: Tensor) -> Tensor:
    """:math:`\\sum \\text{price} \\cdot \\text{capacity}` over the open capacities."""
    return torch.where(capacity > 0, price * capacity, torch.zeros_like(capacity)).sum()


def compute_part(problem: ProblemTensors, server_price: Tensor, link_price: Tensor) -> Tensor:
    r"""The compute and link terms of :func:`lagrangian_bound`,
    :math:`\sum_s \lambda_s C_s + \sum_l \mu_l L_l + \sum_u h_u(\min_p c_p; m^c_u)`, from
    prices already checked (shape, finite, non-negative) and in the problem's dtype and device:
    what changes with the compute prices (an anytime solve re-evaluates only this part)."""
    dtype, device = problem.dtype, problem.device
    inf = torch.tensor(torch.inf, dtype=dtype, device=device)
    # A zero capacity admits no load, whatever its price: its pairs (users) pay an infinite one.
    server_open = problem.server_compute > 0
    migrated = problem.pair_link >= 0
    # Home pairs read a padding entry (open, free): no link, and no empty-tensor gather.
    link = torch.where(migrated, problem.pair_link, problem.num_links)
    pad = torch.ones(1, dtype=dtype, device=device)
    link_capacity = torch.cat([problem.link_capacity, pad]).index_select(0, link)
    link_cost = torch.cat([link_price, 0 * pad]).index_select(0, link) * problem.pair_link_weight
    link_closed = (link_capacity <= 0) & (problem.pair_link_weight > 0)
    pair_cost = server_price.index_select(0, problem.pair_server) + link_cost
    pair_cost = torch.where(server_open.index_select(0, problem.pair_server) & ~link_closed, pair_cost, inf)
    user_cost = torch.full((problem.num_users,), torch.inf, dtype=dtype, device=device)
    user_cost = user_cost.scatter_reduce(0, problem.pair_user, pair_cost, reduce="amin", include_self=True)
    users = best_value(user_cost, problem.compute_min, problem.weight, problem.penalty, _uniform(problem.alpha))
    return _priced(server_price, problem.server_compute) + _priced(link_price, problem.link_capacity) + users.sum()


def bandwidth_part(problem: ProblemTensors, bandwidth_price: Tensor) -> Tensor:
    r"""The bandwidth terms of :func:`lagrangian_bound`,
    :math:`\sum_s \nu_s B_s + \sum_u h_u(\nu_{h(u)}; m^b_u)`, from prices already checked
    and in the problem's dtype and device."""
    inf = torch.tensor(torch.inf, dtype=problem.dtype, device=problem.device)
    access_open = (problem.server_bandwidth > 0).index_select(0, problem.user_server)
    access_cost = torch.where(access_open, bandwidth_price.index_select(0, problem.user_server), inf)
    users = best_value(access_cost, problem.bandwidth_min, problem.weight, problem.penalty, _uniform(problem.alpha))
    return _priced(bandwidth_price, problem.server_bandwidth) + users.sum()
