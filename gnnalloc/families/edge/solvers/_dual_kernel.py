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
projected path keeps every iterate feasible. A step is taken when it satisfies Armijo's
condition and the upper half of strong Wolfe's: near a zero price the dual turns steeply up (a
user's demand :math:`w / (m \pi)` explodes), and a step that lands there lowers the value yet
leaves a gradient that spoils the next curvature pair. Curvature pairs with
:math:`s^\top y \le 0` are skipped, so the implicit Hessian stays positive definite.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["evaluate_dual", "minimise_dual"]


def _compiled(**options):
    """``numba.njit`` with its on-disk cache (the kernels compile once per machine) where
    numba finds a writable cache directory; without one (a read-only install and home, and no
    ``NUMBA_CACHE_DIR``) they compile in every process instead of failing at import."""

    def wrap(function):
        try:
            return njit(cache=True, nogil=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(nogil=True, **options)(function)

    return wrap

#: Exponents below minus this are dropped: e^-40 is far below float64 rounding of the 1 they
#: are added to.
_NEGLIGIBLE = 40.0

#: Halvings of the step before a line search gives up (the step is then below 1e-6 of the first).
_BACKTRACKS = 20


# fastmath explicitly off: numba lets a callee compiled during its caller's compilation inherit
# the caller's fastmath flags, so without this the evaluation inside the minimiser would round
# differently depending on which kernel a process happened to compile first.
@_compiled(fastmath=False)
def evaluate_dual(
    prices, supply, user_start, pair_server, pair_slot, pair_link_weight,
    weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
    gradient, compute, exp_buffer,
):  # pragma: no cover - compiled (the torch reference checks it)
    """Smoothed dual value at ``prices`` (server prices, link prices, then a 0 that home pairs
    read as their link price); writes its gradient (same layout, the last entry is scratch)
    into ``gradient`` and the soft response into ``compute``. Pairs are grouped by user: user
    ``u`` owns pairs ``user_start[u]:user_start[u + 1]``; pair ``p`` pays
    ``prices[pair_server[p]] + pair_link_weight[p] * prices[pair_slot[p]]``."""
    num_prices = supply.shape[0]
    value = 0.0
    for i in range(num_prices):
        gradient[i] = supply[i]
        value += prices[i] * supply[i]
    gradient[num_prices] = 0.0
    num_users = user_start.shape[0] - 1
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
            e = math.exp(shifted) if shifted > -_NEGLIGIBLE else 0.0
            exp_buffer[p] = e
            total += e
        price = -scale[u] * peak if total == 1.0 else -scale[u] * (peak + math.log(total))
        if price < price_floor[u]:
            price = price_floor[u]
        ratio = weight[u] / (minimum[u] * price)
        if ratio < 1.0:
            ratio = 1.0
        if ratio == 1.0:
            utility = 0.0
        elif log_utility:
            utility = math.log(ratio)
        else:
            ratio = ratio ** (1.0 / alpha[u])
            utility = (ratio ** (1.0 - alpha[u]) - 1.0) / (1.0 - alpha[u])
        amount = minimum[u] * ratio
        keep = weight[u] * utility - price * amount
        high = keep if keep > drop[u] else drop[u]
        a = (keep - high) / smooth[u]
        b = (drop[u] - high) / smooth[u]
        if abs(a - b) > _NEGLIGIBLE:  # one branch is certain to rounding: no exp/log needed
            value += high
            bought = amount / total if a > b else 0.0
        else:
            log_sum = max(a, b) + math.log1p(math.exp(-abs(a - b)))
            value += high + smooth[u] * log_sum
            bought = math.exp(a - log_sum) * amount / total
        for p in range(first, last):
            x = bought * exp_buffer[p]
            compute[p] = x
            gradient[pair_server[p]] -= x
            gradient[pair_slot[p]] -= pair_link_weight[p] * x
    return value


@_compiled(fastmath=False)
def _residual(z, g):  # pragma: no cover - compiled
    """:func:`minimise_dual`'s KKT residual at scaled prices ``z`` with scaled gradient ``g``."""
    total = 0.0
    for i in range(z.shape[0]):
        total += z[i] * abs(g[i])
        if g[i] < 0.0:
            total -= g[i]
    return total


# Reassociation lets LLVM vectorise the two-loop recursion's dot products, which are otherwise
# serial chains of dependent additions (two per curvature pair, each over every price).
# No flag that assumes finite values: a non-finite trial value must still fail the line search.
@_compiled(fastmath={"reassoc", "contract"})
def minimise_dual(
    start, price_scale, iterations, memory, tolerance,
    supply, user_start, pair_server, pair_slot, pair_link_weight,
    weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
):  # pragma: no cover - compiled (tests compare it with scipy's L-BFGS-B on the torch dual)
    """Projected L-BFGS on :math:`z = \\text{prices} / c` from ``start``: ``iterations``
    iterations, fewer once no step lowers the value (converged to rounding) or once the KKT
    residual :math:`\\sum_i z_i |g_i| + \\max(-g_i, 0)` (:math:`g = c \\odot \\nabla D`: the
    complementary slackness and the overload of every capacity, each priced at its own scale) is
    at most ``tolerance`` (0: never). Returns the prices, the dual value there, the iterations
    and the evaluations run, and that residual."""
    n = start.shape[0]
    num_pairs = pair_server.shape[0]
    compute = np.empty(num_pairs)
    exp_buffer = np.empty(num_pairs)
    price_gradient = np.empty(n + 1)
    prices = np.zeros(n + 1)  # the last entry stays 0: home pairs' link price

    z = start / price_scale
    for i in range(n):
        prices[i] = z[i] * price_scale[i]
    value = evaluate_dual(
        prices, supply, user_start, pair_server, pair_slot, pair_link_weight,
        weight, minimum, scale, price_floor, drop, smooth, alpha, log_utility,
        price_gradient, compute, exp_buffer,
    )
    evaluations = 1
    g = price_gradient[:n] * price_scale
    s_hist = np.zeros((memory, n))
    y_hist = np.zeros((memory, n))
    rho = np.zeros(memory)
    yy_hist = np.zeros(memory)
    alpha_buf = np.zeros(memory)
    stored = 0
    newest = -1
    free = np.empty(n)
    direction = np.empty(n)
    z_new = np.empty(n)
    done = 0
    residual = _residual(z, g)
    while done < iterations and not residual <= tolerance:  # a NaN residual runs on, as before
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
            gamma = 1.0 / (rho[newest] * yy_hist[newest])  # s'y / y'y of the newest pair
            for i in range(n):
                direction[i] *= gamma
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
        if slope >= 0.0:  # not a descent direction: restart from the projected gradient
            stored = 0
            for i in range(n):
                direction[i] = -g[i] * free[i]
            slope = -norm
        step = 1.0
        if stored == 0:
            # First step (or a restart): move the largest price by at most 1 unit of its scale.
            largest = 0.0
            for i in range(n):
                if abs(direction[i]) > largest:
                    largest = abs(direction[i])
            step = min(1.0, 1.0 / largest)
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
                log_utility, price_gradient, compute, exp_buffer,
            )
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
            # once more from the projected gradient, then stop.
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
        value = new_value
        done += 1
        residual = _residual(z, g)
        if sy > 1e-12 * yy and yy > 0.0:
            rho[newest] = 1.0 / sy
            yy_hist[newest] = yy
            stored = min(stored + 1, memory)
        else:  # curvature pair dropped: step the ring back so it is overwritten
            newest = (newest - 1) % memory
    for i in range(n):
        prices[i] = z[i] * price_scale[i]
    return prices[:n].copy(), value, done, evaluations, residual
