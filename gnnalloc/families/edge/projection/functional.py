r"""Pure tensor building blocks of the projections: group sums, group thresholds, CG.

Every function here is vectorised over groups (no Python loop over users, servers or graphs) and
differentiable by ordinary autograd where it returns a value that depends on ``values``.

The central primitive is the *weighted group threshold*. For a group :math:`g` of elements with
values :math:`v_p`, positive weights :math:`a_p` and a capacity :math:`c_g \ge 0`,

.. math::  \tau_g = \min\{\tau \ge 0 : \textstyle\sum_{p \in g} a_p \max(0, v_p - a_p \tau) \le c_g\},

so that :math:`x_p = \max(0, v_p - a_p \tau_g)` is the Euclidean projection of :math:`v` onto
:math:`\{x \ge 0,\ \sum_{p \in g} a_p x_p \le c_g\}` (unit weights give the capped simplex). The
load :math:`h(\tau) = \sum a_p \max(0, v_p - a_p\tau)` is at least
:math:`\sum_{p \in T} a_p (v_p - a_p \tau)` for *any* subset :math:`T`, so with :math:`T_k` the
:math:`k` elements of largest breakpoint :math:`v_p / a_p`,

.. math::  \tau_g = \max\Big(0,\ \max_k \frac{\sum_{p \in T_k} a_p v_p - c_g}{\sum_{p \in T_k} a_p^2}\Big),

exactly: every candidate is a lower bound and the one whose :math:`T_k` is the true support attains
it. :func:`group_threshold` sorts within groups on a padded dense layout (one row per group), so
the running sums never mix groups: a group of values near :math:`10^{-6}` next to one near
:math:`10^{6}` keeps its full relative precision. :func:`support_threshold` reaches the same
value without sorting (Michelot's iteration on the support), which is much cheaper when a good
guess of the support is at hand, as in the block-coordinate sweeps of the fast projection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from gnnalloc.core import InputError
from gnnalloc.ops import segment_sum

__all__ = [
    "SegmentLayout",
    "segment_layout",
    "group_sum",
    "group_threshold",
    "capped_simplex_projection",
    "weighted_capped_projection",
    "conjugate_gradient",
    "support_threshold",
]

# A single padded block is used while it wastes at most this factor over the element count
# (plus a small absolute allowance); beyond that, groups are bucketed by size class.
_MAX_PADDING_FACTOR = 4.0
_PADDING_ALLOWANCE = 1 << 16


@dataclass(frozen=True)
class _Block:
    """Groups of similar size laid out as the rows of one dense ``(rows, width)`` matrix."""

    element: Tensor  # (n,) index of each laid-out element in the value vector
    flat: Tensor  # (n,) its position row * width + col in the flattened block
    group: Tensor  # (rows,) group id of each row
    size: Tensor  # (rows,) number of elements of each row's group
    shape: tuple[int, int]


@dataclass(frozen=True)
class SegmentLayout:
    """Where each element of a grouped vector sits in padded dense blocks (see :func:`segment_layout`).

    Args:
        num_groups: number of groups ``G``; group ids are ``0 .. G-1``.
        num_elements: length of the value vectors the layout indexes.
        blocks: the padded blocks; every element with a valid group is in exactly one.
    """

    num_groups: int
    num_elements: int
    blocks: tuple[_Block, ...]


def segment_layout(group: Tensor, num_groups: int, mask: Tensor | None = None) -> SegmentLayout:
    """Precompute the padded layout of a static grouping, reused by every threshold call.

    Elements with ``group < 0`` or ``mask == False`` belong to no group. When one padded block
    ``(non-empty groups) x (largest group)`` would waste much memory (very unequal group sizes),
    groups are bucketed by ``ceil(log2(size))`` so each bucket is padded by at most 2x.

    Args:
        group: group id of each element, ``(n,)`` long.
        num_groups: number of groups ``G``.
        mask: optional ``(n,)`` bool; ``False`` excludes an element.
    """
    if group.dim() != 1:
        raise InputError(f"group: expected a 1-d tensor, got shape {tuple(group.shape)}")
    device = group.device
    valid = group >= 0
    if mask is not None:
        valid = valid & mask
    element = torch.nonzero(valid).flatten()
    gid = group[element]
    gid, order = torch.sort(gid, stable=True)
    element = element[order]
    counts = torch.bincount(gid, minlength=num_groups)
    start = torch.cumsum(counts, 0) - counts
    col = torch.arange(element.numel(), device=device) - start[gid]
    size = counts[gid]
    nonempty = torch.nonzero(counts).flatten()
    if nonempty.numel() == 0:
        return SegmentLayout(num_groups, int(group.numel()), ())
    width = int(counts.max())
    n = int(element.numel())
    blocks = []
    if nonempty.numel() * width <= _MAX_PADDING_FACTOR * n + _PADDING_ALLOWANCE:
        row_of_group = torch.cumsum(counts > 0, 0) - 1
        flat = row_of_group[gid] * width + col
        shape = (int(nonempty.numel()), width)
        blocks.append(_Block(element, flat, nonempty, counts[nonempty], shape))
    else:
        size_class = torch.ceil(torch.log2(size.to(torch.float64))).to(torch.long)
        group_class = torch.ceil(torch.log2(counts[nonempty].to(torch.float64))).to(torch.long)
        for cls in torch.unique(group_class).tolist():
            groups = nonempty[group_class == cls]
            in_bucket = size_class == cls
            row_of_group = torch.full((num_groups,), -1, dtype=torch.long, device=device)
            row_of_group[groups] = torch.arange(groups.numel(), device=device)
            bucket_width = int(counts[groups].max())
            flat = row_of_group[gid[in_bucket]] * bucket_width + col[in_bucket]
            shape = (int(groups.numel()), bucket_width)
            blocks.append(_Block(element[in_bucket], flat, groups, counts[groups], shape))
    return SegmentLayout(num_groups, int(group.numel()), tuple(blocks))


def group_sum(values: Tensor, group: Tensor, num_groups: int) -> Tensor:
    """``out[..., g] = sum of values[..., p] over p with group[p] == g``; ``group < 0`` is skipped.

    Args:
        values: ``(..., n)``.
        group: ``(n,)`` long.
        num_groups: ``G``.
    """
    keep = group >= 0
    if bool(keep.all()):
        return segment_sum(values, group, num_groups)
    return segment_sum(values[..., keep], group[keep], num_groups)


def group_threshold(
    values: Tensor, capacity: Tensor, layout: SegmentLayout, weights: Tensor | None = None
) -> Tensor:
    r"""The threshold :math:`\tau_g \ge 0` of every group (formula in the module docstring).

    Differentiable in ``values``: the gradient of :math:`\tau_g` is that of the maximising
    candidate, i.e. :math:`a_p / \sum_{T} a^2` on the support :math:`T`, which is the exact
    derivative away from ties.

    Args:
        values: ``(n,)`` element values :math:`v`.
        capacity: ``(G,)`` group capacities :math:`c_g \ge 0`.
        layout: grouping of the elements, from :func:`segment_layout`.
        weights: ``(n,)`` positive weights :math:`a` of the grouped elements; ``None`` for 1.

    Returns:
        ``(G,)``; 0 for empty groups and groups whose clipped load already fits.
    """
    out = values.new_zeros(layout.num_groups)
    for block in layout.blocks:
        rows, width = block.shape
        # index_select rather than advanced indexing: the latter is much slower for small
        # tensors on CPU.
        v = values.index_select(0, block.element)
        if weights is None:
            key, av = v, v
        else:
            a = weights.index_select(0, block.element)
            key, av = v / a, a * v
        n = rows * width
        dense_key = torch.full((n,), -math.inf, dtype=values.dtype, device=values.device)
        dense_key = dense_key.index_copy(0, block.flat, key.detach()).view(rows, width)
        order = torch.argsort(dense_key, dim=1, descending=True)
        dense_av = values.new_zeros(n).index_copy(0, block.flat, av).view(rows, width)
        cum_av = torch.cumsum(torch.gather(dense_av, 1, order), 1)
        if weights is None:
            ranks = torch.arange(1, width + 1, dtype=values.dtype, device=values.device)
            cum_a2 = ranks.expand(rows, width)
        else:
            dense_a2 = values.new_zeros(n).index_copy(0, block.flat, (a * a).detach())
            dense_a2 = dense_a2.view(rows, width)
            cum_a2 = torch.cumsum(torch.gather(dense_a2, 1, order), 1)
        real = torch.arange(width, device=values.device) < block.size[:, None]
        # Padding sorts last; masking it (rather than relying on duplicate candidates) keeps the
        # max's gradient on one candidate.
        cum_a2 = torch.where(real, cum_a2, torch.ones_like(cum_a2))
        candidate = (cum_av - capacity.index_select(0, block.group)[:, None]) / cum_a2
        candidate = candidate.masked_fill(~real, -math.inf)
        tau = torch.clamp_min(candidate.amax(dim=1), 0.0)
        out = out.index_copy(0, block.group, tau)
    return out


def support_threshold(
    values: Tensor,
    capacity: Tensor,
    group: Tensor,
    member: Tensor,
    weights: Tensor | None = None,
    support: Tensor | None = None,
    max_iter: int = 64,
) -> tuple[Tensor, Tensor, bool]:
    r"""The group thresholds of :func:`group_threshold` without sorting (Michelot's iteration).

    Any subset :math:`T` of a group gives a lower bound
    :math:`\tau_T = (\sum_T a v - c) / \sum_T a^2 \le \tau^\star`, so starting from any support
    guess and repeating :math:`T \leftarrow \{v > a\tau_T\}` raises :math:`\tau` monotonically
    and stops, exactly at :math:`\tau^\star`, as soon as :math:`T` no longer changes. From a nearly
    right guess (the previous support during a sweep) this takes one or two rounds of ``O(n)``
    segment sums, far cheaper than sorting; all groups iterate together.

    Args:
        values: ``(n,)`` element values :math:`v`.
        capacity: ``(G,)`` capacities :math:`c_g \ge 0`.
        group: ``(n,)`` long group of each element (any value where ``member`` is False).
        member: ``(n,)`` bool, elements that belong to their group's constraint.
        weights: ``(n,)`` weights :math:`a > 0` on members; ``None`` for 1.
        support: ``(n,)`` bool initial guess of the support; ``None`` for all members.
        max_iter: rounds before giving up.

    Returns:
        ``(tau, support, converged)``: thresholds clamped at 0 (0 for groups without members),
        the final support, and whether it stabilised (if not, ``tau`` is a lower bound).
    """
    num_groups = int(capacity.shape[0])
    if num_groups == 0:
        return values.new_zeros(0), torch.zeros_like(member), True
    group = torch.where(member, group, torch.zeros_like(group))
    a = member.to(values.dtype) if weights is None else torch.where(member, weights, 0.0)
    av, a2 = a * values, a * a
    current = member if support is None else support & member
    converged = False
    # An empty support gives no bound: -inf lets every member in. A support that empties after
    # being non-empty means h(tau) = 0 <= c at a lower bound tau, so tau is exact (c = 0): keep it.
    tau = torch.full((num_groups,), -math.inf, dtype=values.dtype, device=values.device)
    with torch.no_grad():
        for _ in range(max_iter):
            s = current.to(values.dtype)
            numerator = values.new_zeros(num_groups).index_add_(0, group, av * s) - capacity
            denominator = values.new_zeros(num_groups).index_add_(0, group, a2 * s)
            tau = torch.where(denominator > 0, numerator / denominator, tau)
            following = member & (values > a * tau.index_select(0, group))
            if torch.equal(following, current):
                converged = True
                break
            current = following
    s = current.to(values.dtype)
    numerator = values.new_zeros(num_groups).index_add(0, group, av * s) - capacity
    denominator = values.new_zeros(num_groups).index_add(0, group, (a2 * s).detach())
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    # Groups without members (tau still -inf) and emptied supports keep the iteration's value.
    final = torch.where(denominator > 0, numerator / safe, tau.clamp_min(0.0))
    return torch.clamp_min(final, 0.0), current, converged


def capped_simplex_projection(
    values: Tensor, group: Tensor, capacity: Tensor, layout: SegmentLayout | None = None
) -> Tensor:
    r"""Project onto :math:`\{y \ge 0,\ \sum_{p \in g} y_p \le c_g\ \forall g\}` (groups disjoint).

    :math:`y = \max(0, v - \tau_{g(p)})` with :math:`\tau` from :func:`group_threshold`; elements
    with ``group < 0`` are only clipped at 0. Exact (no iteration) and autograd-differentiable.

    Args:
        values: ``(n,)``.
        group: ``(n,)`` long group of each element.
        capacity: ``(G,)``, ``>= 0``.
        layout: precomputed :func:`segment_layout` of ``group`` (built on the fly if ``None``).
    """
    if layout is None:
        layout = segment_layout(group, int(capacity.shape[0]))
    tau = group_threshold(values, capacity, layout)
    shift = tau.index_select(0, group.clamp_min(0))
    shift = torch.where(group >= 0, shift, torch.zeros_like(values))
    return torch.relu(values - shift)


def weighted_capped_projection(
    values: Tensor,
    weights: Tensor,
    group: Tensor,
    capacity: Tensor,
    layout: SegmentLayout | None = None,
) -> Tensor:
    r"""Project onto :math:`\{x \ge 0,\ \sum_{p \in g} a_p x_p \le c_g\ \forall g\}` (groups disjoint).

    :math:`x = \max(0, v - a \tau_{g(p)})`. Elements with ``a_p = 0`` or ``group < 0`` appear in no
    constraint and are only clipped at 0.

    Args:
        values: ``(n,)``.
        weights: ``(n,)``, ``>= 0``.
        group: ``(n,)`` long.
        capacity: ``(G,)``, ``>= 0``.
        layout: precomputed :func:`segment_layout` of ``group`` masked by ``weights > 0``.
    """
    constrained = (group >= 0) & (weights > 0)
    if layout is None:
        layout = segment_layout(group, int(capacity.shape[0]), constrained)
    safe = torch.where(constrained, weights, torch.ones_like(weights))
    tau = group_threshold(values, capacity, layout, safe)
    shift = torch.where(
        constrained, weights * tau.index_select(0, group.clamp_min(0)), torch.zeros_like(values)
    )
    return torch.relu(values - shift)


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    rhs: Tensor,
    inv_diag: Tensor,
    *,
    atol: Tensor | None = None,
    rtol: float = 0.0,
    bound: Tensor | None = None,
    max_iter: int = 1000,
) -> tuple[Tensor, int]:
    r"""Jacobi-preconditioned conjugate gradients for a symmetric positive semi-definite ``M q = rhs``.

    Stops when every entry satisfies :math:`|r_i| \le \max(\text{atol}_i,\ \text{rtol}
    \|\text{rhs}\|_2 / \sqrt{n})` (which implies :math:`\|r\|_2 \le \text{rtol}
    \|\text{rhs}\|_2`), or the search direction has no curvature (the Krylov space is exhausted;
    the last iterate is returned, never a step of infinite length), or some :math:`|q_i|` exceeds
    :math:`\text{bound}_i` (a singular system with ``rhs`` outside its range makes CG diverge; the
    caller then rejects the result). Entries with ``inv_diag == 0`` stay 0 (rows outside the
    system). For a singular ``M`` with ``rhs`` in its range, CG from 0 stays in the range and
    converges to the minimum-norm solution.

    Args:
        matvec: ``v -> M v``.
        rhs: right-hand side, 1-d.
        inv_diag: inverse diagonal preconditioner (0 outside the system).
        atol: per-entry residual tolerance.
        rtol: relative 2-norm residual tolerance.
        bound: per-entry bound on the solution's magnitude.
        max_iter: iteration cap.

    Returns:
        ``(q, iterations)``.
    """
    q = torch.zeros_like(rhs)
    r = rhs.clone()
    if r.numel() == 0:
        return q, 0
    # The 2-norm test is implied by |r_i| <= rtol ||rhs|| / sqrt(n) for every i: one entrywise
    # test (one host synchronisation) per iteration.
    tolerance = rtol * torch.linalg.vector_norm(rhs) / math.sqrt(r.numel())
    if atol is not None:
        tolerance = torch.maximum(tolerance, atol)

    def done(res: Tensor, curvature: Tensor) -> bool:
        # Converged, or no curvature left: both folded into one host synchronisation.
        return float(torch.minimum((res.abs() - tolerance).max(), curvature)) <= 0.0

    one = torch.ones((), dtype=rhs.dtype, device=rhs.device)
    if done(r, one):
        return q, 0
    s = inv_diag * r
    direction = s
    rs = torch.dot(r, s)
    for k in range(1, max_iter + 1):
        md = matvec(direction)
        curvature = torch.dot(direction, md)
        # Zero curvature means the search space is exhausted (M is singular there): take no step
        # (an unbounded one would turn the iterate into inf and then NaN) and stop below.
        alpha = torch.where(curvature > 0, rs / curvature, torch.zeros_like(rs))
        q = q + alpha * direction
        r = r - alpha * md
        if done(r, curvature):
            return q, k
        # Divergence (an inconsistent singular system) builds up over many iterations: testing
        # the bound every few iterations is enough.
        if bound is not None and k % 4 == 0 and bool((q.abs() > bound).any()):
            return q, k
        s = inv_diag * r
        rs_new = torch.dot(r, s)
        direction = s + (rs_new / rs) * direction
        rs = rs_new
    return q, max_iter
