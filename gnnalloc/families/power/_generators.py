r"""Instance generators of the two published GNN power-control benchmarks.

Both share the utility settings (``utility``, ``alpha``, ``penalty``, ``rate_min``) and give
every link weight 1; the same ``(size, seed, settings)`` give the same instance.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable

import numpy as np

from gnnalloc.core import InputError, check_count, check_nonnegative, check_positive, check_seed
from gnnalloc.families.power._instance import DEFAULT_ALPHA, DEFAULT_PENALTY, PowerInstance
from gnnalloc.families.power.functional import UTILITIES

__all__ = [
    "D2D_BANDWIDTH_HZ", "D2D_NOISE_DBM_PER_HZ", "D2D_PMAX_DBM", "MAX_LINKS", "d2d", "gaussian", "itu1411_gain_db",
]

#: Published D2D settings (Shen, Shi, Zhang, Letaief, "Graph neural networks for scalable radio
#: resource management", 2020, following Cui, Shen, Yu, "Spatial deep learning for wireless
#: scheduling", 2019): 40 dBm transmitters, -169 dBm/Hz noise over 5 MHz at 2.4 GHz.
D2D_PMAX_DBM = 40.0
D2D_NOISE_DBM_PER_HZ = -169.0
D2D_BANDWIDTH_HZ = 5e6

#: :func:`d2d` redraws a link's receiver at most this many times in a row before it redraws the
#: link's transmitter too (a transmitter near the field's centre may have almost no admissible
#: receiver position when ``d_min`` is close to the half-diagonal). With ``d_max`` at most the
#: field's side every receiver draw lands inside with probability at least 1/4 (a transmitter in
#: a corner), so the default layouts redraw a transmitter with probability below 0.75**200 per
#: link: their instances are those of the receiver-only loop.
D2D_RECEIVER_DRAWS = 200
#: :func:`d2d` gives up (``ValueError`` naming ``d_min``) after this many transmitter draws per
#: link, i.e. ``D2D_RECEIVER_DRAWS`` times as many rounds of receiver draws.
D2D_TRANSMITTER_DRAWS = 100


#: The most links a generator builds: both draw dense (K, K) arrays, 0.8 GB of float64 each at
#: 10,000 links (ten times the largest benchmark layout), and a MemoryError beyond.
MAX_LINKS = 10_000


def _dbm_to_watt(dbm: float) -> float:
    return 10.0 ** ((dbm - 30.0) / 10.0)


def _named_settings(generator: Callable[..., PowerInstance]) -> Callable[..., PowerInstance]:
    """Unknown settings raise ``ValueError`` naming them (a ``TypeError`` would not name the
    field the CLI and server report)."""
    accepted = [
        name for name, p in inspect.signature(generator).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]

    @functools.wraps(generator)
    def wrapper(*args: Any, **settings: Any) -> PowerInstance:
        for key in settings:
            if key not in accepted:
                raise InputError(f"{key}: unknown setting of {generator.__name__}, expected one of {', '.join(accepted)}")
        return generator(*args, **settings)

    return wrapper


def _check_common(size: Any, seed: Any, utility: Any, alpha: Any, penalty: Any, rate_min: Any) -> None:
    # Named "links", the flag the command line shows for the size (numpy integers count).
    check_count("links", size, 1, MAX_LINKS)
    check_seed(seed)
    if utility not in UTILITIES:
        raise InputError(f"utility: unknown {utility!r}, expected one of {', '.join(UTILITIES)}")
    check_positive("alpha", alpha)
    check_positive("penalty", penalty)
    if penalty < 1:
        raise InputError(f"penalty: must be >= 1, got {penalty!r}")
    check_positive("rate_min", rate_min)


def _links(size: int) -> tuple[str, ...]:
    width = len(str(size - 1))
    return tuple(f"k{k:0{width}d}" for k in range(size))


@_named_settings
def gaussian(
    size: int,
    seed: int = 0,
    *,
    noise: float = 0.1,
    pmax: float = 1.0,
    utility: str = "sum_rate",
    alpha: float = DEFAULT_ALPHA,
    penalty: float = DEFAULT_PENALTY,
    rate_min: float = 0.1,
) -> PowerInstance:
    r"""The Gaussian interference channel (Sun et al., "Learning to optimize", 2018; Shen et al.'s
    IGCNet benchmark).

    Every channel coefficient, direct and cross, is i.i.d. :math:`h_{kj} \sim \mathcal{CN}(0, 1)`,
    so every power gain :math:`g_{kj} = |h_{kj}|^2 \sim \mathrm{Exp}(1)` (mean 1); all
    :math:`K^2` gains are stored. ``pmax = 1`` and ``noise = 0.1`` (10 dB SNR at unit gain).

    Args:
        size: number of links :math:`1 \le K \le` :data:`MAX_LINKS`.
        seed: random seed.
        noise, pmax: noise power and per-link power budget.
        utility, alpha, penalty: the instance's utility (see :class:`PowerInstance`).
        rate_min: every link's minimum rate in bits/s/Hz (used by ``alpha_fair``).
    """
    _check_common(size, seed, utility, alpha, penalty, rate_min)
    size = int(size)
    check_positive("noise", noise)
    check_positive("pmax", pmax)
    rng = np.random.default_rng(seed)
    gains = rng.exponential(1.0, (size, size))
    return PowerInstance.build(
        _links(size), np.full(size, float(pmax)), gains, noise, None, np.full(size, float(rate_min)),
        utility, alpha, penalty,
    )


def itu1411_gain_db(distance_m: np.ndarray, carrier_hz: float, height_m: float) -> np.ndarray:
    r"""Path gain in dB of ITU-R P.1411's short-range line-of-sight model (two-slope):

    .. math::

        L = L_{bp} + 6 + \begin{cases} 20 \log_{10}(d/R_{bp}) & d \le R_{bp} \\
        40 \log_{10}(d/R_{bp}) & d > R_{bp} \end{cases},
        \quad R_{bp} = \frac{4 h_1 h_2}{\lambda},
        \quad L_{bp} = \left|20 \log_{10} \frac{\lambda^2}{8 \pi h_1 h_2}\right|,

    with both antennas at ``height_m``; returns :math:`-L`.
    """
    wavelength = 2.998e8 / carrier_hz
    breakpoint = 4.0 * height_m * height_m / wavelength
    at_breakpoint = abs(20.0 * math.log10(wavelength**2 / (8.0 * math.pi * height_m * height_m)))
    slope = 20.0 * np.log10(distance_m / breakpoint)
    loss = at_breakpoint + 6.0 + slope + np.where(distance_m > breakpoint, slope, 0.0)
    return -loss


@_named_settings
def d2d(
    size: int,
    seed: int = 0,
    *,
    density: float = 200.0,
    d_min: float = 2.0,
    d_max: float = 40.0,
    shadowing_db: float = 8.0,
    pmax_dbm: float = D2D_PMAX_DBM,
    noise_dbm_per_hz: float = D2D_NOISE_DBM_PER_HZ,
    bandwidth_hz: float = D2D_BANDWIDTH_HZ,
    carrier_hz: float = 2.4e9,
    antenna_height_m: float = 1.5,
    antenna_gain_db: float = 2.5,
    prune: float = 1e-3,
    utility: str = "sum_rate",
    alpha: float = DEFAULT_ALPHA,
    penalty: float = DEFAULT_PENALTY,
    rate_min: float = 0.1,
) -> PowerInstance:
    r"""A spatial device-to-device layout at constant density, the setting of Shen et al.'s
    MPGNN ("Graph neural networks for scalable radio resource management", 2020) and Cui, Shen
    and Yu ("Spatial deep learning for wireless scheduling", 2019).

    * Transmitters uniform in a square of side :math:`\sqrt{K/\text{density}}` (``density`` in
      links per km²; the default 200 is the published 50 links in 500 m x 500 m, so larger
      :math:`K` means a larger area, not a denser one).
    * Each receiver at distance :math:`U[d_{min}, d_{max}]` m (default 2..40 m) from its
      transmitter in a uniform direction, redrawn until it lies in the square; after
      :data:`D2D_RECEIVER_DRAWS` misses in a row the transmitter is redrawn as well.
      :math:`d_{min}` must be below the square's diagonal (else no transmitter has a receiver
      position); above the half-diagonal only transmitters near a corner have one, found by those
      redraws, which stop after :data:`D2D_TRANSMITTER_DRAWS` placements per link.
    * Distances between a transmitter and other links' receivers are floored at 1 m.
    * Path gain: ITU-R P.1411 short-range LOS (:func:`itu1411_gain_db`) at 2.4 GHz with 1.5 m
      antennas, plus ``antenna_gain_db`` (2.5 dBi) on direct links only.
    * Log-normal shadowing, i.i.d. :math:`\mathcal{N}(0, 8^2)` dB per (receiver, transmitter)
      pair, and Rayleigh fading, :math:`|h|^2 \sim \mathrm{Exp}(1)`, per pair.
    * ``pmax`` 40 dBm (10 W) on every link; noise :math:`-169` dBm/Hz over 5 MHz
      (about 6.3e-14 W). Gains are in W/W, so they span roughly 1e-16..1e-6.
    * Pruning: at each receiver the weakest cross gains are dropped while their total
      interference at full power stays at most ``prune`` times the receiver's noise plus total
      full-power interference (``prune=0`` keeps all :math:`K^2 - K`). At full power every
      SINR therefore changes by a factor within :math:`[1, 1/(1-\text{prune})]`; the instance
      is the pruned network, for every method alike.

    Args:
        size: number of links :math:`1 \le K \le` :data:`MAX_LINKS` (the benchmarks use 20..1000).
        seed: random seed.
        density, d_min, d_max, shadowing_db, pmax_dbm, noise_dbm_per_hz, bandwidth_hz,
            carrier_hz, antenna_height_m, antenna_gain_db, prune: the layout (see above).
        utility, alpha, penalty: the instance's utility (see :class:`PowerInstance`).
        rate_min: every link's minimum rate in bits/s/Hz (used by ``alpha_fair``).

    Raises:
        ValueError: naming the bad setting; ``density`` when the field would be infinite;
            ``d_min`` when it is not below the square's diagonal, or when no receiver position
            was found within the capped draws (a layout that cannot be met; ``d_max`` there if
            it reaches the diagonal).
    """
    _check_common(size, seed, utility, alpha, penalty, rate_min)
    size = int(size)
    for name, value in (
        ("density", density), ("d_min", d_min), ("d_max", d_max), ("bandwidth_hz", bandwidth_hz),
        ("carrier_hz", carrier_hz), ("antenna_height_m", antenna_height_m),
    ):
        check_positive(name, value)
    for name, value in (("shadowing_db", shadowing_db), ("prune", prune)):
        check_nonnegative(name, value)
    for name, value in (("pmax_dbm", pmax_dbm), ("noise_dbm_per_hz", noise_dbm_per_hz), ("antenna_gain_db", antenna_gain_db)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{name}: must be a finite number, got {value!r}")
    if d_min > d_max:
        raise InputError(f"d_max: must be >= d_min ({d_min}), got {d_max!r}")
    if prune >= 1:
        raise InputError(f"prune: must be < 1, got {prune!r}")
    side = 1000.0 * math.sqrt(size / density)
    if not math.isfinite(side):  # size / density beyond float's range
        raise InputError(f"density: {density!r} per km^2 spreads {size} links over an infinite field")
    # No two points of the square are a diagonal or more apart: from there no transmitter has a
    # receiver position. Below it a transmitter near a corner has some (one near the centre may
    # not, above the half-diagonal); the draws below place such transmitters anew, and give up
    # with a named error after a bounded number of tries.
    diagonal = side * math.sqrt(2.0)
    if d_min >= diagonal:
        raise InputError(
            f"d_min: {d_min} m leaves no receiver position in the field of side {side:.3g} m "
            f"(diagonal {diagonal:.3g} m) of {size} links at density {density} per km^2; "
            "lower d_min or the density"
        )
    rng = np.random.default_rng(seed)
    tx = rng.uniform(0.0, side, (size, 2))
    rx = np.empty_like(tx)
    todo = np.arange(size)
    misses = np.zeros(size, dtype=np.int64)  # receiver draws outside the square since the link's transmitter
    for _ in range(D2D_RECEIVER_DRAWS * D2D_TRANSMITTER_DRAWS):
        if not todo.size:
            break
        distance = rng.uniform(d_min, d_max, todo.size)
        angle = rng.uniform(0.0, 2.0 * math.pi, todo.size)
        rx[todo] = tx[todo] + distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        inside = ((rx[todo] >= 0.0) & (rx[todo] <= side)).all(axis=1)
        todo = todo[~inside]
        misses[todo] += 1
        # A transmitter whose receivers keep missing the square may have almost no room around
        # it: place it anew (the default layouts practically never get here, D2D_RECEIVER_DRAWS).
        stale = todo[misses[todo] >= D2D_RECEIVER_DRAWS]
        if stale.size:
            tx[stale] = rng.uniform(0.0, side, (stale.size, 2))
            misses[stale] = 0
    if todo.size:
        # Beyond the diagonal d_max only adds draws that miss the field: name it where it is there.
        bound = "d_max" if d_max >= diagonal else "d_min"
        raise InputError(
            f"{bound}: no receiver at {d_min}..{d_max} m from link {int(todo[0])}'s transmitter fell in the "
            f"field of side {side:.3g} m in {D2D_TRANSMITTER_DRAWS} transmitter positions of "
            f"{D2D_RECEIVER_DRAWS} draws each; lower {bound} or the density"
        )
    # distance[k, j]: from link j's transmitter to link k's receiver.
    distance = np.maximum(np.linalg.norm(rx[:, None, :] - tx[None, :, :], axis=-1), 1.0)
    gain_db = itu1411_gain_db(distance, carrier_hz, antenna_height_m)
    gain_db[np.arange(size), np.arange(size)] += antenna_gain_db
    gain_db += rng.normal(0.0, shadowing_db, (size, size)) if shadowing_db > 0 else 0.0
    gains = 10.0 ** (gain_db / 10.0) * rng.exponential(1.0, (size, size))
    pmax = _dbm_to_watt(pmax_dbm)
    noise = _dbm_to_watt(noise_dbm_per_hz) * bandwidth_hz
    if prune > 0:
        gains = _prune(gains, pmax, noise, prune)
    return PowerInstance.build(
        _links(size), np.full(size, pmax), gains, noise, None, np.full(size, float(rate_min)),
        utility, alpha, penalty,
    )


def _prune(gains: np.ndarray, pmax: float, noise: float, prune: float) -> np.ndarray:
    """Zero each receiver's weakest cross gains whose summed full-power interference is at most
    ``prune`` times its noise plus total full-power interference."""
    size = gains.shape[0]
    cross = gains.copy()
    np.fill_diagonal(cross, 0.0)
    received = cross * pmax
    order = np.argsort(received, axis=1)  # weakest first
    cumulative = np.cumsum(np.take_along_axis(received, order, axis=1), axis=1)
    budget = prune * (noise + received.sum(axis=1, keepdims=True))
    drop = np.zeros_like(cross, dtype=bool)
    np.put_along_axis(drop, order, cumulative <= budget, axis=1)
    out = gains.copy()
    out[drop & ~np.eye(size, dtype=bool)] = 0.0
    return out
