r"""A certified global optimum for small instances (K <= 4) by branch and bound on the power box.

Power control is non-convex, and WMMSE or FP only find stationary points; for a handful of links
branch and bound proves how far they are from optimal. It works in normalised powers
:math:`x \in [0, 1]^K` (:class:`NormalisedProblem`) and bounds the objective on a box
:math:`[l, h]` by the smaller of two upper bounds:

* **Monotone.** :math:`r_k` increases in :math:`x_k` and decreases in every :math:`x_j`, and
  the utility increases in :math:`r_k`, so
  :math:`U \le \sum_k U_k\big(\log_2(1 + \tilde g_{kk} h_k / (1 + \sum_{j \ne k} \tilde g_{kj} l_j))\big)`.
  Tight at the corners; its slack shrinks linearly with the box.
* **Difference of concave.** :math:`r_k = A_k - B_k` with
  :math:`A_k = \log_2(1 + \sum_j \tilde g_{kj} x_j)` and
  :math:`B_k = \log_2(1 + \sum_{j \ne k} \tilde g_{kj} x_j)`, both concave. With the box centre
  :math:`c`, :math:`A_k` lies below its tangent plane :math:`\hat A_k` at :math:`c`, and the
  concave utility below its tangent :math:`U_k(r_k(c)) + s_k (r_k - r_k(c))`,
  :math:`s_k = \partial U_k/\partial r_k \ge 0`. So
  :math:`U \le \varphi = \sum_k U_k(r_k(c)) + s_k(\hat A_k - B_k - r_k(c))`, which is convex
  in :math:`x` and is therefore largest at one of the box's :math:`2^K` vertices. Its slack
  shrinks quadratically, which certifies interior optima where the monotone bound cannot.

Lower bounds are objective values of the box centres and vertices (and of the starting
allocation). Each round splits the boxes with the largest bounds (up to ``batch`` of them) in
two; a box whose bound exceeds the best value found by at most the certification tolerance
(below) is dropped, its bound kept for the final upper bound. A box is cut by strong branching
(:func:`_split`): every side has two candidate cuts, in the middle and geometric (at the
geometric mean of the side's ends, or at an eighth of the side when it starts at 0: at high SNR,
near zero power, the objective varies with the logarithm of the powers), and each of the
:math:`2K` candidates is scored by the larger bound of its two halves. Among the candidates
scoring in the better half of the range between the best and the worst score, the widest side is
cut, in the middle if that cut qualifies, else geometrically (so that a narrow side whose cuts
all give nearly the same bounds is not cut forever). The optimum is *certified* when the largest
bound of the remaining boxes exceeds the best value by at most ``rtol`` times
:math:`\max(|\text{best}|, \sum_k w_k)` (the objective's scale: one bit, or one log unit, per unit
weight).

Sum-rate instances are typically certified in well under a second. With ``alpha_fair`` at high
SNR the objective is nearly flat along rays of scaled powers and the interior optimum needs many
small boxes: the search may stop at ``time_limit`` uncertified, still with a proven bound.
"""

from __future__ import annotations

import itertools
import math
import time

import torch
from torch import Tensor

from gnnalloc.core import InputError, SolveResult, check_positive, check_time_limit
from gnnalloc.families.power._allocation import PowerAllocation
from gnnalloc.families.power._baselines import greedy_schedule
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._iterative import starting_points, wmmse_powers
from gnnalloc.families.power._normalised import NormalisedProblem

__all__ = ["MAX_OPTIMUM_LINKS", "box_upper_bound", "branch_and_bound", "optimum"]

#: The largest instance the optimum method accepts: the number of boxes grows exponentially in K.
MAX_OPTIMUM_LINKS = 4


def _vertices(lo: Tensor, hi: Tensor) -> Tensor:
    """The ``2^K`` vertices of each box, ``(N, 2^K, K)``."""
    k = lo.shape[-1]
    corners = torch.tensor(list(itertools.product((0.0, 1.0), repeat=k)), dtype=lo.dtype, device=lo.device)
    return lo.unsqueeze(1) + corners.unsqueeze(0) * (hi - lo).unsqueeze(1)


