r"""Compiled CPU kernels of the smoothed dual: one pass over the pairs per evaluation, and a
projected L-BFGS over the prices that calls it without leaving compiled code.

The math is :class:`gnnalloc.families.edge.solvers._dual._SmoothedDual`'s (see :mod:`gnnalloc.families.edge.solvers._dual`);
the torch version stays the reference (it runs on any device, is differentiable, and is what the
tests compare against). These kernels exist because at a few thousand pairs the torch version
spends most of its time in per-operation overhead (here the exponentials are most of the cost)
and scipy's L-BFGS-B adds a fixed Python cost per iteration; the timings are in
``benchmarks/RESULTS.md``.

The optimiser is a projected quasi-Newton method for :math:`\min_{z \ge 0} D(\mathrm{diag}(c) z)`
(Kim, Sra and Dhillon, 2010): variables at their bound whose gradient pushes outwards are held
fixed, the two-loop L-BFGS recursion runs on the others, and a backtracking search along the
projected path keeps every iterate feasible. The recursion starts from the dual's own Hessian
diagonal :math:`h` (each evaluation computes it, see :func:`evaluate_dual`), scaled
by the newest curvature pair: :math:`H_0 = \gamma\,\mathrm{diag}(h)^{-1}` with
:math:`\gamma = s^\top y / y^\top \mathrm{diag}(h)^{-1} y`. A price's curvature grows with the
users near indifference at it, so the diagonal spans orders of magnitude and changes whenever
users switch pairs, faster than a few curvature pairs can follow; the scalar
:math:`H_0 = \gamma I` leaves all of that to them. Each :math:`h_i` is raised to
:data:`_CURVATURE_FLOOR` of the largest: a price hardly anyone buys at would otherwise take a
step the line search can only halve back. A step is taken when it satisfies Armijo's condition
and the upper half of strong Wolfe's: near a zero price the dual turns steeply up (a user's
demand :math:`w / (m \pi)` explodes), and a step that lands there lowers the value yet leaves a
gradient that spoils the next curvature pair. Curvature pairs with :math:`s^\top y \le 0` are
skipped, so the implicit Hessian stays positive definite.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gnnalloc.core import compiled

__all__ = [
    "clear_links", "evaluate_dual", "lagrangian_compute_part", "minimise_dual", "minimise_dual_without_raising",
    "scaled_residual",
]

#: Exponents below minus this are dropped: e^-40 is far below float64 rounding of the 1 they
#: are added to.
_NEGLIGIBLE = 40.0

#: Within this of alpha = 1 a user's utility takes expm1 of its log-ratio (three transcendental
#: calls) instead of one power and a quotient, which would cancel to a few digits there.
_NEAR_LOG = 1e-3

#: Halvings of the step before a line search gives up (the step is then below 1e-6 of the first).
_BACKTRACKS = 20

#: :func:`clear_links` bisects each link's log-price, in units of its price scale, within this
#: bracket: e^-14 of the scale is far below any price that binds (the low end stands for 0),
#: e^10 far above the price at which no user migrates over the link.
_CLEARING_BRACKET = (-14.0, 10.0)

#: The smallest curvature the minimiser's diagonal scaling assumes, relative to the largest
#: (module docstring).
_CURVATURE_FLOOR = 3e-3


# fastmath explicitly off: numba lets a callee compiled during its caller's compilation inherit
# the caller's fastmath flags, so without this the evaluation inside the minimiser would round
# differently depending on which kernel a process happened to compile first.
# error_model="numpy" on every kernel here but the minimiser: a division by zero gives inf or NaN,
# as in the torch reference, which the line search rejects and the solver reports, instead of
# raising ZeroDivisionError (an accepted instance of extreme magnitudes did; tests/families/edge).
# Under it, or with any change to its divisions, LLVM vectorises the minimiser's loops otherwise
# (other rounding, other iterates: measured), so that one keeps numba's default, and where it
# raises ZeroDivisionError (4 of 3,000 instances of extreme magnitudes) its caller runs it again
# compiled under numpy's model (minimise_dual_without_raising).
@compiled(fastmath=False, error_model="numpy")
def evaluate_dual(
    prices, supply, user_start, pair_server, pair_slot, pair_link_weight,
    weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
    gradient, compute, exp_buffer, curvature,
):  # pragma: no cover - compiled (the torch reference checks it)
    r"""Smoothed dual value at ``prices`` (server prices, link prices, then a 0 that home pairs
    read as their link price), and how many users' soft-min prices are at their floor (there the
    value is flat in their pair costs, while the gradient written is their response). Writes
    its gradient (same layout, the last entry is scratch) into ``gradient``, the diagonal of its
    Hessian into ``curvature`` (same layout) and the soft response into ``compute``. Pairs are grouped by user: user ``u`` owns pairs
    ``user_start[u]:user_start[u + 1]``; pair ``p`` pays
    ``prices[pair_server[p]] + pair_link_weight[p] * prices[pair_slot[p]]``.

    The Hessian diagonal: user :math:`u` buys :math:`x_p = B\,q_p` on its pairs, with
    :math:`q` the soft-min weights of the pair costs :math:`c_p` at the user's scale
    :math:`t_u`, :math:`B = \sigma A` its amount :math:`A(\pi)` at the soft-min price
    :math:`\pi` times the probability :math:`\sigma` of being served. As
    :math:`\partial \pi / \partial c_p = q_p` and
    :math:`\partial q_p / \partial c_r = -q_p (\delta_{pr} - q_r) / t_u`, a price entering pair
    :math:`p` with coefficient :math:`a_p` (1 for its server, the link weight for its link)
    gains :math:`a_p^2 [B q_p (1 - q_p) / t_u - B' q_p^2]`, where
    :math:`B' = dB / d\pi = -\sigma A / (\alpha \pi) - \sigma (1 - \sigma) A^2 / T_u \le 0`
    (:math:`T_u` the keep-or-drop temperature ``smooth``; the first term only above the minimum
    demand; :math:`B' = 0` at the price floor, where :math:`\pi` does not move). It is the
    Jacobian of the gradient written here (which at a floored user is the response, not the
    value's derivative), exact where no price enters two pairs of one user."""
    num_prices = supply.shape[0]
    value = 0.0
    for i in range(num_prices):
        gradient[i] = supply[i]
        value += prices[i] * supply[i]
    gradient[num_prices] = 0.0
    for i in range(num_prices + 1):
        curvature[i] = 0.0
    num_users = user_start.shape[0] - 1
    floored_users = 0
    for u in range(num_users):
        first, last = user_start[u], user_start[u + 1]
        if first == last:
            value += drop[u]
            continue
        inverse = 1.0 / scale[u]
        peak = -np.inf
        for p in range(first, last):
            cost = prices[pair_server[p]] + pair_link_weight[p] * prices[pair_slot[p]]
            logit = -cost * inverse
            exp_buffer[p] = logit
            if logit > peak:
                peak = logit
        total = 0.0
        for p in range(first, last):
            shifted = exp_buffer[p] - peak
            # Below e^-40 a pair adds less than one rounding error to the peak's 1: skip exp,
            # the kernel's cost is its transcendental calls.
            if shifted == 0.0:  # the cheapest pair: e^0 = 1 exactly
                e = 1.0
            elif shifted > -_NEGLIGIBLE:
                e = math.exp(shifted)
            else:
                e = 0.0
            exp_buffer[p] = e
            total += e
        price = -scale[u] * peak if total == 1.0 else -scale[u] * (peak + math.log(total))
        floored = price < price_floor[u]
        if floored:
            price = price_floor[u]
            floored_users += 1
        ratio = weight[u] / (minimum[u] * price)
        if ratio < 1.0:
            ratio = 1.0
        above_minimum = ratio > 1.0
        if ratio == 1.0:
            utility = 0.0
        elif log_utility:
            utility = math.log(ratio)
        else:
            # One power per user, the transcendental calls being the kernel's cost:
            # (r^(1/a))^(1-a) = r^(1/a) / r, and the common alpha = 2 and 1/2 take a square
            # root and a square (both correctly rounded) instead of a general power.
            raw = ratio
            one_minus = 1.0 - alpha[u]
            if abs(one_minus) < _NEAR_LOG:
                # Near alpha = 1 the quotient below cancels: expm1 of the logarithm, as the torch
                # reference (resource_utility) does, and the logarithm itself within 1e-12.
                log_ratio = math.log(raw) / alpha[u]
                ratio = math.exp(log_ratio)
                utility = log_ratio if abs(one_minus) < 1e-12 else math.expm1(one_minus * log_ratio) / one_minus
            else:
                if alpha[u] == 2.0:
                    ratio = math.sqrt(raw)
                elif alpha[u] == 0.5:
                    ratio = raw * raw
                else:
                    ratio = raw ** (1.0 / alpha[u])
                utility = (ratio / raw - 1.0) / one_minus
        amount = minimum[u] * ratio
        keep = weight[u] * utility - price * amount
        high = keep if keep > drop[u] else drop[u]
        a = (keep - high) / smooth[u]
        b = (drop[u] - high) / smooth[u]
        if abs(a - b) > _NEGLIGIBLE:  # one branch is certain to rounding: no exp/log needed
            value += high
            served = 1.0 if a > b else 0.0
        else:
            log_sum = max(a, b) + math.log1p(math.exp(-abs(a - b)))
            value += high + smooth[u] * log_sum
            served = math.exp(a - log_sum)
        bought = served * amount / total
        # The Hessian diagonal (docstring): B = served * amount and its derivative in the price.
        amount_bought = served * amount
        amount_slope = 0.0
        if not floored:
            amount_slope = -served * (1.0 - served) * amount * amount / smooth[u]
            if above_minimum:
                amount_slope -= amount_bought / (alpha[u] * price)
        # A pair below e^-40 of the cheapest (at low temperatures, most pairs) adds exact zeros
        # to the gradient and the curvature where its factors are finite: skipped there, the
        # sums are the same. (Where one is not, its products with 0 are NaN, added as before;
        # one sum tests the user's three: it is finite only if each is.)
        zeros_exact = math.isfinite(bought + amount_bought * inverse + amount_slope)
        for p in range(first, last):
            if exp_buffer[p] == 0.0 and zeros_exact and math.isfinite(pair_link_weight[p] * pair_link_weight[p]):
                compute[p] = 0.0
                continue
            x = bought * exp_buffer[p]
            compute[p] = x
            gradient[pair_server[p]] -= x
            gradient[pair_slot[p]] -= pair_link_weight[p] * x
            q = exp_buffer[p] / total
            pair_curvature = amount_bought * inverse * q * (1.0 - q) - amount_slope * q * q
            curvature[pair_server[p]] += pair_curvature
            curvature[pair_slot[p]] += pair_link_weight[p] * pair_link_weight[p] * pair_curvature
    return value, floored_users


@compiled(fastmath=False, error_model="numpy")
def _scaled_curvature(curvature, price_scale, out):  # pragma: no cover - compiled
    """The Hessian diagonal on the scaled variables, ``curvature * price_scale**2``, raised to
    :data:`_CURVATURE_FLOOR` of its largest entry (all ones where it is 0 everywhere)."""
    top = 0.0
    for i in range(out.shape[0]):
        out[i] = curvature[i] * price_scale[i] * price_scale[i]
        if out[i] > top:
            top = out[i]
    least = _CURVATURE_FLOOR * top if top > 0.0 else 1.0
    for i in range(out.shape[0]):
        if not out[i] >= least:  # also a NaN
            out[i] = least


@compiled(fastmath=False, error_model="numpy")
def _evaluation_buffers(num_prices, num_pairs):  # pragma: no cover - compiled
    """Scratch for :func:`evaluate_dual` over ``num_prices`` prices (and the zero slot) and
    ``num_pairs`` pairs: the response, the exponentials, the gradient and the curvature."""
    return np.empty(num_pairs), np.empty(num_pairs), np.empty(num_prices + 1), np.empty(num_prices + 1)


@compiled(fastmath=False, error_model="numpy")
def scaled_residual(z, g):  # pragma: no cover - compiled
    """The KKT residual :math:`\\sum_i z_i |g_i| + \\max(-g_i, 0)` at scaled prices ``z`` with
    scaled gradient ``g`` (what :func:`minimise_dual` stops on)."""
    total = 0.0
    for i in range(z.shape[0]):
        total += z[i] * abs(g[i])
        if g[i] < 0.0:
            total -= g[i]
    return total


# Reassociation lets LLVM vectorise the two-loop recursion's dot products, which are otherwise
# serial chains of dependent additions (two per curvature pair, each over every price).
# No flag that assumes finite values: a non-finite trial value must still fail the line search.
@compiled(fastmath={"reassoc", "contract"})
def minimise_dual(
    start, price_scale, iterations, tolerance, max_evaluations, stop_at_floored_start,
    s_hist, y_hist, rho, ring,
    supply, user_start, pair_server, pair_slot, pair_link_weight,
    weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
):  # pragma: no cover - compiled (tests compare it with scipy's L-BFGS-B on the torch dual)
    """Projected L-BFGS on :math:`z = \\text{prices} / c` from ``start``: ``iterations``
    iterations, fewer once no step lowers the value (converged to rounding), once the KKT
    residual :math:`\\sum_i z_i |g_i| + \\max(-g_i, 0)` (:math:`g = c \\odot \\nabla D`: the
    complementary slackness and the overload of every capacity, each priced at its own scale) is
    at most ``tolerance`` (0: never), or once ``max_evaluations`` evaluations of the dual have
    run (checked before each iteration; 0: no limit), or at once if ``stop_at_floored_start`` and
    some user's soft-min price is at its floor at ``start`` (the dual is flat in that user's pair
    costs there while its gradient is not, so a line search from it can fail every step).
    Returns the prices, the dual value there, the iterations and the evaluations run, and that
    residual.

    The curvature memory is the caller's: pairs ``s_hist``, ``y_hist`` ``(memory, n)``, ``rho``
    ``(memory,)`` and ``ring = [stored, newest]`` (int64), read at the start and written back.
    Started where an earlier run stopped, with that run's memory, a run continues it (the start
    is evaluated again; only the prices' rounding through ``z`` differs); ``stored = 0`` starts
    afresh."""
    n = start.shape[0]
    compute, exp_buffer, price_gradient, curvature = _evaluation_buffers(n, pair_server.shape[0])
    diagonal = np.empty(n)  # the scaled Hessian diagonal at z
    prices = np.zeros(n + 1)  # the last entry stays 0: home pairs' link price

    z = start / price_scale
    for i in range(n):
        prices[i] = z[i] * price_scale[i]
    value, floored_users = evaluate_dual(
        prices, supply, user_start, pair_server, pair_slot, pair_link_weight,
        weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
        price_gradient, compute, exp_buffer, curvature,
    )
    _scaled_curvature(curvature, price_scale, diagonal)
    evaluations = 1
    if stop_at_floored_start and floored_users > 0:
        iterations = 0
    g = price_gradient[:n] * price_scale
    memory = rho.shape[0]
    alpha_buf = np.zeros(memory)
    stored = ring[0]
    newest = ring[1]
    free = np.empty(n)
    direction = np.empty(n)
    z_new = np.empty(n)
    done = 0
    residual = scaled_residual(z, g)
    while done < iterations and not residual <= tolerance:  # a NaN residual runs on, as before
        if 0 < max_evaluations <= evaluations:
            break
        # Variables held at the bound: at zero with the gradient pushing below it.
        for i in range(n):
            free[i] = 0.0 if (z[i] <= 0.0 and g[i] > 0.0) else 1.0
            direction[i] = -g[i] * free[i]
        norm = 0.0
        for i in range(n):
            norm += direction[i] * direction[i]
        if norm == 0.0:  # projected gradient is zero: optimal
            break
        if stored > 0:
            # Two-loop recursion on the free variables, newest pair first. The direction is 0
            # on held variables throughout (every update is masked), so dots need no mask.
            for k in range(stored):
                j = (newest - k) % memory
                dot = 0.0
                for i in range(n):
                    dot += s_hist[j, i] * direction[i]
                alpha_buf[j] = rho[j] * dot
                for i in range(n):
                    direction[i] -= alpha_buf[j] * y_hist[j, i] * free[i]
            # H0 = gamma diag(h)^-1, gamma = s'y / y' diag(h)^-1 y of the newest pair.
            ydy = 0.0
            for i in range(n):
                ydy += y_hist[newest, i] * y_hist[newest, i] / diagonal[i]
            gamma = 1.0 / (rho[newest] * ydy)
            for i in range(n):
                direction[i] *= gamma / diagonal[i]
            for k in range(stored - 1, -1, -1):
                j = (newest - k) % memory
                dot = 0.0
                for i in range(n):
                    dot += y_hist[j, i] * direction[i]
                beta = rho[j] * dot
                for i in range(n):
                    direction[i] += s_hist[j, i] * (alpha_buf[j] - beta) * free[i]
        slope = 0.0
        for i in range(n):
            slope += g[i] * direction[i]
        if slope >= 0.0:  # not a descent direction: restart from the scaled projected gradient
            stored = 0
        if stored == 0:
            slope = 0.0
            for i in range(n):
                direction[i] = -g[i] * free[i] / diagonal[i]
                slope += g[i] * direction[i]
            if not slope < 0.0:  # the scaled gradient underflowed (or is NaN): no descent left
                break
        step = 1.0
        if stored == 0:
            # First step (or a restart): move the largest price by at most 1 unit of its scale.
            # A price within 1 unit of 0 stops there whatever the step, so it does not limit
            # it: with the diagonal scaling a barely used price can point far below 0, and
            # capping by that would stall the others.
            largest = 0.0
            for i in range(n):
                move = direction[i] if direction[i] >= 0.0 else (-direction[i] if z[i] > 1.0 else 0.0)
                if move > largest:
                    largest = move
            step = min(1.0, 1.0 / largest) if largest > 0.0 else 1.0
        accepted = False
        new_value = value
        for _ in range(_BACKTRACKS):
            decrease = 0.0
            for i in range(n):
                zi = z[i] + step * direction[i]
                z_new[i] = zi if zi > 0.0 else 0.0
                decrease += g[i] * (z_new[i] - z[i])
                prices[i] = z_new[i] * price_scale[i]
            new_value = evaluate_dual(
                prices, supply, user_start, pair_server, pair_slot, pair_link_weight,
                weight, minimum, scale, price_floor, drop, smooth, alpha,
                log_utility, price_gradient, compute, exp_buffer, curvature,
            )[0]
            evaluations += 1
            # Armijo, then the upper half of strong Wolfe (module docstring).
            if new_value <= value + 1e-4 * decrease:
                new_slope = 0.0
                for i in range(n):
                    new_slope += price_gradient[i] * price_scale[i] * (z_new[i] - z[i])
                if new_slope <= -0.9 * decrease:
                    accepted = True
                    break
            step *= 0.5
        if not accepted:
            # Near the minimum rounding in the value (a sum over every user) defeats Armijo: try
            # once more from the scaled projected gradient, then stop.
            if stored == 0:
                break
            stored = 0
            continue
        newest = (newest + 1) % memory
        sy = 0.0
        yy = 0.0
        for i in range(n):
            gi = price_gradient[i] * price_scale[i]
            s_hist[newest, i] = z_new[i] - z[i]
            y_hist[newest, i] = gi - g[i]
            sy += s_hist[newest, i] * y_hist[newest, i]
            yy += y_hist[newest, i] * y_hist[newest, i]
            g[i] = gi
            z[i] = z_new[i]
        _scaled_curvature(curvature, price_scale, diagonal)  # the accepted trial was the last evaluated
        value = new_value
        done += 1
        residual = scaled_residual(z, g)
        if sy > 1e-12 * yy and yy > 0.0:
            rho[newest] = 1.0 / sy
            stored = min(stored + 1, memory)
        else:  # curvature pair dropped: step the ring back so it is overwritten
            newest = (newest - 1) % memory
    for i in range(n):
        prices[i] = z[i] * price_scale[i]
    ring[0] = stored
    ring[1] = newest
    return prices[:n].copy(), value, done, evaluations, residual


@compiled(fastmath=False, error_model="numpy")
def clear_links(
    prices, price_scale, first_link, steps, tolerance, supply, user_start, pair_server, pair_slot,
    pair_link_weight, weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
):  # pragma: no cover - compiled (tests check the cleared links' loads with the torch reference)
    r"""``prices`` with the link prices (entries ``first_link:``) replaced by those at which each
    link's market clears at the server prices, which are held: the smoothed dual lowered over the link
    prices alone. A link already clear at ``prices`` to ``tolerance`` (its load within that
    share of its capacity at a positive price, at most that share above it at price 0) keeps
    its price. Each other link's load :math:`\sum_{p \text{ over } l} d_p x_p`
    falls as its own price rises, so its log-price (in units of ``price_scale``, within
    :data:`_CLEARING_BRACKET`) is bisected for ``steps`` steps, all such links at once, one
    evaluation of the dual per step after the one that finds them (``steps + 1`` in all, one if
    every link is clear): up while the link is overloaded, down while it is not; it ends at its
    final bracket's middle. A link never overloaded at any price tried gets price 0 (its
    capacity does not bind). The
    links move together, each bisected against the others' trial prices, so links that share
    users (substitutes) end near, not at, a joint clearing. Also returns the dual's value at
    ``prices`` (its first evaluation), so that the caller need not evaluate it again."""
    n = prices.shape[0]
    compute, exp_buffer, gradient, curvature = _evaluation_buffers(n, pair_server.shape[0])
    trial = np.zeros(n + 1)  # the last entry stays 0: home pairs' link price
    for i in range(n):
        trial[i] = prices[i]
    value = evaluate_dual(
        trial, supply, user_start, pair_server, pair_slot, pair_link_weight,
        weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
        gradient, compute, exp_buffer, curvature,
    )[0]
    moving = np.zeros(n, dtype=np.bool_)
    for i in range(first_link, n):
        if prices[i] > 0.0:
            moving[i] = abs(gradient[i]) > tolerance * supply[i]
        else:
            moving[i] = gradient[i] < -tolerance * supply[i]
    cleared = prices.copy()
    if not moving.any():  # every link clear already: nothing to bisect
        return cleared, value
    bottom, top = _CLEARING_BRACKET
    low = np.full(n, bottom)
    high = np.full(n, top)
    for _ in range(steps):
        for i in range(first_link, n):
            if moving[i]:
                trial[i] = price_scale[i] * math.exp(0.5 * (low[i] + high[i]))
        evaluate_dual(
            trial, supply, user_start, pair_server, pair_slot, pair_link_weight,
            weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
            gradient, compute, exp_buffer, curvature,
        )
        for i in range(first_link, n):
            middle = 0.5 * (low[i] + high[i])
            if gradient[i] < 0.0:  # overloaded: the clearing price is higher
                low[i] = middle
            else:
                high[i] = middle
    for i in range(first_link, n):
        if moving[i]:
            cleared[i] = 0.0 if low[i] == bottom else price_scale[i] * math.exp(0.5 * (low[i] + high[i]))
    return cleared, value


# error_model="numpy": a division that would raise gives inf or NaN, which make the bound inf.
@compiled(fastmath=False, error_model="numpy")
def lagrangian_compute_part(
    server_price, link_price, pair_user, pair_server, pair_link, pair_link_weight,
    server_compute, link_capacity, compute_min, weight, penalty, alpha, log_utility,
):  # pragma: no cover - compiled (tests compare it with the torch bound)
    r"""The compute and link terms of the Lagrangian bound at ``server_price`` and ``link_price``
    (the unsmoothed dual): :math:`\sum_s \lambda_s C_s + \sum_l \mu_l L_l + \sum_u
    h_u(\min_p c_p)` over open capacities, one pass over the pairs and one over the users.
    The same terms, edge cases included, as
    :func:`~gnnalloc.families.edge.solvers.lagrangian_bound`'s (the torch version, which stays
    the reference: differentiable and on any device): a pair on a closed server or loading a closed
    link is out of reach, a user with no pair in reach pays its drop value :math:`-k w`, one at
    price 0 gains the utility's supremum (``inf`` for :math:`\alpha \le 1`), and a NaN term
    or pair cost makes the whole bound ``inf`` (no bound rather than a wrong one; the torch
    version's callers never pass non-finite prices). ``pair_link`` is ``-1`` at home;
    ``log_utility``: every user has :math:`\alpha = 1` (the torch version's uniform-alpha path)."""
    num_users = compute_min.shape[0]
    cheapest = np.full(num_users, np.inf)
    for p in range(pair_user.shape[0]):
        s = pair_server[p]
        if not server_compute[s] > 0.0:
            continue
        cost = server_price[s]
        link = pair_link[p]
        if link >= 0:
            if link_capacity[link] <= 0.0 and pair_link_weight[p] > 0.0:
                continue
            cost += link_price[link] * pair_link_weight[p]
        if cost != cost:  # a non-finite price times a zero weight: no bound rather than a wrong one
            return np.inf
        u = pair_user[p]
        if cost < cheapest[u]:
            cheapest[u] = cost
    total = 0.0
    for s in range(server_compute.shape[0]):
        if server_compute[s] > 0.0:
            total += server_price[s] * server_compute[s]
    for link in range(link_capacity.shape[0]):
        if link_capacity[link] > 0.0:
            total += link_price[link] * link_capacity[link]
    tiny = np.finfo(np.float64).tiny
    for u in range(num_users):
        price, w, m, k, a = cheapest[u], weight[u], compute_min[u], penalty[u], alpha[u]
        if not price < np.inf:  # nothing in reach: dropped
            total += -w * k
            continue
        if not price > 0.0:  # free: the utility's supremum
            total += w / max(a - 1.0, tiny) if a > 1.0 else np.inf
            continue
        ratio = w / m
        if price >= k * ratio:
            amount = 0.0
        elif price <= ratio:
            if log_utility:
                amount = m * max(ratio / price, 1.0)
            else:
                amount = m * math.exp(max(math.log(ratio) - math.log(price), 0.0) / a)
        else:
            amount = m
        bought = price * amount if amount > 0.0 else 0.0
        share = amount / m
        if share >= 1.0:
            one_minus = 1.0 - a
            if abs(one_minus) < 1e-12:
                utility = math.log(share)
            else:
                utility = math.expm1(one_minus * math.log(share)) / one_minus
        else:
            utility = k * (share - 1.0)
        value = w * utility - bought
        total += np.inf if value != value else value  # a NaN term: no bound
    return total


@functools.cache
def minimise_dual_without_raising() -> Callable[..., Any]:
    """:func:`minimise_dual` compiled under numpy's error model (a division by zero gives inf or
    NaN, which the line search rejects), for the rare instance on which :func:`minimise_dual`
    raises ZeroDivisionError (module comment at :func:`evaluate_dual`). Compiled in the process
    that first needs it, not cached on disk (:func:`~gnnalloc.core.compiled`)."""
    # Its own decorator's options, so that the two compilations cannot drift apart.
    options = getattr(minimise_dual, "targetoptions", {})
    options = {k: v for k, v in options.items() if k in ("fastmath", "nogil", "boundscheck")}
    function = getattr(minimise_dual, "py_func", minimise_dual)  # the function itself under NUMBA_DISABLE_JIT
    return compiled(**options, error_model="numpy", cache=False)(function)
