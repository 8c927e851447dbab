r"""Monotone local search over migrations: complete users below their minimum with capacity that
a neighbouring server can spare.

After the home refill (:func:`~gnnalloc.families.edge.solvers.functional.refill_home_compute`) every server's
home split is optimal given the migrations, so what is left to improve is *where compute
migrates*. On the EUA instances most of the learned allocator's gap sits in users left partly
served (:math:`0 < X_u < m_u`) while the optimum keeps them exactly at their minimum: each server
ends with about one such user, and only pooling the servers' remainders over links completes
them.

One round, with :math:`X_u = \sum_s x_{us}` and per-unit values (:math:`f'` of the utility):

* a *needy* user (:math:`X_u < m_u`) gains :math:`r_u = k w_u / m_u` per unit of compute;
* server :math:`t` can release capacity at the smallest *left* marginal of its home holders,
  :math:`\rho_t = \min_{h \text{ home at } t,\ x_h > 0} w_h f'_-(X_h; m_h)`, or at 0 if it has
  capacity nobody uses;
* each needy user requests its deficit :math:`m_u - X_u` over its migration pair with the largest
  :math:`r_u - \rho_t > 0`, capped by the pair's link slack;
* server :math:`t` grants at most what its home holders release before their marginal exceeds
  the lowest requesting rate :math:`q_t` there (holder :math:`h` keeps
  :math:`\max(m_h, m_h (w_h / (m_h q_t))^{1/\alpha})`, or nothing if :math:`k w_h/m_h < q_t`),
  and each link at most its slack: requests are scaled down to fit both;
* the migrations are applied and every server's home split is refilled exactly.

A round is kept, per instance of a batch, only if it raises that instance's compute objective
:math:`\sum_u w_u f(X_u; m_u)`; otherwise its step is halved and retried. Every candidate is
feasible by construction (grants fit each server's home holdings and each link's slack, and the
refill stays within the capacity the migrations leave), so the output is feasible and never worse
than the input. It is a heuristic: it stops at points where completing a user would need another
migration to be rerouted first.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnnalloc.core import check_count
from gnnalloc.families.edge.problem import ProblemTensors, shrink_factor
from gnnalloc.core import resource_utility
from gnnalloc.families.edge.solvers.functional import _refill, _check_compute

__all__ = ["improve_migrations"]

# A user counts as needy when its deficit exceeds this fraction of its minimum (round-off in the
# refill leaves users "at" their minimum a few ulps short).
_NEEDY_RTOL = 1e-9
# Grants are shrunk by this factor so that summed grants never exceed a capacity by round-off.
_SAFETY = 1.0 - 1e-12


def _compute_objective(compute: Tensor, problem: ProblemTensors) -> Tensor:
    """Per-graph :math:`\\sum_u w_u f(X_u; m_u)` (bandwidth is untouched by the search)."""
    total = problem.user_compute(compute)
    utility = problem.weight * resource_utility(total, problem.compute_min, problem.penalty, problem.alpha)
    return utility.new_zeros(problem.num_graphs).index_add_(0, problem.user_graph, utility)


def _proposal(compute: Tensor, problem: ProblemTensors) -> Tensor:
    """Migration increments of one round (see the module docstring), feasible as they stand."""
    dtype = compute.dtype
    inf = torch.tensor(float("inf"), dtype=dtype, device=compute.device)
    pair_user, pair_server = problem.pair_user, problem.pair_server
    m, w, k, alpha = problem.compute_min, problem.weight, problem.penalty, problem.alpha
    total = problem.user_compute(compute)
    is_home = problem.pair_link < 0
    migrated = ~is_home
    if problem.num_links == 0 or not bool(migrated.any()):
        return torch.zeros_like(compute)
    link = problem.pair_link.clamp(min=0)

    deficit = (m - total).clamp(min=0.0)
    needy = deficit > _NEEDY_RTOL * m
    rate = k * w / m
    # Left marginal: the slope of giving up a unit (the penalty slope at or below the minimum).
    # Users the refill put "at" their minimum may hold a few ulps more: they are at the kink.
    above = total > m * (1.0 + _NEEDY_RTOL)
    left = torch.where(above, w / m * (total.clamp(min=torch.finfo(dtype).tiny) / m).pow(-alpha), rate)

    unused = (problem.server_compute - problem.server_compute_load(compute)).clamp(min=0.0)
    holder_value = torch.where(is_home & (compute > 0), left.index_select(0, pair_user), inf)
    release = torch.full_like(problem.server_compute, float("inf")).scatter_reduce(
        0, pair_server, holder_value, "amin"
    )
    release = torch.where(unused > _NEEDY_RTOL * problem.server_compute, torch.zeros_like(release), release)

    slack = (problem.link_capacity - problem.link_load(compute)).clamp(min=0.0)
    d = problem.pair_link_weight
    room = torch.where(d > 0, slack.index_select(0, link) / d.clamp(min=torch.finfo(dtype).tiny), inf)
    gain = rate.index_select(0, pair_user) - release.index_select(0, pair_server)
    usable = migrated & needy.index_select(0, pair_user) & (gain > 0) & (room > 0)
    if not bool(usable.any()):
        return torch.zeros_like(compute)

    # One pair per needy user: the largest gain, the lowest pair index among ties.
    masked_gain = torch.where(usable, gain, -inf)
    best = torch.full_like(m, -float("inf")).scatter_reduce(0, pair_user, masked_gain, "amax")
    is_best = usable & (masked_gain == best.index_select(0, pair_user))
    num_pairs = compute.shape[0]
    index = torch.arange(num_pairs, device=compute.device)
    first = pair_user.new_full((problem.num_users,), num_pairs).scatter_reduce(
        0, pair_user, torch.where(is_best, index, num_pairs), "amin"
    )
    chosen = is_best & (index == first.index_select(0, pair_user))
    request = torch.where(chosen, torch.minimum(deficit.index_select(0, pair_user), room), torch.zeros_like(compute))

    # What each target server's home holders release before their marginal reaches the lowest
    # rate requesting there (a holder whose penalty slope is below that rate gives up everything).
    lowest = torch.full_like(problem.server_compute, float("inf")).scatter_reduce(
        0, pair_server, torch.where(chosen, rate.index_select(0, pair_user), inf), "amin"
    )
    q = lowest.index_select(0, pair_server)
    mu, wu, ku, au = (v.index_select(0, pair_user) for v in (m, w, k, alpha))
    keeps = torch.where(
        ku * wu / mu < q,
        torch.zeros_like(q),
        torch.maximum(mu, mu * (wu / (mu * q.clamp(min=torch.finfo(dtype).tiny))).pow(1.0 / au)),
    )
    releasable = torch.where(
        is_home, torch.minimum(compute, (total.index_select(0, pair_user) - keeps).clamp(min=0.0)), 0.0
    )
    supply = problem.server_compute_load(releasable) + unused

    server_factor = shrink_factor(problem.server_compute_load(request), supply)
    link_factor = shrink_factor(problem.link_load(request), slack)
    factor = torch.minimum(
        server_factor.index_select(0, pair_server),
        torch.where(migrated, link_factor.index_select(0, link), torch.ones_like(compute)),
    )
    return request * factor * _SAFETY


def improve_migrations(
    compute: Tensor, problem: ProblemTensors, rounds: int = 3, halvings: int = 3
) -> Tensor:
    r"""Raise the objective of a feasible, refilled allocation by moving compute over links to
    users below their minimum (see the module docstring).

    Args:
        compute: feasible compute per pair ``(P,)`` whose home split is refilled (the output of
            :func:`~gnnalloc.families.edge.solvers.functional.refill_home_compute`).
        problem: the instances (one or a collated batch).
        rounds: search rounds; each costs one proposal and up to ``halvings + 1`` refills.
        halvings: how often a rejected step is halved before the instance stops searching.

    Returns:
        Feasible compute ``(P,)`` with an objective at least the input's in every instance
        (no gradient: the search is for inference).

    Raises:
        ValueError: on a negative ``rounds`` or ``halvings``, or a malformed ``compute``.
    """
    check_count("rounds", rounds)
    check_count("halvings", halvings)
    _check_compute(compute, problem)
    if rounds == 0:
        return compute
    with torch.no_grad():
        x = compute.detach()
        pair_graph = problem.user_graph.index_select(0, problem.pair_user)
        objective = _compute_objective(x, problem)
        searching = torch.ones_like(objective, dtype=torch.bool)
        is_home = problem.pair_link < 0
        for _ in range(rounds):
            step = _proposal(x, problem)
            step = torch.where(searching.index_select(0, pair_graph), step, torch.zeros_like(step))
            if not bool((step > 0).any()):
                break
            improved = torch.zeros_like(searching)
            for _ in range(halvings + 1):
                candidate = torch.where(is_home, torch.zeros_like(x), x + step)
                candidate, _ = _refill(candidate, problem, sensitivity=False)
                value = _compute_objective(candidate, problem)
                better = (value > objective) & ~improved
                keep = better.index_select(0, pair_graph)
                x = torch.where(keep, candidate, x)
                objective = torch.where(better, value, objective)
                improved |= better
                pending = (~improved).index_select(0, pair_graph)
                step = torch.where(pending, step * 0.5, torch.zeros_like(step))
                if not bool((step > 0).any()):
                    break
            searching &= improved
        return x
