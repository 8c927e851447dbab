"""The least bandwidth carrying a rate at a given power: the closed-form inverse of the rate
formula, shared by the exact solver and the baselines."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["min_width"]

_LN2 = math.log(2.0)


def min_width(rate: np.ndarray, snr_width: np.ndarray) -> np.ndarray:
    """The smallest ``x >= 0`` (Hz) with ``x log2(1 + a / x) >= r``, where ``a = p g / N0``.

    ``x log2(1 + a/x)`` increases in ``x`` towards ``a / ln 2``, so a solution exists iff
    ``k = r ln 2 / a < 1`` (``inf`` otherwise). With ``y = a / x`` the equation is
    ``ln(1 + y) = k y``, whose positive root is ``y = -W_{-1}(-k e^{-k}) / k - 1`` (Lambert W,
    lower branch). It is computed by Newton's method on the concave ``h(y) = ln(1+y) - k y`` from
    a start from the branch's series, then ``x = a / y``.

    Args:
        rate: required rate ``r`` in bits/s, ``>= 0``.
        snr_width: ``a = p g / N0`` in Hz, ``>= 0``.
    """
    rate, a = np.broadcast_arrays(np.asarray(rate, dtype=np.float64), np.asarray(snr_width, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = rate * _LN2 / a
    solvable = (k < 1) & (k > 0)
    k = np.where(solvable, k, 0.5)
    # Starting point from the series of W_{-1}: near z = 0 (small k) and near the branch point.
    log_k = np.log(k)
    l1 = log_k - k  # ln(-z) for z = -k e^{-k}
    l2 = np.log(-l1)
    w_far = l1 - l2 + l2 / l1
    q = np.sqrt(2.0 * np.maximum(-np.expm1(log_k + 1.0 - k), 0.0))
    w_near = -1.0 - q - q * q / 3.0 - 11.0 / 72.0 * q**3
    w = np.where(k < 0.3, w_far, w_near)
    # Any start right of the peak of h (y = 1/k - 1) lands right of the root after one Newton
    # step (the tangent of a concave function lies above it); from there the iterates decrease
    # monotonically to the root.
    y = np.maximum(-w / k - 1.0, 1.5 * (1.0 / k - 1.0) + 1e-300)
    for iteration in range(100):
        h = np.log1p(y) - k * y
        slope = 1.0 / (1.0 + y) - k
        step = h / slope
        if iteration > 0:
            # Rounding must not push an iterate left of the root.
            step = np.maximum(step, 0.0)
        y = y - step
        if iteration > 0 and not (step > 4e-16 * y).any():
            break
    with np.errstate(divide="ignore"):
        x = a / y
    x = np.where(rate <= 0, 0.0, x)
    return np.where(solvable | (rate <= 0), x, np.inf)