def box_upper_bound(problem: NormalisedProblem, lo: Tensor, hi: Tensor) -> Tensor:
    """An upper bound on the objective over each box ``[lo, hi]`` (rows), ``(N,)``: the
    smaller of the monotone and difference-of-concave bounds (module docstring)."""
    ln2 = math.log(2.0)
    gains, cross, direct = problem.gains, problem.cross, problem.direct
    # Monotone: own power at its highest, everybody else's at their lowest.
    best_rates = torch.log1p(direct * hi / (1.0 + lo @ cross.T)) / ln2
    monotone = problem.link_utility(best_rates).sum(-1)
    # Difference of concave, linearised at the centre, maximised over the vertices.
    centre = 0.5 * (lo + hi)
    total_c = centre @ gains.T  # sum_j g_kj x_j, own signal included
    rate_c = (torch.log1p(total_c) - torch.log1p(centre @ cross.T)) / ln2
    utility_c = problem.link_utility(rate_c)
    slope = problem.slope(rate_c)
    vertices = _vertices(lo, hi)
    total_v = vertices @ gains.T
    a_hat = (torch.log1p(total_c).unsqueeze(1) + (total_v - total_c.unsqueeze(1)) / (1.0 + total_c.unsqueeze(1))) / ln2
    b = torch.log1p(vertices @ cross.T) / ln2
    phi = (utility_c.unsqueeze(1) + slope.unsqueeze(1) * (a_hat - b - rate_c.unsqueeze(1))).sum(-1)
    return torch.minimum(monotone, phi.max(dim=1).values)


def _candidates(lo: Tensor, hi: Tensor) -> Tensor:
    """Feasible points of each box whose values serve as lower bounds: centre and vertices."""
    return torch.cat([0.5 * (lo + hi), _vertices(lo, hi).reshape(-1, lo.shape[-1])])


def branch_and_bound(
    problem: NormalisedProblem,
    start: Tensor,
    rtol: float = 1e-6,
    time_limit: float = 60.0,
    batch: int = 512,
) -> tuple[Tensor, float, float, bool]:
    """Maximise the objective over the unit box (module docstring).

    Args:
        problem: the normalised instance.
        start: a feasible starting point ``(K,)`` (its value is the first lower bound).
        rtol: the certification tolerance.
        time_limit: seconds after which the search stops uncertified.
        batch: boxes split per round.

    Returns:
        ``(x, value, upper_bound, certified)``: the best point found, its objective, a proven
        upper bound on the optimum, and whether ``upper_bound - value`` is within tolerance.
    """
    deadline = time.perf_counter() + time_limit
    k = problem.num_links
    scale_floor = float(problem.weight.sum())
    best_x = start.clone()
    best = float(problem.objective(start.unsqueeze(0))[0])
    lo = torch.zeros(1, k, dtype=problem.gains.dtype, device=problem.gains.device)
    hi = torch.ones_like(lo)
    bound = box_upper_bound(problem, lo, hi)
    settled = -math.inf  # largest bound of boxes dropped as within tolerance
    while True:
        points = _candidates(lo, hi)
        values = problem.objective(points)
        top = int(torch.argmax(values))
        if float(values[top]) > best:
            best, best_x = float(values[top]), points[top].clone()
        atol = rtol * max(abs(best), scale_floor)
        close = bound <= best + atol
        if close.any():
            settled = max(settled, float(bound[close].max()))
        lo, hi, bound = lo[~close], hi[~close], bound[~close]
        if bound.numel() == 0:
            return best_x, best, max(best, settled), True
        if time.perf_counter() > deadline:
            return best_x, best, max(best, settled, float(bound.max())), False
        # Split the boxes with the largest bounds, each by strong branching (_split: 2K
        # candidate cuts, bounded at once).
        count = min(batch, bound.numel())
        chosen = torch.topk(bound, count).indices
        keep = torch.ones(bound.numel(), dtype=torch.bool, device=bound.device)
        keep[chosen] = False
        children_lo, children_hi, children_bound = _split(problem, lo[chosen], hi[chosen], bound[chosen])
        lo = torch.cat([lo[keep], children_lo])
        hi = torch.cat([hi[keep], children_hi])
        bound = torch.cat([bound[keep], children_bound])


