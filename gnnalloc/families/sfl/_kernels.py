"""The least bandwidth carrying a rate at a given power (the closed-form inverse of the rate
formula), and each client's least share at a round time: compiled scalar kernels (numba) shared
by the exact solver and the baselines."""

from __future__ import annotations

import math

import numpy as np

from gnnalloc.core import compiled

__all__ = ["least_shares", "min_width"]

_LN2 = math.log(2.0)
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0

# IEEE division (inf, nan) as numpy does: the kernels test the results.
_compiled = compiled(error_model="numpy")


@_compiled
def _width(rate, snr_width):  # pragma: no cover - compiled
    """The least ``x >= 0`` with ``x log2(1 + a / x) >= r`` (see :func:`min_width`)."""
    if rate <= 0.0:
        return 0.0
    if not snr_width > 0.0:
        return math.inf
    k = rate * _LN2 / snr_width
    if not k < 1.0:
        return math.inf
    log_k = math.log(k)
    if k < 0.3:
        l1 = log_k - k
        l2 = math.log(-l1)
        w = l1 - l2 + l2 / l1
    else:
        q = math.sqrt(2.0 * max(-math.expm1(log_k + 1.0 - k), 0.0))
        w = -1.0 - q - q * q / 3.0 - 11.0 / 72.0 * q * q * q
    y = max(-w / k - 1.0, 1.5 * (1.0 / k - 1.0) + 1e-300)
    for iteration in range(100):
        h = math.log1p(y) - k * y
        slope = 1.0 / (1.0 + y) - k
        step = h / slope
        if iteration > 0:
            if not step > 4e-16 * y:
                break
        y -= step
    return snr_width / y


@_compiled
def _min_width_loop(rate, snr_width, out):  # pragma: no cover - compiled
    for i in range(rate.shape[0]):
        out[i] = _width(rate[i], snr_width[i])


def min_width(rate: np.ndarray, snr_width: np.ndarray) -> np.ndarray:
    """The smallest ``x >= 0`` (Hz) with ``x log2(1 + a / x) >= r``, where ``a = p g / N0``.

    ``x log2(1 + a/x)`` increases in ``x`` towards ``a / ln 2``, so a solution exists iff
    ``k = r ln 2 / a < 1`` (``inf`` otherwise; 0 for ``r = 0``). With ``y = a / x`` the equation
    is ``ln(1 + y) = k y``, whose positive root is ``y = -W_{-1}(-k e^{-k}) / k - 1`` (Lambert W,
    lower branch). It is computed by Newton's method on the concave ``h(y) = ln(1+y) - k y``
    from the branch's series: any start right of the peak of ``h`` (``y = 1/k - 1``) lands right
    of the root after one step (the tangent of a concave function lies above it), from where the
    iterates decrease monotonically to the root. Then ``x = a / y``.
    """
    rate, a = np.broadcast_arrays(np.asarray(rate, dtype=np.float64), np.asarray(snr_width, dtype=np.float64))
    out = np.empty(rate.size)
    _min_width_loop(np.ascontiguousarray(rate).ravel(), np.ascontiguousarray(a).ravel(), out)
    return out.reshape(rate.shape)


@_compiled
def _least_width(u, e_up, bits, gain_noise, power_min, power_max):  # pragma: no cover - compiled
    """``X(u, E_up)`` and its power: the least width sending ``bits`` within time ``u`` and
    energy ``e_up`` (``inf`` where none does)."""
    if not (u > 0.0 and e_up > 0.0):
        return math.inf, power_min
    power = min(max(e_up / u, power_min), power_max)
    rate = bits * max(1.0 / u, power / e_up)
    return _width(rate, power * gain_noise), power


@_compiled
def least_shares(
    budget, work, bits, gain_noise, kappa, energy, power_min, power_max, cpu_min, cpu_max,
    allowed, bandwidth, iterations, share, lower, layer, cpu, power,
):  # pragma: no cover - compiled (the exact solver's tests check it)
    """Each client's least share at one round time (``gnnalloc.families.sfl._exact``).

    ``budget[n, l] = T_n - t_srv - t_down`` and ``work``, ``bits`` are ``(N, L)``; the client
    arrays ``(N,)``. Writes per client the least share found, a proven lower bound on it, and the
    layer, frequency and power achieving it (``inf`` share where no layer is feasible)."""
    n, num_layers = budget.shape
    low_f = np.empty(num_layers)
    high_f = np.empty(num_layers)
    coarse = np.empty(num_layers)
    for i in range(n):
        best, best_lower = math.inf, math.inf
        layer[i], cpu[i], power[i] = 0, cpu_min[i], power_min[i]
        # Each layer's frequency interval and a proven bound on its least width over all of it
        # (longest upload time, most energy left): layers are searched in the order of these
        # bounds, and one whose bound is no better than the best found is skipped.
        for j in range(num_layers):
            coarse[j] = math.inf
            if not allowed[i, j]:
                continue
            a_work, d_bits, t = work[i, j], bits[i, j], budget[i, j]
            kw = kappa[i] * a_work
            bit_energy = d_bits * _LN2 / gain_noise[i]
            room = t - bit_energy / power_max[i]
            if not room > 0.0 or not energy[i] > bit_energy:
                continue
            lo = max(cpu_min[i], a_work / room)
            hi = min(cpu_max[i], math.sqrt((energy[i] - bit_energy) / kw))
            if not lo <= hi:
                continue
            low_f[j], high_f[j] = lo, hi
            coarse[j] = _least_width(t - a_work / hi, energy[i] - kw * lo * lo, d_bits, gain_noise[i], power_min[i], power_max[i])[0]
        for j in np.argsort(coarse):
            if coarse[j] == math.inf:
                break
            if coarse[j] >= best:
                best_lower = min(best_lower, coarse[j])
                continue
            a_work, d_bits, t = work[i, j], bits[i, j], budget[i, j]
            kw = kappa[i] * a_work
            lo, hi = low_f[j], high_f[j]
            a, b = lo, hi
            c = b - _INV_PHI * (b - a)
            d = a + _INV_PHI * (b - a)
            wc = _least_width(t - a_work / c, energy[i] - kw * c * c, d_bits, gain_noise[i], power_min[i], power_max[i])[0]
            wd = _least_width(t - a_work / d, energy[i] - kw * d * d, d_bits, gain_noise[i], power_min[i], power_max[i])[0]
            for _ in range(iterations):
                if wc <= wd:  # the minimum lies in [a, d]
                    b, d, wd = d, c, wc
                    c = b - _INV_PHI * (b - a)
                    wc = _least_width(t - a_work / c, energy[i] - kw * c * c, d_bits, gain_noise[i], power_min[i], power_max[i])[0]
                else:
                    a, c, wc = c, d, wd
                    d = a + _INV_PHI * (b - a)
                    wd = _least_width(t - a_work / d, energy[i] - kw * d * d, d_bits, gain_noise[i], power_min[i], power_max[i])[0]
            # Proven: on [a, b] the upload time is at most u(b) and the energy at most E_up(a).
            bound = _least_width(t - a_work / b, energy[i] - kw * a * a, d_bits, gain_noise[i], power_min[i], power_max[i])[0]
            # The best of the last probes and the box ends (the optimum often sits at cpu_max).
            for f in (c, d, lo, hi):
                w, p = _least_width(t - a_work / f, energy[i] - kw * f * f, d_bits, gain_noise[i], power_min[i], power_max[i])
                if w < best:
                    best, layer[i], cpu[i], power[i] = w, j, f, p
            best_lower = min(best_lower, bound)
        share[i] = best / bandwidth
        lower[i] = min(best_lower, best) / bandwidth
