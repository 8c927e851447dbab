"""The exact min-max solver: a certified bracket on the round time ``T``, each client's least bandwidth
share at a given ``T`` in closed form up to 1-D searches.

**Per client at a given T.** Fix a split layer and a frequency ``f``. The client has the upload
time ``u = T - t_srv - t_down - A / f`` (``A = S device_flops c`` cycles) and the upload energy
``E_up = energy_max - kappa f^2 A`` left. Sending ``D`` bits with power ``p`` and width ``x`` takes
``D / R`` seconds and ``p D / R`` joules, and ``p / R`` grows with ``p`` (``R`` is concave in ``p``
with ``R(0) = 0``), so

* if ``E_up / u`` lies in ``[power_min, power_max]``, the least width sends at ``p = E_up / u``
  for exactly ``u`` seconds (rate ``D / u``);
* above ``power_max`` it sends at ``power_max`` (rate ``D / u``);
* below ``power_min`` it sends at ``power_min`` for less than ``u`` (rate ``D power_min / E_up``),

that is ``p = clip(E_up / u, power_min, power_max)`` and rate ``r = D max(1/u, p / E_up)``; the
least width carrying ``r`` at ``p`` is the closed form :func:`min_width`. It is finite iff
``E_up > D N0 ln 2 / g`` (the energy of ``D`` bits over an unbounded band) and
``u > D N0 ln 2 / (g power_max)``, an interval of frequencies. The least width ``X(u, E_up)`` is
non-increasing in both arguments, and for a fixed width the least energy over ``f`` is convex
(``kappa A f^2`` plus a convex non-increasing function of the concave ``u(f)``), so every sublevel
set of the least width over ``f`` is an interval: it is quasi-convex in ``f`` and a golden-section
search finds its minimum. On the final bracket ``[a, b]``, ``X(u(b), E_up(a))`` is a proven lower
bound (``u`` increases and ``E_up`` decreases in ``f``). The client takes the layer of least width.

**Bracketing.** The least shares decrease in ``T``; ``T`` is feasible iff they sum to at most 1.
The bracket shrinks by the Illinois method on the excess ``sum of shares - 1`` with bisection
steps as safeguard (every ``T`` tried is classified, so the bracket stays a certificate). A ``T``
whose shares sum above 1 while their lower bounds do not is undecided; the round times
``T (1 +- 0.45 tolerance)`` around it are probed instead (:func:`near_probes`).
A ``T`` where the lower bounds of the shares sum above 1 is proven infeasible: the bracket
``[T_lo, T_hi]`` (``T_lo`` infeasible, ``T_hi`` achieved) certifies the optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gnnalloc.core import InputError, InstanceError
from gnnalloc.families.sfl._allocation import SflAllocation
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import cycles, fixed_time, upload_bits, uplink_rate, within_band, within_budgets
from gnnalloc.families.sfl._kernels import least_shares

__all__ = [
    "CERTIFIED_GAP", "PROBE_FRACTION", "ExactSolution", "client_shares", "near_probes", "solve_exact", "solo_energy",
]

_LN2 = math.log(2.0)
#: Relative bracket at and below which a result counts as certified optimal.
CERTIFIED_GAP = 1e-6
#: Where a round time is undecided (its least shares sum above 1, their lower bounds not), the
#: solvers probe this fraction of the tolerance above and below it: a little under a half, so that
#: the bracket between the two probes, ``2 PROBE_FRACTION tolerance`` relative, meets the stopping
#: rule despite the rounding of the products.
PROBE_FRACTION = 0.45


@dataclass(frozen=True)
class ClientShares:
    """Every client's least share at one round time, ``(N,)`` each.

    Attributes:
        share: the least share found (achieved by ``layer``, ``cpu``, ``power``), ``inf`` if none.
        lower: a proven lower bound on the least share.
        layer, cpu, power: the decisions achieving ``share``.
    """

    share: np.ndarray
    lower: np.ndarray
    layer: np.ndarray
    cpu: np.ndarray
    power: np.ndarray


def client_shares(
    instance: SflInstance, round_time: float | np.ndarray, allowed: np.ndarray | None = None,
    iterations: int = 64,
) -> ClientShares:
    """Each client's least bandwidth share meeting ``t_n <= round_time`` and its energy budget
    (see the module docstring), with a proven lower bound on it.

    Args:
        instance: the instance.
        round_time: ``T``, a scalar or one per client ``(N,)``.
        allowed: ``(N, L)`` bool, the layers each client may split at (default: every layer).
        iterations: golden-section steps over the frequency (each shrinks the bracket by 0.618).
    """
    n = instance.num_clients
    T = np.asarray(round_time, dtype=np.float64)
    budget = (T[:, None] if T.ndim == 1 else T) - fixed_time(instance)
    if allowed is None:
        allowed = np.ones((n, instance.num_layers), dtype=bool)
    share, lower, cpu, power = (np.empty(n) for _ in range(4))
    layer = np.empty(n, dtype=np.int64)
    least_shares(
        np.ascontiguousarray(budget), cycles(instance), upload_bits(instance),
        instance.gain / instance.noise_psd, instance.kappa, instance.energy_max, instance.power_min,
        instance.power_max, instance.cpu_min, instance.cpu_max, np.ascontiguousarray(allowed),
        float(instance.bandwidth), int(iterations), share, lower, layer, cpu, power,
    )
    return ClientShares(share=share, lower=lower, layer=layer, cpu=cpu, power=power)


def solo_energy(instance: SflInstance) -> np.ndarray:
    """``(N, L)``: the least energy each client needs at each layer with the whole band, the
    slowest CPU and the lowest power (over an unbounded round time). A client whose budget is
    below it at every layer can meet its budget at no split."""
    work = cycles(instance)
    bits = upload_bits(instance)
    gain_noise = (instance.gain / instance.noise_psd)[:, None]
    p_min = instance.power_min[:, None]
    rate = uplink_rate(np.ones_like(p_min), p_min, gain_noise * instance.noise_psd, instance.bandwidth, instance.noise_psd)
    with np.errstate(divide="ignore", invalid="ignore"):
        upload = np.where(p_min > 0, p_min * bits / rate, bits * _LN2 / gain_noise)
    return instance.kappa[:, None] * instance.cpu_min[:, None] ** 2 * work + upload


def check_energy_feasible(instance: SflInstance, allowed: np.ndarray | None = None) -> None:
    """``InstanceError`` naming the first client's ``energy_max`` that no split layer meets."""
    need = solo_energy(instance)
    if allowed is not None:
        need = np.where(allowed, need, np.inf)
    least = need.min(axis=1)
    bad = ~(least < instance.energy_max)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        others = int(bad.sum()) - 1
        raise InstanceError(
            f"clients[{i}].energy_max",
            f"no split layer meets the budget {instance.energy_max[i]:g} J: the least any layer needs is "
            f"{least[i]:g} J (slowest CPU, lowest power, the whole band)"
            + (f"; {others} more client(s) likewise" if others else ""),
        )


