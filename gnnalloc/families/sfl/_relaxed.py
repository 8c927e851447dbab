"""A cheap proven lower bound on the min-max round time: the round without energy budgets.

Without its budget a client is fastest at ``f = cpu_max`` and ``p = power_max`` at every share,
so at a round time ``T`` its least share is ``min_l X_l(T) / W`` with ``X_l`` the closed-form
least width (:func:`min_width`) carrying ``D_l`` bits in ``u_l = T - A_l / cpu_max - t_srv_l -
t_down_l`` seconds at full power. These shares lower-bound the true least shares, so a ``T``
where they sum above 1 is infeasible for the real problem too; bisection on ``T`` gives
``T_relaxed <= T*`` with the shares and energies of the relaxed optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._kernels import min_width
from gnnalloc.families.sfl._model import cycles, fixed_time, upload_bits

__all__ = ["RelaxedRound", "relaxed_round"]


@dataclass(frozen=True)
class RelaxedRound:
    """The budget-free round at its shortest.

    Attributes:
        round_time: ``T_relaxed``, a round time proven infeasible for the real problem (or the
            compute floor, below which no client finishes); the true optimum is above it.
        share: ``(N,)`` each client's least share just above ``round_time`` (they sum to about 1).
        layer: ``(N,)`` the layer of that share.
        energy: ``(N,)`` the energy that split at full speed and power would use.
    """

    round_time: float
    share: np.ndarray
    layer: np.ndarray
    energy: np.ndarray


def _shares(instance: SflInstance, t: float, work, bits, fixed, a) -> tuple[np.ndarray, np.ndarray]:
    u = t - fixed - work / instance.cpu_max[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.where(u > 0, min_width(np.where(u > 0, bits / u, 0.0), a), np.inf)
    return width / instance.bandwidth, u


def relaxed_round(instance: SflInstance, tolerance: float = 1e-6) -> RelaxedRound:
    """:class:`RelaxedRound` of ``instance`` by bisection to ``tolerance`` relative."""
    work, bits, fixed = cycles(instance), upload_bits(instance), fixed_time(instance)
    a = (instance.power_max * instance.gain / instance.noise_psd)[:, None] * np.ones_like(bits)
    lo = float((fixed + work / instance.cpu_max[:, None]).min(axis=1).max())
    hi = 2.0 * lo
    for _ in range(200):
        if _shares(instance, hi, work, bits, fixed, a)[0].min(axis=1).sum() <= 1.0:
            break
        lo, hi = hi, 2.0 * hi
    while hi - lo > tolerance * hi:
        mid = 0.5 * (lo + hi)
        if _shares(instance, mid, work, bits, fixed, a)[0].min(axis=1).sum() <= 1.0:
            hi = mid
        else:
            lo = mid
    share, u = _shares(instance, hi, work, bits, fixed, a)
    layer = share.argmin(axis=1)
    rows = np.arange(instance.num_clients)
    energy = (instance.kappa * instance.cpu_max ** 2 * work[rows, layer]
              + instance.power_max * u[rows, layer])
    return RelaxedRound(round_time=lo, share=share[rows, layer], layer=layer, energy=energy)
