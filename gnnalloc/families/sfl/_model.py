"""The latency and energy model of a split-federated-learning round: pure, vectorised over
clients (numpy arrays in, arrays out).

Client ``n`` with split layer ``l``, share ``beta``, frequency ``f`` and power ``p`` (``S`` samples,
``c`` cycles per FLOP, channel gain ``g``, band ``W``, noise density ``N0``):

* uplink rate ``R = beta W log2(1 + p g / (beta W N0))`` (the noise is over the client's own
  share of the band; ``R = 0`` at ``beta = 0``);
* device compute ``t_dev = S device_flops_l c / f``, energy ``e_dev = kappa f^2 S device_flops_l c``;
* upload ``t_up = (S activation_bits_l + device_model_bits_l) / R``, energy ``e_up = p t_up``;
* server compute ``t_srv = S server_flops_l / server.cpu``;
* download ``t_down = S gradient_bits_l / server.downlink_rate``;
* latency ``t = t_dev + t_up + t_srv + t_down``, energy ``e = e_dev + e_up <= energy_max``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gnnalloc.core import AllocationError
from gnnalloc.families.sfl._allocation import SflAllocation
from gnnalloc.families.sfl._instance import SflInstance

__all__ = [
    "RoundCosts", "cycles", "fixed_time", "max_violation", "round_costs", "upload_bits",
    "uplink_rate", "violations", "within_band", "within_budgets",
]

LN2 = math.log(2.0)


def uplink_rate(share: np.ndarray, power: np.ndarray, gain: np.ndarray, bandwidth: float, noise_psd: float) -> np.ndarray:
    """``R = beta W log2(1 + p g / (beta W N0))`` in bits/s, 0 where ``beta = 0``."""
    width = np.asarray(share, dtype=np.float64) * bandwidth
    snr_width = np.asarray(power, dtype=np.float64) * gain / noise_psd  # p g / N0, in Hz
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = width * np.log1p(snr_width / width) / LN2
    return np.where(width > 0, rate, 0.0)


def within_band(share: np.ndarray) -> np.ndarray:
    """``share`` rounded down by ulps until its floating-point sum is at most 1 (e.g. ``N``
    equal shares ``1/N`` can sum to ``1 + 2^-52``)."""
    share = np.asarray(share, dtype=np.float64)
    while share.sum() > 1.0:
        share = np.nextafter(share, 0.0)
    return share


def cycles(instance: SflInstance, layer: np.ndarray | slice = slice(None)) -> np.ndarray:
    """Device cycles per round ``A = S device_flops_l c``: ``(N,)`` for one layer index per client,
    ``(N, L)`` for every layer (the default)."""
    per_client = instance.samples * instance.cycles_per_flop
    if isinstance(layer, slice):
        return per_client[:, None] * instance.device_flops[None, layer]
    return per_client * instance.device_flops[layer]


def upload_bits(instance: SflInstance, layer: np.ndarray | slice = slice(None)) -> np.ndarray:
    """Bits uploaded per round ``D = S activation_bits_l + device_model_bits_l``."""
    if isinstance(layer, slice):
        return instance.samples[:, None] * instance.activation_bits[None, layer] + instance.device_model_bits[None, layer]
    return instance.samples * instance.activation_bits[layer] + instance.device_model_bits[layer]


def fixed_time(instance: SflInstance, layer: np.ndarray | slice = slice(None)) -> np.ndarray:
    """The part of the latency no decision of the client changes: ``t_srv + t_down``."""
    per_sample = instance.server_flops / instance.server_cpu + instance.gradient_bits / instance.downlink_rate
    if isinstance(layer, slice):
        return instance.samples[:, None] * per_sample[None, layer]
    return instance.samples * per_sample[layer]


@dataclass(frozen=True)
class RoundCosts:
    """Per-client latency components (s) and energies (J) of one allocation, each ``(N,)``."""

    device_time: np.ndarray
    upload_time: np.ndarray
    server_time: np.ndarray
    download_time: np.ndarray
    device_energy: np.ndarray
    upload_energy: np.ndarray

    @property
    def latency(self) -> np.ndarray:
        """``t_n = t_dev + t_up + t_srv + t_down``."""
        return self.device_time + self.upload_time + self.server_time + self.download_time

    @property
    def energy(self) -> np.ndarray:
        """``e_n = e_dev + e_up``."""
        return self.device_energy + self.upload_energy


def round_costs(instance: SflInstance, allocation: SflAllocation) -> RoundCosts:
    """Every client's latency components and energy under ``allocation``.

    Raises:
        AllocationError: if the allocation does not fit the instance, or names the first client
            whose uplink rate is zero (zero share or power): it would never finish its upload.
    """
    allocation.check_fits(instance)
    layer = allocation.layer
    rate = uplink_rate(allocation.share, allocation.power, instance.gain, instance.bandwidth, instance.noise_psd)
    stalled = ~(rate > 0)
    if stalled.any():
        i = int(np.flatnonzero(stalled)[0])
        field = "bandwidth_share" if allocation.share[i] == 0 else "power"
        raise AllocationError(f"clients[{i}].{field}", "zero uplink rate: the client never finishes its upload")
    work = cycles(instance, layer)
    upload = upload_bits(instance, layer) / rate
    return RoundCosts(
        device_time=work / allocation.cpu,
        upload_time=upload,
        server_time=instance.samples * instance.server_flops[layer] / instance.server_cpu,
        download_time=instance.samples * instance.gradient_bits[layer] / instance.downlink_rate,
        device_energy=instance.kappa * allocation.cpu**2 * work,
        upload_energy=allocation.power * upload,
    )


def violations(instance: SflInstance, allocation: SflAllocation, costs: RoundCosts | None = None) -> dict[str, np.ndarray]:
    """Relative violation of every constraint (0 where it holds):

    * ``bandwidth``: ``max(0, sum beta - 1)``, shape ``(1,)``;
    * ``cpu``: below ``cpu_min`` relative to it, above ``cpu_max`` relative to it, ``(N,)``;
    * ``power``: outside ``[power_min, power_max]`` relative to ``power_max``, ``(N,)``;
    * ``energy``: ``max(0, e_n / energy_max_n - 1)``, ``(N,)``.
    """
    costs = round_costs(instance, allocation) if costs is None else costs
    f, p = allocation.cpu, allocation.power
    return {
        "bandwidth": np.array([max(0.0, float(allocation.share.sum()) - 1.0)]),
        "cpu": np.maximum.reduce([np.zeros_like(f), (instance.cpu_min - f) / instance.cpu_min, (f - instance.cpu_max) / instance.cpu_max]),
        "power": np.maximum.reduce([np.zeros_like(p), (instance.power_min - p) / instance.power_max, (p - instance.power_max) / instance.power_max]),
        "energy": np.maximum(0.0, costs.energy / instance.energy_max - 1.0),
    }


def max_violation(instance: SflInstance, allocation: SflAllocation, costs: RoundCosts | None = None) -> float:
    """The largest relative constraint violation of :func:`violations` (0 = feasible)."""
    return max(float(v.max(initial=0.0)) for v in violations(instance, allocation, costs).values())


def within_budgets(instance: SflInstance, allocation: SflAllocation) -> SflAllocation:
    """``allocation`` with the frequency (or, at ``cpu_min``, the power) of every client whose
    energy exceeds its budget by rounding stepped down until it does not. The steps grow from an
    ulp: the device's energy can be too small a part of the total for one ulp to show."""
    cpu, power = allocation.cpu.copy(), allocation.power.copy()
    for step in range(24):
        current = SflAllocation(layer=allocation.layer, share=allocation.share, cpu=cpu, power=power)
        over = round_costs(instance, current).energy > instance.energy_max
        if not over.any():
            return current
        factor = 1.0 - 2.0**-52 * 4.0**step
        slower = over & (cpu * factor >= instance.cpu_min)
        cpu = np.where(slower, cpu * factor, cpu)
        power = np.where(over & ~slower, np.maximum(power * factor, instance.power_min), power)
    return SflAllocation(layer=allocation.layer, share=allocation.share, cpu=cpu, power=power)