@dataclass(frozen=True)
class ExactSolution:
    """The exact solver's answer.

    Attributes:
        allocation: the allocation at ``t_upper`` with the leftover band shared out.
        t_lower: a round time proven infeasible (every feasible allocation has ``max t_n > t_lower``).
        t_upper: a round time achieved by ``allocation`` (its ``max t_n <= t_upper``).
        evaluations: round times evaluated.
        status: ``"optimal"`` when ``(t_upper - t_lower) / t_upper <= tolerance``, else ``"stalled"``
            (a round time and the two probes around it, :func:`near_probes`, could not be told
            feasible or infeasible: the lower bounds are not tight enough there).
    """

    allocation: SflAllocation
    t_lower: float
    t_upper: float
    evaluations: int
    status: str

    @property
    def relative_gap(self) -> float:
        return (self.t_upper - self.t_lower) / self.t_upper


def _allocation(instance: SflInstance, found: ClientShares) -> SflAllocation:
    # More band only shortens uploads and saves their energy at the same power: share the leftover
    # in proportion to the least shares.
    share = within_band(found.share / found.share.sum())
    return within_budgets(instance, SflAllocation(layer=found.layer, share=share, cpu=found.cpu, power=found.power))


def _layer_indices(instance: SflInstance, layers: object) -> np.ndarray:
    """``layers`` as ``(N,)`` int64 indices into ``instance.layer_names``, or ``ValueError``
    naming them: a float would be truncated (0.7 -> 0) and a negative index count from the end."""
    array = np.asarray(layers)
    n = instance.num_clients
    if array.shape != (n,):
        raise InputError(f"layers: expected {n} layer indices (one per client), got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise InputError(f"layers: expected integer layer indices, got dtype {array.dtype}")
    bad = (array < 0) | (array >= instance.num_layers)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"layers[{i}]: no layer with index {int(array[i])} (the instance has {instance.num_layers})")
    return array.astype(np.int64)


