r"""Closed-form water-filling for one shared capacity (the bandwidth subproblem, :math:`\alpha=1`).

.. math::  \max_{y \ge 0} \sum_i w_i f(y_i; m_i) \quad \text{s.t.} \quad \sum_i y_i \le B

With multiplier :math:`\lambda > 0` on the capacity, stationarity gives each user's response

.. math::  y_i(\lambda) = \begin{cases} w_i/\lambda & \lambda \le w_i/m_i \\
                                      m_i & w_i/m_i \le \lambda < k w_i/m_i \\
                                      0 & \lambda > k w_i/m_i \end{cases}

(any point of :math:`[0, m_i]` at :math:`\lambda = k w_i/m_i`). :math:`\sum_i y_i(\lambda)` is
non-increasing, so the optimal :math:`\lambda` is found among the breakpoints or, between two
breakpoints where the sum is :math:`A/\lambda + C`, as :math:`\lambda = A/(B - C)`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["waterfill"]


def _response(lam: float, minimum: np.ndarray, weight: np.ndarray, penalty: float) -> np.ndarray:
    # Dropping first: with k = 1 the drop price is also where the log regime ends.
    return np.where(
        lam >= penalty * weight / minimum,
        0.0,
        np.where(lam <= weight / minimum, weight / lam, minimum),
    )


def waterfill(
    capacity: float, minimum: np.ndarray, weight: np.ndarray, penalty: float
) -> np.ndarray:
    """Optimal split of ``capacity`` among users with log utility above ``minimum``.

    Args:
        capacity: the shared capacity :math:`B \\ge 0`.
        minimum: minimum demands :math:`m_i > 0`.
        weight: weights :math:`w_i > 0`.
        penalty: slope :math:`k \\ge 1` below the minimum.

    Returns:
        The allocation :math:`y`, summing to ``capacity`` (log utility always wants more).
    """
    minimum = np.asarray(minimum, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if minimum.size == 0 or capacity <= 0:
        return np.zeros_like(minimum)
    breaks = np.unique(np.concatenate([weight / minimum, penalty * weight / minimum]))
    # _response is right-continuous: at b = k w_i/m_i user i has already dropped to 0. Just
    # left of b it still holds m_i, so capacities in [total(b), total(b) + plateau] give lambda = b.
    totals = np.array([_response(b, minimum, weight, penalty).sum() for b in breaks])
    for b, after in zip(breaks, totals):
        y = _response(b, minimum, weight, penalty)
        # Dropped exactly at b (to round-off): indifferent between 0 and their minimum.
        plateau = np.isclose(penalty * weight / minimum, b, rtol=1e-12, atol=0.0) & (y == 0)
        if after <= capacity <= after + minimum[plateau].sum():
            # Users on the plateau all have marginal value b: any split of the rest is optimal.
            room = capacity - y.sum()
            for i in np.flatnonzero(plateau):
                y[i] = min(minimum[i], room)
                room -= y[i]
            return y
    # Otherwise lambda lies strictly between breakpoints (or below the first one).
    index = np.searchsorted(-totals, -capacity)  # first breakpoint whose total is below capacity
    lam_hi = breaks[index] if index < breaks.size else np.inf
    probe = breaks[index - 1] if index > 0 else breaks[0] / 2
    probe = (probe + lam_hi) / 2 if np.isfinite(lam_hi) else probe * 2
    in_log = probe <= weight / minimum
    in_mid = ~in_log & (probe < penalty * weight / minimum)
    lam = weight[in_log].sum() / (capacity - minimum[in_mid].sum())
    return _response(lam, minimum, weight, penalty)
