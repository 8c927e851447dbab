r"""Vectorised water-filling in torch: every group's closed-form optimum at once.

For groups :math:`g` (e.g. servers) with capacity :math:`B_g` shared by their members, each
member already holding :math:`o_i \ge 0` of the resource from elsewhere,

.. math::  \max_{y \ge 0} \sum_i w_i f(o_i + y_i; m_i) \quad\text{s.t.}\quad \sum_{i \in g} y_i \le B_g,

the optimum is each member's response to the group's price :math:`\lambda_g`,
:math:`y_i = \max(T_i(\lambda) - o_i, 0)`, where :math:`T_i` is the total the member wants at
that price: :math:`T_i = m_i (w_i/(\lambda m_i))^{1/\alpha}` while :math:`\lambda \le w_i/m_i`
(above the minimum), :math:`m_i` while :math:`w_i/m_i < \lambda < k w_i/m_i` (at the minimum), and
:math:`0` beyond (not served). The total response is non-increasing in :math:`\lambda`.

The price is found exactly, for all groups at once and without iterating. As :math:`\lambda`
grows, each member passes at most two events: its above-minimum regime ends (at :math:`w_i/m_i`,
or earlier if its offset already covers what it wants), and it drops from :math:`m_i - o_i` to 0
(at :math:`k w_i/m_i`). Between events the total is :math:`A \lambda^{-1/\alpha} + C`. One sort
of the events by (group, price) and a cumulative sum of the changes of :math:`A` and :math:`C`
give the total after every event; the first event after which the total fits the capacity
brackets the price. Inside the bracket :math:`\lambda = (A / (B - C))^\alpha` (closed form,
with :math:`A, C` summed afresh over the members' regimes, so round-off in the cumulative sums
never reaches the result). This finish is where gradients flow: with the regimes fixed, :math:`y`
is a smooth function of capacities, offsets, minimums and weights, so autograd through it gives
the solution's true derivative. If the capacity falls inside a jump of the total, the price is that
event, and the capacity left goes to the members that are exactly indifferent there (response
:math:`m_i - o_i` or 0) in order of index, as the numpy reference
:func:`gnnalloc.families.edge.solvers.waterfill` does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from torch import Tensor

from gnnalloc.core import InputError, as_nonnegative_vector
from gnnalloc.families.edge.problem import ProblemTensors
from gnnalloc.families.edge.solvers._waterfill_kernel import group_prices

__all__ = [
    "HomeRefillJacobian", "Sensitivity", "bandwidth_waterfill", "refill_home_compute", "waterfill_bandwidth",
    "waterfill_groups",
    "waterfill_prices", "waterfill_prices_from",
]


def _power(base: Tensor, exponent: Tensor | float) -> Tensor:
    # Tensor-exponent pow is the slowest op here; log utility (alpha = 1) needs none of it.
    if isinstance(exponent, float):
        if exponent == 1.0:
            return base
        if exponent == -1.0:
            return base.reciprocal()
    return torch.pow(base, exponent)


def _response(
    lam: Tensor, minimum: Tensor, weight: Tensor, penalty: Tensor, alpha: Tensor | float, offset: Tensor
) -> Tensor:
    ratio = weight / minimum
    if isinstance(alpha, float) and alpha == 1.0:
        above = minimum * torch.clamp(ratio / lam, min=1.0)
    else:
        # In logs: at large alpha a price can sit near the smallest float, where ratio / lam
        # overflows although its 1/alpha-th power is moderate.
        above = minimum * torch.exp(torch.clamp(torch.log(ratio) - torch.log(lam), min=0.0) / alpha)
    # Dropping takes precedence: with k = 1 the drop price equals the end of the above-minimum
    # regime, and a member exactly there is indifferent (served by the jump fill, if at all).
    zero = torch.zeros_like(minimum)
    total = torch.where(lam >= penalty * ratio, zero, torch.where(lam <= ratio, above, minimum))
    # Not clamp(total - offset, min=0): at total = offset = 0 (a dropped member with nothing
    # elsewhere) clamp passes a gradient, as if more offset took capacity from the member.
    return torch.where(total > offset, total - offset, torch.zeros_like(total))


def _group_sum(values: Tensor, group: Tensor, num_groups: int) -> Tensor:
    # Not projection.functional.group_sum: that one skips negative groups at the price of a host
    # synchronisation, paid here on every call.
    return values.new_zeros(num_groups).index_add(0, group, values)


#: How many times the smallest group's magnitude all groups together may have before
#: :func:`_group_running_sums` scales each group apart (the others' rounding then reaches a group
#: at no more than about this many times its own: 2^20 * 1.1e-16 ~ 1e-10 relative).
_CARRIED_MAGNITUDE = 2.0 ** 20


def _group_running_sums(
    values: Tensor, group: Tensor, num_groups: int, *, minus_total: bool, one_sign: bool,
) -> Tensor:
    """For entries sorted by ``group``: each entry's running sum within its group (itself
    included), minus the group's total if ``minus_total`` (then minus the sum of the entries after
    it: 0 at a group's last). ``one_sign``: the entries share a sign (each group's magnitude is
    then its total's). Differentiable in ``values``.

    One running sum over every group, less what the groups before carried into it. In the
    entries' own units that sum carries the rounding of the largest group before: a server 1e16
    or more times larger than a later one moved that one's price bracket. Where all groups
    together have more than :data:`_CARRIED_MAGNITUDE` times the magnitude of the smallest (one
    host synchronisation to tell), each group's entries are first divided by a power of two near
    their largest magnitude (exact wherever the results are normal numbers), giving every group
    entries below 2 in magnitude, and multiplied back after. Elsewhere (ordinary instances) the
    sums run as they are, at a fraction of the cost. Groups stay apart for finite entries; an
    infinite one still spreads to the groups after it."""
    total = values.new_zeros(num_groups).index_add(0, group, values)
    magnitude = total.detach() if one_sign else values.new_zeros(num_groups).index_add(0, group, values.detach().abs())
    # On the host: a (G,) copy, the synchronisation a bool() of the test would make anyway, and
    # numpy's few operations on it cost less than torch's.
    magnitude = np.abs(magnitude.cpu().numpy())
    positive = magnitude[magnitude > 0]
    unit = None
    if positive.size and magnitude.sum() > _CARRIED_MAGNITUDE * positive.min():
        largest = values.new_zeros(num_groups).scatter_reduce(0, group, values.detach().abs(), "amax")
        _, exponent = torch.frexp(torch.where(largest > 0, largest, torch.ones_like(largest)))
        # 2^(e - 1) <= largest < 2^e: dividing by 2^(e - 1) leaves magnitudes below 2 (2^e can
        # overflow).
        unit = torch.ldexp(torch.ones_like(largest), exponent - 1).index_select(0, group)
        values = values / unit
        total = values.new_zeros(num_groups).index_add(0, group, values)
    before = torch.cumsum(total, 0) if minus_total else torch.cumsum(total, 0) - total
    sums = torch.cumsum(values, 0) - before.index_select(0, group)
    return sums if unit is None else sums * unit


def _uniform(alpha: Tensor | float) -> Tensor | float:
    """``alpha`` as a Python float when every member shares it (the usual case), else as is."""
    if not isinstance(alpha, Tensor):
        return float(alpha)
    flat = alpha.detach().reshape(-1)
    if flat.numel() == 0:
        return 1.0
    return float(flat[0]) if bool((flat == flat[0]).all()) else alpha


class Sensitivity(NamedTuple):
    r"""How a water-filling's solution moves with its capacities and offsets (regimes held fixed).

    Locally every member's share is :math:`y_i = \text{const}_i - [i \in \text{active}]\, o_i
    + \beta_i \big(B_{g(i)} + \sum_{j \in g(i),\, j\ \text{active}} o_j\big)`: members above
    the minimum split any change of the group's free capacity in proportion to their totals
    (:math:`\beta_i = T_i / \sum_{\text{above}} T_j`); at a jump the one partly served,
    indifferent member absorbs it alone (:math:`\beta = 1`).

    Args:
        active: ``(N,)`` members whose share falls one for one with their offset.
        share: ``(N,)`` :math:`\beta_i`, summing to 1 (or 0) per group.
    """

    active: Tensor
    share: Tensor


def waterfill_groups(
    capacity: Tensor,
    minimum: Tensor,
    weight: Tensor,
    group: Tensor,
    penalty: Tensor | float,
    alpha: Tensor | float = 1.0,
    offset: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Optimal split of each group's capacity among its members (see module docstring).

    Args:
        capacity: ``(G,)`` capacities :math:`B_g \\ge 0`.
        minimum: ``(N,)`` minimum demands :math:`m_i > 0`.
        weight: ``(N,)`` weights :math:`w_i > 0`.
        group: ``(N,)`` group index of each member.
        penalty, alpha: scalars or ``(N,)`` tensors (``alpha`` constant within a group).
        offset: ``(N,)`` amounts :math:`o_i \\ge 0` members already hold (default 0).

    Returns:
        ``y (N,)`` summing to each group's capacity (or less where the members want less), and
        the prices ``lam (G,)`` (0 for empty groups). Differentiable in ``capacity``, ``offset``,
        ``minimum`` and ``weight``.
    """
    arguments = dict(
        capacity=capacity, minimum=minimum, weight=weight, group=group, penalty=penalty,
        alpha=alpha, offset=offset,
    )
    _check_inputs(arguments)
    y, lam, _ = _waterfill(**arguments, sensitivity=False)
    return y, lam


def waterfill_prices(problem: ProblemTensors) -> Tensor:
    r"""Each server's price :math:`\lambda_s` if it were water-filled among every pair that could
    use it, each pair as a separate user (the price that would clear the server if nobody had
    another option), ``(S,)``. On CPU in float64, where nothing asks for a gradient, from the
    compiled kernel (:mod:`gnnalloc.families.edge.solvers._waterfill_kernel`: the same prices
    up to rounding without the torch version's per-operation overhead)."""
    pair_user = problem.pair_user
    inputs = (problem.server_compute, problem.compute_min, problem.weight, problem.penalty, problem.alpha)
    if (problem.device.type == "cpu" and problem.dtype == torch.float64
            and not any(t.requires_grad for t in inputs) and problem.num_pairs):
        # Contiguous arrays whatever the tensors' strides: the kernel loaded at start-up takes
        # those, and another layout would compile inside the first solve.
        index = pair_user.numpy()
        capacity, servers = (np.ascontiguousarray(t.numpy()) for t in (problem.server_compute, problem.pair_server))
        minimum, weight, penalty, alpha = (t.numpy()[index] for t in inputs[1:])
        return torch.from_numpy(group_prices(capacity, minimum, weight, servers, penalty, alpha))
    # A ProblemTensors is valid by construction: no argument checks (a host sync) on this path,
    # which every forward pass of the model takes.
    _, price, _ = _waterfill(
        problem.server_compute,
        problem.compute_min.index_select(0, pair_user),
        problem.weight.index_select(0, pair_user),
        problem.pair_server,
        problem.penalty.index_select(0, pair_user),
        problem.alpha.index_select(0, pair_user),
        offset=None,
        sensitivity=False,
    )
    return price


def waterfill_prices_from(problem: ProblemTensors, given: object = None, name: str = "water_filling") -> Tensor:
    """:func:`waterfill_prices` of ``problem``, or ``given`` (a caller that already has them:
    the ``gnn`` method computes them once for the price model and the solver), checked as
    ``name`` and brought to the problem's device and dtype.

    Raises:
        ValueError: naming ``name`` if ``given`` is not ``(S,)`` finite non-negative prices.
    """
    if given is None:
        return waterfill_prices(problem)
    checked = as_nonnegative_vector(name, given, problem.num_servers, "prices")
    return checked.detach().to(problem.device, problem.dtype)


def waterfill_bandwidth(problem: ProblemTensors) -> Tensor:
    """The optimal access bandwidth ``(U,)``: each home server's bandwidth water-filled among its
    home users. Bandwidth couples nothing else, so this is its exact share in every solution."""
    return bandwidth_waterfill(problem)[0]


def bandwidth_waterfill(problem: ProblemTensors) -> tuple[Tensor, Tensor]:
    """:func:`waterfill_bandwidth`'s allocation ``(U,)`` and each server's bandwidth price
    ``(S,)`` (the exact multipliers, which make the bandwidth part of
    :func:`~gnnalloc.families.edge.solvers.lagrangian_bound` tight), from one water-filling."""
    bandwidth, price, _ = _waterfill(
        problem.server_bandwidth, problem.bandwidth_min, problem.weight, problem.user_server,
        problem.penalty, problem.alpha, offset=None, sensitivity=False,
    )
    return bandwidth, price


def _check_inputs(arguments: dict[str, Tensor | float | None]) -> None:
    """Clear errors, naming the argument, for inputs (:func:`waterfill_groups`'s, by name) that
    would otherwise give NaN or garbage."""
    capacity, minimum, weight, group, penalty, alpha, offset = (
        arguments[k] for k in ("capacity", "minimum", "weight", "group", "penalty", "alpha", "offset")
    )
    if capacity.dim() != 1:
        raise InputError(f"capacity: expected shape (G,), got {tuple(capacity.shape)}")
    if minimum.dim() != 1:
        raise InputError(f"minimum: expected shape (N,), got {tuple(minimum.shape)}")
    members = tuple(minimum.shape)
    for name in ("weight", "group", "offset", "penalty", "alpha"):
        value = arguments[name]
        scalar = not isinstance(value, Tensor) or (value.dim() == 0 and name in ("penalty", "alpha"))
        if value is not None and not scalar and tuple(value.shape) != members:
            raise InputError(f"{name}: expected shape {members}, got {tuple(value.shape)}")
    if group.is_floating_point() or group.is_complex():
        raise InputError(f"group: expected integer indices, got {group.dtype}")

    def as_tensor(value: Tensor | float) -> Tensor:
        return torch.as_tensor(value, dtype=minimum.dtype, device=minimum.device)

    # (name, bad entries) pairs, all read back in one host synchronisation.
    checks = [
        ("capacity", ~torch.isfinite(capacity) | (capacity < 0), "finite and >= 0"),
        ("minimum", ~torch.isfinite(minimum) | (minimum <= 0), "finite and > 0"),
        ("weight", ~torch.isfinite(weight) | (weight <= 0), "finite and > 0"),
        ("penalty", ~torch.isfinite(as_tensor(penalty)) | (as_tensor(penalty) < 1), "finite and >= 1"),
        ("alpha", ~torch.isfinite(as_tensor(alpha)) | (as_tensor(alpha) <= 0), "finite and > 0"),
        ("group", (group < 0) | (group >= capacity.shape[0]), f"in [0, {capacity.shape[0]})"),
    ]
    if offset is not None:
        checks.append(("offset", ~torch.isfinite(offset) | (offset < 0), "finite and >= 0"))
    bad = torch.stack([flags.detach().reshape(-1).any() for _, flags, _ in checks]).tolist()
    for (name, _, rule), is_bad in zip(checks, bad):
        if is_bad:
            raise InputError(f"{name}: every entry must be {rule}")
    if isinstance(alpha, Tensor) and alpha.dim() == 1 and alpha.numel():
        # One alpha per group: the water level solves one equation per group, in that alpha.
        first = torch.zeros(capacity.shape[0], dtype=alpha.dtype, device=alpha.device).index_copy(0, group, alpha)
        if bool((alpha != first[group]).any()):
            raise InputError("alpha: must be the same for every member of a group")


def _waterfill(
    capacity: Tensor,
    minimum: Tensor,
    weight: Tensor,
    group: Tensor,
    penalty: Tensor | float,
    alpha: Tensor | float,
    offset: Tensor | None,
    sensitivity: bool,
) -> tuple[Tensor, Tensor, Sensitivity | None]:
    dtype, device = minimum.dtype, minimum.device
    num_groups, num_members = capacity.shape[0], minimum.shape[0]
    penalty = torch.as_tensor(penalty, dtype=dtype, device=device).expand_as(minimum)
    alpha = _uniform(alpha)
    if isinstance(alpha, Tensor):
        alpha = alpha.to(dtype).expand_as(minimum)
    if offset is None:
        offset = torch.zeros_like(minimum)
    if num_members == 0:
        empty = torch.zeros_like(minimum)
        return empty, torch.zeros_like(capacity), Sensitivity(empty.bool(), empty) if sensitivity else None
    args = (minimum, weight, penalty, alpha, offset)

    def take(values: Tensor, index: Tensor) -> Tensor:
        return values.index_select(0, index)

    with torch.no_grad():
        m, w, k, o = minimum.detach(), weight.detach(), penalty.detach(), offset.detach()
        a = alpha.detach() if isinstance(alpha, Tensor) else alpha
        cap = capacity.detach()
        ratio = w / m
        drop = k * ratio
        short = o < m  # still wants more than it holds at the minimum: has a plateau and a drop
        coefficient = _power(m, 1.0 - 1.0 / a) * _power(w, 1.0 / a)
        # The above-minimum regime ends at w/m, or earlier where the offset alone covers the
        # member's wish T(lam) = o (then the response reaches 0 continuously).
        end_above = torch.where(short, ratio, ratio * _power(m / torch.maximum(o, m), a))
        # Two events per member: (price, change of A, change of C) of the total A lam^(-1/a) + C.
        event_price = torch.cat([end_above, torch.where(short, drop, end_above)])
        event_a = torch.cat([-coefficient, torch.zeros_like(m)])
        event_c = torch.cat([torch.where(short, m, o), torch.where(short, o - m, torch.zeros_like(m))])
        event_group = torch.cat([group, group])
        order = torch.argsort(event_price)
        order = take(order, torch.argsort(take(event_group, order), stable=True))  # (group, price)
        price_s, group_s = take(event_price, order), take(event_group, order)
        a_s, c_s = take(event_a, order), take(event_c, order)
        # The state after each event, within its group: at lam -> 0 every member is above its
        # minimum (A = sum coef, C = -sum o), and after a group's last event A = C = 0.
        # A's events only subtract (one sign); C's add a minimum and take it back.
        a_after = _group_running_sums(a_s, group_s, num_groups, minus_total=True, one_sign=True)
        c_after = _group_running_sums(c_s, group_s, num_groups, minus_total=True, one_sign=False)
        event_power = -1.0 / (take(torch.cat([a, a]), order) if isinstance(a, Tensor) else a)
        scale = _power(price_s, event_power)
        total_after = a_after * scale + c_after
        total_before = (a_after - a_s) * scale + (c_after - c_s)
        position = torch.arange(2 * num_members, device=device)
        count = torch.bincount(event_group, minlength=num_groups)
        last = position == take(torch.cumsum(count, 0), group_s) - 1
        # The price is at or below the first event after which the total fits the capacity.
        fits = (total_after <= take(cap, group_s)) | last
        none = torch.full((num_groups,), 2 * num_members, device=device)
        first = none.scatter_reduce(0, group_s, torch.where(fits, position, take(none, group_s)), "amin")
        present = count > 0
        first = torch.where(present, first, torch.zeros_like(first))
        hi = take(price_s, first)
        previous = torch.clamp(first - 1, min=0)
        opens = (first == 0) | (take(group_s, previous) != torch.arange(num_groups, device=device))
        lo = torch.where(opens, torch.zeros_like(hi), take(price_s, previous))
        # Total still above the capacity just before the event: the capacity falls inside the
        # event's jump (members exactly indifferent at hi).
        jump = take(total_before, first) > cap
        # Regimes strictly inside (lo, hi), read at an interior point.
        probe = take(torch.where(lo > 0, torch.sqrt(lo * hi), 0.5 * hi), group)
        is_above = probe < end_above
        is_flat = short & ~is_above & (probe < drop)
        if isinstance(a, Tensor):
            group_alpha = torch.ones(num_groups, dtype=dtype, device=device).index_copy(0, group, a)
        else:
            group_alpha = a

    # Closed form on (lo, hi]: sum_above coef lam^(-1/a) + constant = capacity. Gradients flow
    # here, with the regimes fixed.
    zero = torch.zeros_like(minimum)
    coefficient = torch.where(is_above, _power(minimum, 1.0 - 1.0 / alpha) * _power(weight, 1.0 / alpha), zero)
    constant = torch.where(is_above, -offset, torch.where(is_flat, minimum - offset, zero))
    a_sum = _group_sum(coefficient, group, num_groups)
    c_sum = _group_sum(constant, group, num_groups)
    room_for_above = capacity - c_sum
    solvable = (a_sum > 0) & (room_for_above > 0) & ~jump
    closed = _power(a_sum / torch.where(solvable, room_for_above, torch.ones_like(a_sum)), group_alpha)
    closed = torch.minimum(torch.maximum(closed, lo), hi)  # round-off at the interval's ends
    # At large alpha a price (an alpha-th power) can be below the smallest float, and so can an
    # event price; at price 0 the response is infinite. The smallest positive price gives a
    # finite response that stays within capacity (it may leave some unused).
    lam = torch.clamp(torch.where(solvable, closed, hi), min=torch.finfo(dtype).tiny)

    y = _response(take(lam, group), *args)
    # Members whose response drops from m - o to 0 at the price are indifferent there: fill
    # them, smallest index first, with the capacity left.
    room = torch.clamp(capacity - _group_sum(y, group, num_groups), min=0.0)
    with torch.no_grad():
        at_price = take(lam.detach(), group)
        jumpers = short & (y == 0) & (drop >= at_price * (1 - 1e-12)) & (drop <= at_price * (1 + 1e-12))
    full = partial = torch.zeros_like(jumpers)
    if bool(jumpers.any()):
        members = torch.nonzero(jumpers, as_tuple=True)[0]  # ascending index
        members = take(members, torch.argsort(take(group, members), stable=True))  # then by group
        member_group = take(group, members)
        wanted = take(minimum - offset, members)
        # A jumper is short of its minimum: what it wants is positive.
        within = _group_running_sums(wanted, member_group, num_groups, minus_total=False, one_sign=True)
        granted = torch.clamp(torch.minimum(wanted, take(room, member_group) - (within - wanted)), min=0.0)
        y = y.index_add(0, members, granted)
        if sensitivity:
            with torch.no_grad():
                in_jump = take(jump, member_group)
                full = full.index_fill(0, members[in_jump & (granted >= wanted)], True)
                partial = partial.index_fill(0, members[in_jump & (granted > 0) & (granted < wanted)], True)
    lam = torch.where(present, lam, torch.zeros_like(lam))
    if not sensitivity:
        return y, lam, None
    with torch.no_grad():
        total = y.detach() + offset.detach()
        above = is_above & take(solvable, group)
        above_total = _group_sum(torch.where(above, total, torch.zeros_like(total)), group, num_groups)
        share = torch.where(above, total / take(above_total, group).clamp(min=torch.finfo(dtype).tiny), 0.0)
        share = torch.where(partial, torch.ones_like(share), share)
        # Indifferent members left unserved at a jump hold 0 whatever their offset.
        active = ((is_above | is_flat) & ~jumpers) | full | partial
    return y, lam, Sensitivity(active, share)


def refill_home_compute(compute: Tensor, problem: ProblemTensors) -> Tensor:
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

    Returns:
        Compute per pair ``(P,)``: migrated pairs unchanged, home pairs re-split.
    """
    _check_compute(compute, problem)
    refilled, _ = _refill(compute, problem, sensitivity=False)
    return refilled


def _check_compute(compute: Tensor, problem: ProblemTensors) -> None:
    """Raise ``ValueError`` naming ``compute`` unless it is a finite, non-negative ``(P,)``
    tensor (one host synchronisation)."""
    if compute.dim() != 1 or compute.shape[0] != problem.num_pairs:
        raise InputError(f"compute: expected shape ({problem.num_pairs},), got {tuple(compute.shape)}")
    if compute.numel() and not bool(torch.isfinite(compute).all() & (compute >= 0).all()):
        raise InputError("compute: must be finite and non-negative")


def _refill(compute: Tensor, problem: ProblemTensors, sensitivity: bool) -> tuple[Tensor, Sensitivity | None]:
    # Inputs are checked by the public callers; the search refills its own (valid) candidates.
    home_pairs = problem.home_pairs
    if home_pairs.numel() == 0:
        return compute, None
    is_home = problem.pair_link < 0
    migrated = torch.where(is_home, torch.zeros_like(compute), compute)
    migrated_in = problem.server_compute_load(migrated)
    migrated_out = problem.user_compute(migrated)
    users = problem.pair_user.index_select(0, home_pairs)
    servers = problem.pair_server.index_select(0, home_pairs)
    free = problem.server_compute - migrated_in
    refilled, _, regimes = _waterfill(
        torch.clamp(free, min=0.0),
        problem.compute_min.index_select(0, users),
        problem.weight.index_select(0, users),
        servers,
        problem.penalty.index_select(0, users),
        problem.alpha.index_select(0, users),
        offset=migrated_out.index_select(0, users),
        sensitivity=sensitivity,
    )
    if regimes is not None:
        # Where migrations alone overfill a server, its home users get 0 whatever they are.
        overfilled = (free.detach() < 0).index_select(0, servers)
        regimes = Sensitivity(regimes.active, torch.where(overfilled, 0.0, regimes.share))
    return migrated.index_put((home_pairs,), refilled), regimes


class HomeRefillJacobian:
    r"""The home refill's Jacobian at a point, as a batched vector-Jacobian product.

    With :math:`x' = R(x)` (:func:`refill_home_compute`), migrated pairs pass through
    (:math:`x'_p = x_p`) and home pairs are a water-filling of the free capacity
    :math:`B_s = C_s - \sum_{p \text{ migrated to } s} x_p` with offsets
    :math:`o_u = \sum_{p \text{ of } u \text{ migrated}} x_p` (locally linear, see
    :class:`Sensitivity`). For cotangents :math:`c` on :math:`x'` and home pair :math:`i` of user
    :math:`u` at server :math:`s`, with :math:`r_s = \sum_{i \text{ at } s} \beta_i c_i`:

    .. math::  \bar B_s = r_s, \qquad \bar o_u = [i \text{ active}]\,(r_s - c_i), \qquad
        \bar x_p = c_p - \bar B_{s(p)} + \bar o_{u(p)} \ (p \text{ migrated}), \qquad \bar x_i = 0.

    This equals autograd through :func:`refill_home_compute` (tested) at the cost of a few sparse
    sums per block of cotangents, where batched autograd replays the refill's graph for every
    cotangent.

    Args:
        problem: the instances.
        projected: the compute the refill is applied to, ``(P,)``.
    """

    def __init__(self, problem: ProblemTensors, projected: Tensor) -> None:
        _check_compute(projected, problem)
        with torch.no_grad():
            _, regimes = _refill(projected.detach(), problem, sensitivity=True)
        self.problem = problem
        self.regimes = regimes
        # Index arrays every block of cotangents uses: gathered once.
        self.home_pairs = problem.home_pairs
        self.home_server = problem.pair_server.index_select(0, self.home_pairs)
        self.home_user = problem.pair_user.index_select(0, self.home_pairs)

    def __call__(self, cot_compute: Tensor, cot_bandwidth: Tensor) -> tuple[Tensor, Tensor]:
        """Pull ``(K, P)`` compute cotangents back through the refill (bandwidth passes through)."""
        problem, regimes = self.problem, self.regimes
        if regimes is None:
            return cot_compute, cot_bandwidth
        home_pairs, server, users = self.home_pairs, self.home_server, self.home_user
        at_home = cot_compute.index_select(1, home_pairs)  # (K, N)
        cot_free = at_home.new_zeros(at_home.shape[0], problem.num_servers).index_add(1, server, at_home * regimes.share)
        cot_offset = torch.where(regimes.active, cot_free.index_select(1, server) - at_home, torch.zeros_like(at_home))
        cot_user = at_home.new_zeros(at_home.shape[0], problem.num_users).index_add(1, users, cot_offset)
        migrated = cot_compute - cot_free.index_select(1, problem.pair_server) + cot_user.index_select(1, problem.pair_user)
        return migrated.index_fill(1, home_pairs, 0.0), cot_bandwidth
