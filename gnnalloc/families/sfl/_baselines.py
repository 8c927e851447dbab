"""Baselines: fixed bandwidth shares, one split layer for every client, and each client as fast
as its energy budget allows.

* ``equal``: every client gets ``1/N`` of the band.
* ``proportional``: every client gets the share its budget needs at the slowest CPU and lowest
  power (its *floor*), plus a part of the rest of the band in proportion to its demand, the
  bandwidth its upload needs at full power relative to ``1/N``: ``D_n / log2(1 + p_max g_n N /
  (W N0))``.

Given its share, a client transmits at ``power_max`` and runs its CPU as fast as the rest of the
budget allows (``f = min(cpu_max, sqrt((E - e_up) / (kappa A)))``); when even ``cpu_min`` does not
fit, it runs at ``cpu_min`` with the highest power that fits (bisection: upload energy
``p D / R(p)`` grows with ``p``). The common split layer is the one with the least maximum
latency among those at which every client meets its budget.
"""

from __future__ import annotations

import math
import time

import numpy as np

from gnnalloc.core import InstanceError, SolveResult
from gnnalloc.families.sfl._allocation import SflAllocation
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import cycles, round_costs, upload_bits, uplink_rate, within_band, within_budgets
from gnnalloc.families.sfl._kernels import min_width

__all__ = ["equal_allocation", "proportional_allocation", "run_equal", "run_proportional"]

_BISECTIONS = 60


def _fastest(instance: SflInstance, layer: np.ndarray, share: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cpu, power, fits): the fastest frequency and power within each budget at ``share``."""
    work, bits = cycles(instance, layer), upload_bits(instance, layer)
    kappa_work = instance.kappa * work

    def upload_energy(power):
        # At zero power the energy per bit tends to N0 ln 2 / g at any share.
        with np.errstate(divide="ignore", invalid="ignore"):
            energy = power * bits / uplink_rate(share, power, instance.gain, instance.bandwidth, instance.noise_psd)
        return np.where(power > 0, energy, bits * math.log(2.0) * instance.noise_psd / instance.gain)

    slowest = kappa_work * instance.cpu_min**2
    full_upload = upload_energy(instance.power_max)
    spare = instance.energy_max - full_upload
    full_power = spare >= slowest
    cpu = np.where(full_power, np.minimum(instance.cpu_max, np.sqrt(np.maximum(spare, 0.0) / kappa_work)), instance.cpu_min)
    cpu = np.maximum(cpu, instance.cpu_min)
    low, high = instance.power_min.copy(), instance.power_max.copy()
    fits = full_power | (upload_energy(low) + slowest <= instance.energy_max)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (low + high)
        ok = upload_energy(mid) + slowest <= instance.energy_max
        low, high = np.where(ok, mid, low), np.where(ok, high, mid)
    fits &= share > 0
    # (Clients that do not fit keep full power: a placeholder with a nonzero rate.)
    power = np.where(full_power | ~fits, instance.power_max, np.maximum(low, np.nextafter(0.0, 1.0)))
    allocation = within_budgets(instance, SflAllocation(layer=layer, share=np.where(fits, share, 1.0), cpu=cpu, power=power))
    return allocation.cpu, allocation.power, fits


def _best_common_layer(instance: SflInstance, shares_for) -> SflAllocation:
    best, best_time, failing = None, math.inf, None
    for j in range(instance.num_layers):
        layer = np.full(instance.num_clients, j, dtype=np.int64)
        share = shares_for(layer)
        if share is None:
            continue
        cpu, power, fits = _fastest(instance, layer, share)
        if not fits.all():
            failing = int(np.flatnonzero(~fits)[0]) if failing is None else failing
            continue
        allocation = SflAllocation(layer=layer, share=share, cpu=cpu, power=power)
        worst = float(round_costs(instance, allocation).latency.max())
        if worst < best_time:
            best, best_time = allocation, worst
    if best is None:
        where = f"clients[{failing}].energy_max" if failing is not None else "server.bandwidth"
        raise InstanceError(where, "the baseline's fixed shares meet this budget at no common split layer")
    return best


def equal_allocation(instance: SflInstance) -> SflAllocation:
    """Equal shares, the best common split, each client as fast as its budget allows.

    Raises:
        InstanceError: naming a client's ``energy_max`` when no common split fits every budget.
    """
    share = within_band(np.full(instance.num_clients, 1.0 / instance.num_clients))
    return _best_common_layer(instance, lambda layer: share)


def proportional_allocation(instance: SflInstance) -> SflAllocation:
    """Each client's energy floor plus a demand-proportional part of the rest (module docstring).

    Raises:
        InstanceError: naming a client's ``energy_max`` or ``server.bandwidth`` when the floors
            fit at no common split layer.
    """
    n = instance.num_clients
    per_client_band = instance.bandwidth / n

    def shares_for(layer):
        bits = upload_bits(instance, layer)
        spare = instance.energy_max - instance.kappa * cycles(instance, layer) * instance.cpu_min**2
        with np.errstate(divide="ignore", invalid="ignore"):
            floor = np.where(spare > 0, min_width(bits * instance.power_min / spare, instance.power_min * instance.gain / instance.noise_psd), np.inf)
        floor = floor / instance.bandwidth
        if not (np.isfinite(floor).all() and floor.sum() < 1.0):
            return None
        demand = bits / np.log2(1.0 + instance.power_max * instance.gain / (per_client_band * instance.noise_psd))
        return within_band(floor + (1.0 - floor.sum()) * demand / demand.sum())

    return _best_common_layer(instance, shares_for)


def run_equal(instance: SflInstance) -> SolveResult:
    """The ``equal`` method."""
    start = time.perf_counter()
    allocation = equal_allocation(instance)
    return SolveResult(allocation=allocation, method="equal", seconds=time.perf_counter() - start)


def run_proportional(instance: SflInstance) -> SolveResult:
    """The ``proportional`` method."""
    start = time.perf_counter()
    allocation = proportional_allocation(instance)
    return SolveResult(allocation=allocation, method="proportional", seconds=time.perf_counter() - start)