def solve_exact(
    instance: SflInstance, tolerance: float = 1e-9, layers: np.ndarray | None = None,
    max_doublings: int = 200,
) -> ExactSolution:
    """The min-max round time by bisection (module docstring), to ``tolerance`` relative.

    Args:
        instance: the instance (its ``objective`` is ignored: this is the min-max problem).
        tolerance: the relative bracket ``(T_hi - T_lo) / T_hi`` to stop at.
        layers: ``(N,)`` fixed split layer indices, or ``None`` to optimise the splits.

    Raises:
        InstanceError: at ``clients[i].energy_max`` when a client meets its budget at no split,
            at ``server.bandwidth`` when the budgets together need more than the band at any T.
        ValueError: naming ``tolerance`` when it is not in (0, 1), ``layers`` (or ``layers[i]``)
            when they are not one index of an existing layer per client.
    """
    if not (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and 0 < tolerance < 1):
        raise InputError(f"tolerance: must be a number in (0, 1), got {tolerance!r}")
    allowed = None
    if layers is not None:
        layers = _layer_indices(instance, layers)
        allowed = np.zeros((instance.num_clients, instance.num_layers), dtype=bool)
        allowed[np.arange(instance.num_clients), layers] = True
    check_energy_feasible(instance, allowed)
    # Below the fastest device time plus the fixed times no client finishes: proven infeasible.
    floor = cycles(instance) / instance.cpu_max[:, None] + fixed_time(instance)
    if allowed is not None:
        floor = np.where(allowed, floor, np.inf)
    t_lower = float(floor.min(axis=1).max())
    evaluations = 0

    def evaluate(t):
        nonlocal evaluations
        evaluations += 1
        return client_shares(instance, t, allowed)

    t_upper, best = 2.0 * t_lower, None
    for _ in range(max_doublings):
        found = evaluate(t_upper)
        if found.share.sum() <= 1.0:
            best = found
            break
        if found.lower.sum() > 1.0:
            t_lower = t_upper
        t_upper *= 2.0
    if best is None:
        need = client_shares(instance, t_upper, allowed).lower.sum()
        raise InstanceError(
            "server.bandwidth",
            f"the clients' energy budgets need {need:.6g} times the band even at a round time of {t_upper:.3g} s",
        )
    status = "optimal"
    # Excess band (sum of the least shares found - 1) at the ends: <= 0 at t_upper, > 0 (or
    # inf, where some client cannot finish) at t_lower.
    excess_upper, excess_lower = float(best.share.sum()) - 1.0, math.inf
    last_end, checkpoint, steps = 0, t_upper - t_lower, 0
    while t_upper - t_lower > tolerance * t_upper:
        width = t_upper - t_lower
        steps += 1
        if math.isfinite(excess_lower) and (steps % 3 or width < 0.5 * checkpoint):
            # Illinois (regula falsi that halves the excess of an end kept twice in a row),
            # kept off the ends so that both move.
            mid = t_upper - excess_upper * width / (excess_upper - excess_lower)
            mid = min(max(mid, t_lower + 1e-3 * width), t_upper - 1e-3 * width)
        else:
            # Bisection (geometric while the bracket spans orders of magnitude) until the
            # lower end is finite, and whenever three steps did not halve the bracket.
            mid = math.sqrt(t_lower * t_upper) if t_upper > 4.0 * t_lower > 0 else 0.5 * (t_lower + t_upper)
        if steps % 3 == 0:
            checkpoint = width
        found = evaluate(mid)
        used = float(found.share.sum())
        if used <= 1.0:
            t_upper, best, excess_upper = mid, found, used - 1.0
            if last_end == 1:
                excess_lower *= 0.5
            last_end = 1
        elif found.lower.sum() > 1.0:
            t_lower, excess_lower = mid, used - 1.0
            if last_end == -1:
                excess_upper *= 0.5
            last_end = -1
        else:
            # Undecided: mid lies within the lower bounds' accuracy of the root. Just above and
            # just below it the two sums usually fall on one side of 1 each, a bracket within the
            # tolerance; give up only if a probe is undecided too or nothing moved.
            width_before, decided = t_upper - t_lower, True
            for probe in near_probes(mid, tolerance, t_lower, t_upper):
                near = evaluate(probe)
                near_used = float(near.share.sum())
                if near_used <= 1.0:
                    t_upper, best, excess_upper = probe, near, near_used - 1.0
                elif near.lower.sum() > 1.0:
                    t_lower, excess_lower = probe, near_used - 1.0
                else:
                    decided = False
            last_end = 0
            if not decided or t_upper - t_lower >= width_before:
                status = "stalled"
                break
    return ExactSolution(_allocation(instance, best), t_lower, t_upper, evaluations, status)


def near_probes(mid: float, tolerance: float, t_lower: float, t_upper: float) -> list[float]:
    """The round times ``mid (1 + PROBE_FRACTION tolerance)`` and ``mid (1 - PROBE_FRACTION
    tolerance)`` that lie strictly inside ``(t_lower, t_upper)``: probed where ``mid`` was
    undecided, so that, both decided, the bracket is at most ``2 PROBE_FRACTION tolerance``
    relative, within the stopping rule."""
    probes = (mid * (1.0 + PROBE_FRACTION * tolerance), mid * (1.0 - PROBE_FRACTION * tolerance))
    return [t for t in probes if t_lower < t < t_upper]
