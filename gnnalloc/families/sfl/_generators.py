"""Random split-federated-learning rounds: a real model's layer table and clients on a disc.

Distributions of :func:`random_sfl` (``U`` uniform, ``logU`` log-uniform, all independent):

* layers: the candidate splits of ``architecture`` (:mod:`gnnalloc.families.sfl._architectures`);
* server: band ``bandwidth`` Hz (default 20 MHz), noise density -174 dBm/Hz, ``server_cpu``
  FLOP/s (default 1e12), gradient broadcast at ``downlink_rate`` bits/s (default 100 Mbit/s);
* client position: uniform over the annulus ``min_distance <= d <= radius`` (by area; default
  10 m to 500 m);
* channel gain: path loss ``128.1 + 37.6 log10(d / 1 km)`` dB, log-normal shadowing with
  ``shadowing_db`` (default 8 dB) deviation, Rayleigh fading ``|h|^2 ~ Exp(1)`` floored at
  ``fading_floor`` (default 0.05; a client in a deeper fade waits for a later round);
* ``cpu_max ~ U(cpu_low, cpu_high)`` (default 0.5 to 2 GHz), ``cpu_min = 0.1 GHz``,
  ``cycles_per_flop ~ U(0.25, 1)``, ``kappa ~ logU(5e-29, 2e-28)``;
* ``power_min = 1 mW``, ``power_max ~ U(0.1, 0.2)`` W; ``samples ~ U{16..64}``; ``weight = 1``;
* energy budget ``energy_max = max(s e_typ, 1.5 e_low)`` with ``s ~ U(budget_low, budget_high)``
  (default 0.3 to 1.5), where, with an equal share ``1/N`` of the band, ``e_typ`` is the
  client's energy at the layer of least latency at full speed and power, and ``e_low`` its
  least energy at any layer (slowest CPU, lowest power). Budgets below ``e_typ`` bind at the
  optimum; the floor keeps every client (and the equal-share allocation) feasible.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gnnalloc.core import InputError, check_count, check_seed, cut_message, is_real
from gnnalloc.families.sfl._architectures import ARCHITECTURES, layer_table
from gnnalloc.families.sfl._instance import OBJECTIVES, SflInstance
from gnnalloc.families.sfl._model import uplink_rate

__all__ = ["DEFAULT_SETTINGS", "random_sfl"]

NOISE_PSD = 10 ** (-174 / 10) / 1000  # -174 dBm/Hz in W/Hz
MIN_CLIENTS, MAX_CLIENTS = 1, 100_000

DEFAULT_SETTINGS: dict[str, Any] = {
    "architecture": "resnet18-cifar", "objective": "minmax", "bandwidth": 2e7, "server_cpu": 1e12,
    "downlink_rate": 1e8, "radius": 500.0, "min_distance": 10.0, "shadowing_db": 8.0,
    "fading_floor": 0.05, "cpu_low": 5e8, "cpu_high": 2e9, "budget_low": 0.3, "budget_high": 1.5,
}


#: The range of each numeric setting: far beyond any real round on both sides, and where the
#: round's numbers (gains, energies, times) stay within the format's magnitudes (beyond them a
#: setting such as a 1e308 m radius overflowed, or came back as an instance field the caller
#: never set). ``cpu_low`` starts at the clients' ``cpu_min``, 1e8.
SETTING_RANGES: dict[str, tuple[float, float]] = {
    "bandwidth": (1e3, 1e12), "server_cpu": (1e3, 1e18), "downlink_rate": (1e3, 1e15), "radius": (1.0, 1e5),
    "min_distance": (1.0, 1e5), "shadowing_db": (0.0, 30.0), "fading_floor": (1e-6, 10.0), "cpu_low": (1e8, 1e15),
    "cpu_high": (1e8, 1e15), "budget_low": (1e-6, 1e6), "budget_high": (1e-6, 1e6),
}


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    merged = dict(DEFAULT_SETTINGS)
    for key, value in settings.items():
        if key not in DEFAULT_SETTINGS:
            raise InputError(f"{key}: unknown setting, expected one of {', '.join(DEFAULT_SETTINGS)}")
        merged[key] = value
    for key in ("architecture", "objective"):
        if not isinstance(merged[key], str):
            raise InputError(f"{key}: expected a string, got {merged[key]!r}")
    if merged["architecture"] not in ARCHITECTURES:
        raise InputError(f"architecture: unknown {merged['architecture']!r}, expected one of {', '.join(ARCHITECTURES)}")
    if merged["objective"] not in OBJECTIVES:
        raise InputError(f"objective: must be one of {', '.join(OBJECTIVES)}, got {merged['objective']!r}")
    for key, (low, high) in SETTING_RANGES.items():
        value = merged[key]
        if not (is_real(value) and math.isfinite(value) and low <= value <= high):
            raise InputError(f"{key}: must be a finite number in [{low:g}, {high:g}], got {cut_message(repr(value), 60)}")
        merged[key] = float(value) + 0.0  # -0.0 (a zero deviation) as 0.0, which numpy takes
    for low, high in (("min_distance", "radius"), ("cpu_low", "cpu_high"), ("budget_low", "budget_high")):
        if merged[low] > merged[high]:
            raise InputError(f"{low}: must be <= {high} ({merged[high]!r}), got {merged[low]!r}")
    return merged


def random_sfl(size: int, seed: int = 0, **settings: Any) -> SflInstance:
    """A random round with ``size`` clients (module docstring for the distributions).

    Raises:
        ValueError: naming ``size``, ``seed`` or the bad setting.
    """
    check_count("clients", size, MIN_CLIENTS, MAX_CLIENTS)
    check_seed(seed)
    s = _settings(settings)
    rng = np.random.default_rng(int(seed))
    n = int(size)
    blocks, splits = ARCHITECTURES[s["architecture"]]()
    table = layer_table(blocks, splits)

    distance = np.sqrt(rng.uniform(s["min_distance"] ** 2, s["radius"] ** 2, n))
    loss_db = 128.1 + 37.6 * np.log10(distance / 1000.0) + rng.normal(0.0, s["shadowing_db"], n)
    fading = np.maximum(rng.exponential(1.0, n), s["fading_floor"])
    gain = 10 ** (-loss_db / 10) * fading
    cpu_max = rng.uniform(s["cpu_low"], s["cpu_high"], n)
    cpu_min = np.full(n, 1e8)
    cycles_per_flop = rng.uniform(0.25, 1.0, n)
    kappa = np.exp(rng.uniform(math.log(5e-29), math.log(2e-28), n))
    power_min = np.full(n, 1e-3)
    power_max = rng.uniform(0.1, 0.2, n)
    samples = rng.integers(16, 65, n).astype(np.float64)

    # Budgets relative to each client's own energies at an equal share of the band.
    work = (samples * cycles_per_flop)[:, None] * table["device_flops"][None]
    bits = samples[:, None] * table["activation_bits"][None] + table["device_model_bits"][None]
    fixed = samples[:, None] * (table["server_flops"] / s["server_cpu"] + table["gradient_bits"] / s["downlink_rate"])[None]
    share = np.full((n, 1), 1.0 / n)
    fast_rate = uplink_rate(share, power_max[:, None], gain[:, None], s["bandwidth"], NOISE_PSD)
    slow_rate = uplink_rate(share, power_min[:, None], gain[:, None], s["bandwidth"], NOISE_PSD)
    fast_time = work / cpu_max[:, None] + bits / fast_rate + fixed
    fast_energy = kappa[:, None] * cpu_max[:, None] ** 2 * work + power_max[:, None] * bits / fast_rate
    typical = np.take_along_axis(fast_energy, fast_time.argmin(axis=1)[:, None], axis=1)[:, 0]
    lowest = (kappa[:, None] * cpu_min[:, None] ** 2 * work + power_min[:, None] * bits / slow_rate).min(axis=1)
    energy_max = np.maximum(rng.uniform(s["budget_low"], s["budget_high"], n) * typical, 1.5 * lowest)

    width = len(str(n - 1))
    return SflInstance(
        objective=s["objective"], bandwidth=float(s["bandwidth"]), noise_psd=NOISE_PSD,
        server_cpu=float(s["server_cpu"]), downlink_rate=float(s["downlink_rate"]),
        layer_names=table["names"], device_flops=table["device_flops"], server_flops=table["server_flops"],
        activation_bits=table["activation_bits"], gradient_bits=table["gradient_bits"],
        device_model_bits=table["device_model_bits"],
        client_ids=tuple(f"c{i:0{width}d}" for i in range(n)), samples=samples, gain=gain,
        cpu_min=cpu_min, cpu_max=cpu_max, power_min=power_min, power_max=power_max,
        energy_max=energy_max, kappa=kappa, cycles_per_flop=cycles_per_flop, weight=np.ones(n),
    )
