r"""Vectorised water-filling in torch: every group's closed-form optimum at once.

For groups :math:`g` (e.g. servers) with capacity :math:`B_g` shared by their members, each
member already holding :math:`o_i \ge 0` of the resource from elsewhere,

.. math::  \max_{y \ge 0} \sum_i w_i f(o_i + y_i; m_i) \quad\text{s.t.}\quad \sum_{i \in g} y_i \le B_g,

the optimum is each member's response to the group's price :math:`\lambda_g`,
:math:`y_i = \max(T_i(\lambda) - o_i, 0)`, where :math:`T_i` is the total the member wants at
that price: :math:`T_i = m_i (w_i/(\lambda m_i))^{1/\alpha}` while :math:`\lambda \le w_i/m_i`
(above the minimum), :math:`m_i` while :math:`w_i/m_i < \lambda < k w_i/m_i` (at the minimum), and
:math:`0` beyond (not served). The total response is non-increasing in :math:`\lambda`.

The price is bracketed by bisection in :math:`\log\lambda` for all groups together, then found in
closed form: inside a bracket containing no breakpoint every member keeps its regime, the total is
:math:`A \lambda^{-1/\alpha} + C`, and :math:`\lambda = (A / (B - C))^\alpha`. This finish is exact
(to round-off) after a few dozen bisection steps, and it is where gradients flow: with the regimes
fixed, :math:`y` is a smooth function of capacities, offsets, minimums and weights, so autograd
through it gives the solution's true derivative. Capacity left at a price where members' responses
jump from :math:`m_i - o_i` to 0 (they are exactly indifferent) goes to those members in order of
index, as the numpy reference :func:`gnnalloc.solvers.waterfill` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnnalloc.problem._tensors import ProblemTensors

__all__ = ["refill_home_compute", "waterfill_groups"]


def _response(
    lam: Tensor, minimum: Tensor, weight: Tensor, penalty: Tensor, alpha: Tensor, offset: Tensor
) -> Tensor:
    ratio = weight / minimum
    above = minimum * torch.pow(torch.clamp(ratio / lam, min=1.0), 1.0 / alpha)
    total = torch.where(lam <= ratio, above, torch.where(lam < penalty * ratio, minimum, torch.zeros_like(minimum)))
    return torch.clamp(total - offset, min=0.0)


def _group_sum(values: Tensor, group: Tensor, num_groups: int) -> Tensor:
    # Not projection.functional.group_sum: that one skips negative groups at the price of a host
    # synchronisation, which the bisection loop below would pay every step.
    return values.new_zeros(num_groups).index_add(0, group, values)


def waterfill_groups(
    capacity: Tensor,
    minimum: Tensor,
    weight: Tensor,
    group: Tensor,
    penalty: Tensor | float,
    alpha: Tensor | float = 1.0,
    offset: Tensor | None = None,
    iterations: int = 24,
) -> tuple[Tensor, Tensor]:
    """Optimal split of each group's capacity among its members (see module docstring).

    Args:
        capacity: ``(G,)`` capacities :math:`B_g \\ge 0`.
        minimum: ``(N,)`` minimum demands :math:`m_i > 0`.
        weight: ``(N,)`` weights :math:`w_i > 0`.
        group: ``(N,)`` group index of each member.
        penalty, alpha: scalars or ``(N,)`` tensors (``alpha`` constant within a group).
        offset: ``(N,)`` amounts :math:`o_i \\ge 0` members already hold (default 0).
        iterations: bisection steps in :math:`\\log \\lambda` before the closed-form finish (24
            leave a bracket of ~4e-6 relative; the finish is exact unless a breakpoint falls
            inside it, and then the price is off by at most that much, on the feasible side).

    Returns:
        ``y (N,)`` summing to each group's capacity (or less where the members want less), and
        the prices ``lam (G,)`` (0 for empty groups). Differentiable in ``capacity``, ``offset``,
        ``minimum`` and ``weight``.
    """
    dtype, device = minimum.dtype, minimum.device
    num_groups = capacity.shape[0]
    penalty = torch.as_tensor(penalty, dtype=dtype, device=device).expand_as(minimum)
    alpha = torch.as_tensor(alpha, dtype=dtype, device=device).expand_as(minimum)
    if offset is None:
        offset = torch.zeros_like(minimum)
    elif offset.shape != minimum.shape:
        raise ValueError(f"offset: expected shape {tuple(minimum.shape)}, got {tuple(offset.shape)}")
    args = (minimum, weight, penalty, alpha, offset)

    with torch.no_grad():
        ratio = weight / minimum
        drop = penalty * ratio  # where a member's response falls from m - o to 0
        # The lowest breakpoint of a member is w/max(m, o): below it the member takes more.
        floor = weight / torch.maximum(minimum, offset)
        full = torch.full((num_groups,), float("inf"), dtype=dtype, device=device)
        low = full.scatter_reduce(0, group, floor, "amin", include_self=True)
        high = (-full).scatter_reduce(0, group, drop, "amax", include_self=True)
        present = torch.isfinite(low)
        # At lam -> 0 demand is unbounded; at lam = max k w/m every member is dropped: bracket.
        log_lo = torch.where(present, torch.log(low) - 60.0, torch.zeros_like(low))
        log_hi = torch.where(present, torch.log(high) + 1e-9, torch.zeros_like(high))
        cap = capacity.detach()
        for _ in range(iterations):
            mid = 0.5 * (log_lo + log_hi)
            over = _group_sum(_response(torch.exp(mid)[group], *args), group, num_groups) > cap
            log_lo = torch.where(over, mid, log_lo)
            log_hi = torch.where(over, log_hi, mid)

        # Regimes inside the bracket, read at its (log) midpoint.
        lam_mid = torch.exp(0.5 * (log_lo + log_hi))[group]
        wanted = minimum * torch.pow(torch.clamp(ratio / lam_mid, min=1.0), 1.0 / alpha)
        is_above = (lam_mid <= ratio) & (wanted > offset)
        is_flat = (lam_mid > ratio) & (lam_mid < drop) & (minimum > offset)
        group_alpha = torch.ones(num_groups, dtype=dtype, device=device).index_copy(0, group, alpha)

    # Closed form on the bracket: sum_above m^(1-1/a) w^(1/a) lam^(-1/a) + constant = capacity.
    zero = torch.zeros_like(minimum)
    coefficient = torch.where(is_above, minimum.pow(1.0 - 1.0 / alpha) * weight.pow(1.0 / alpha), zero)
    constant = torch.where(is_above, -offset, torch.where(is_flat, minimum - offset, zero))
    a = _group_sum(coefficient, group, num_groups)
    c = _group_sum(constant, group, num_groups)
    lo, hi = torch.exp(log_lo), torch.exp(log_hi)
    room_for_above = capacity - c
    solvable = (a > 0) & (room_for_above > 0)
    closed = torch.pow(a / torch.where(solvable, room_for_above, torch.ones_like(a)), group_alpha)
    inside = solvable & (closed.detach() >= lo * (1 - 1e-12)) & (closed.detach() <= hi * (1 + 1e-12))
    # Otherwise the capacity falls inside a jump of the total: the price is that breakpoint k w/m.
    with torch.no_grad():
        in_bracket = (drop >= lo[group] * (1 - 1e-12)) & (drop <= hi[group] * (1 + 1e-12))
        breakpoint = torch.zeros_like(hi).scatter_reduce(
            0, group, torch.where(in_bracket, drop, torch.zeros_like(drop)), "amax", include_self=True
        )
        fallback = torch.where(breakpoint > 0, breakpoint, hi)
    lam = torch.where(inside, closed, fallback)

    y = _response(lam[group], *args)
    # Members whose response drops from m - o to 0 inside the bracket are indifferent at the price:
    # fill them, smallest index first, with the capacity left.
    room = torch.clamp(capacity - _group_sum(y, group, num_groups), min=0.0)
    with torch.no_grad():
        in_jump = (drop >= lo[group] * (1 - 1e-12)) & (drop <= hi[group] * (1 + 1e-12))
        jump = in_jump & (y == 0) & (minimum > offset)
    if bool(jump.any()):
        take = torch.where(jump, minimum - offset, torch.zeros_like(minimum))
        order = torch.argsort(group * (take.numel() + 1) + torch.arange(take.numel(), device=device))
        sorted_group = group[order]
        cumulative = torch.cumsum(take[order], 0)
        start = _group_sum(take, group, num_groups)
        before_group = torch.cumsum(start, 0) - start
        within = cumulative - before_group[sorted_group]
        granted = torch.clamp(torch.minimum(take[order], room[sorted_group] - (within - take[order])), min=0.0)
        y = y + torch.zeros_like(take).index_copy(0, order, granted)
    return y, torch.where(present, lam, torch.zeros_like(lam))


def refill_home_compute(compute: Tensor, problem: ProblemTensors, iterations: int = 24) -> Tensor:
    r"""Re-split each server's capacity among its home users, optimally given every migration.

    Holding each migrated pair :math:`p` (user :math:`u` executing at a neighbour over a link)
    fixed, server :math:`s` has :math:`C_s - \sum_{p \text{ migrated to } s} x_p` left for the
    pairs of its home users, and home user :math:`u` already receives
    :math:`o_u = \sum_{p \text{ of } u \text{ migrated}} x_p` elsewhere. The best home split is
    then :func:`waterfill_groups` with offsets :math:`o_u`, per server: exact and closed form.

    Home pairs use no link, so a feasible input stays feasible, and the objective never decreases
    (the input's home split is feasible for the same subproblem). The output is differentiable in
    the migrated pairs (through the offsets and the capacity left), so a model trained through it
    learns only the migrations; local shares are solved.

    Args:
        compute: feasible compute per pair, ``(P,)``, finite and non-negative.
        problem: the instances (one or a collated batch).
        iterations: bisection steps of the water-filling before its closed-form finish.

    Returns:
        Compute per pair ``(P,)``: migrated pairs unchanged, home pairs re-split.
    """
    if compute.dim() != 1 or compute.shape[0] != problem.num_pairs:
        raise ValueError(f"compute: expected shape ({problem.num_pairs},), got {tuple(compute.shape)}")
    if compute.numel() and not bool(torch.isfinite(compute).all() & (compute >= 0).all()):
        raise ValueError("compute: must be finite and non-negative")
    is_home = problem.pair_link < 0
    home_pairs = torch.nonzero(is_home, as_tuple=True)[0]
    if home_pairs.numel() == 0:
        return compute
    migrated = torch.where(is_home, torch.zeros_like(compute), compute)
    migrated_in = problem.server_compute_load(migrated)
    migrated_out = problem.user_compute(migrated)
    users = problem.pair_user[home_pairs]
    refilled, _ = waterfill_groups(
        torch.clamp(problem.server_compute - migrated_in, min=0.0),
        problem.compute_min[users],
        problem.weight[users],
        problem.pair_server[home_pairs],
        problem.penalty[users],
        problem.alpha[users],
        offset=migrated_out[users],
        iterations=iterations,
    )
    return migrated.index_put((home_pairs,), refilled)