def _cuts(lo: Tensor, hi: Tensor) -> Tensor:
    """Candidate cuts of every side, ``(N, 2K)``: the middle (columns ``0..K-1``) and a
    geometric cut (columns ``K..2K-1``; the geometric mean, or an eighth of the side when it
    starts at 0), which is the right one where the powers span orders of magnitude (at high SNR
    the objective varies with their logarithm)."""
    geometric = torch.where(lo > 0, (lo * hi).sqrt(), hi / 8.0)
    return torch.cat([0.5 * (lo + hi), geometric], dim=1)


def _split(problem: NormalisedProblem, lo: Tensor, hi: Tensor, bound: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The two parts of each box ``(N, K)`` under its best cut, with their bounds ``(2N,)``.

    Strong branching: every candidate cut (:func:`_cuts`) is bounded, and the widest side among
    the cuts whose larger child bound is in the better half of the range is cut.
    """
    n, k = lo.shape
    cut = _cuts(lo, hi)  # (N, C), C = 2K
    c = cut.shape[1]
    on_side = torch.eye(k, dtype=torch.bool, device=lo.device).repeat(2, 1)  # (C, K)
    low_hi = torch.where(on_side, cut.unsqueeze(-1), hi.unsqueeze(1))  # (N, C, K)
    high_lo = torch.where(on_side, cut.unsqueeze(-1), lo.unsqueeze(1))
    cand_lo = torch.stack([lo.unsqueeze(1).expand(n, c, k), high_lo], dim=1)  # (N, 2, C, K)
    cand_hi = torch.stack([low_hi, hi.unsqueeze(1).expand(n, c, k)], dim=1)
    own = box_upper_bound(problem, cand_lo.reshape(-1, k), cand_hi.reshape(-1, k)).reshape(n, 2, c)
    # The cut whose larger child bound is smallest; among cuts within half of its lead over
    # the worst cut, the widest side (so that a narrow side whose cuts all give nearly the same
    # bounds is not cut forever).
    score = own.max(dim=1).values  # (N, C)
    low, high = score.min(dim=1, keepdim=True).values, score.max(dim=1, keepdim=True).values
    good = score <= low + 0.5 * (high - low)
    width = (hi - lo).repeat(1, 2)
    best = torch.argmax(torch.where(good, width, -1.0), dim=1)  # (N,)
    # A child lies in its parent: its bound is the tighter of the two.
    cand_bound = torch.minimum(own, bound.view(n, 1, 1))
    rows = torch.arange(n, device=lo.device)
    return (
        cand_lo[rows, :, best].reshape(2 * n, k),
        cand_hi[rows, :, best].reshape(2 * n, k),
        cand_bound[rows, :, best].reshape(2 * n),
    )


def optimum(instance: PowerInstance, rtol: float = 1e-6, time_limit: float = 60.0) -> SolveResult:
    """The ``optimum`` method: :func:`branch_and_bound` from the better of WMMSE (four starts) and
    greedy, for instances of at most :data:`MAX_OPTIMUM_LINKS` links.

    Returns:
        A result with ``upper_bound`` (proven) and ``certified_optimal`` (status ``"optimal"``)
        when the gap is within ``rtol``; otherwise status ``"time_limit"``.

    Raises:
        ValueError: naming ``links`` for more than :data:`MAX_OPTIMUM_LINKS` links, or the bad
            option.
    """
    if instance.num_links > MAX_OPTIMUM_LINKS:
        raise InputError(
            f"links: the optimum method handles at most {MAX_OPTIMUM_LINKS} links, got "
            f"{instance.num_links} (use wmmse)"
        )
    check_positive("rtol", rtol)
    check_time_limit(time_limit)
    start_time = time.perf_counter()
    problem = NormalisedProblem.of(instance)
    local = wmmse_powers(problem, starting_points(problem, 4))
    scheduled = greedy_schedule(problem)
    start = local.power
    if float(problem.objective(scheduled.unsqueeze(0))[0]) > local.objective:
        start = scheduled
    x, _, upper, certified = branch_and_bound(problem, start, rtol, time_limit)
    return SolveResult(
        allocation=PowerAllocation(power=x.cpu().numpy() * instance.pmax),
        method="optimum",
        seconds=time.perf_counter() - start_time,
        status="optimal" if certified else "time_limit",
        certified_optimal=certified,
        upper_bound=upper,
    )
