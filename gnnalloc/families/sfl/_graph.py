r"""The star graph of a split-federated-learning round, as the learned allocator sees it.

Node types ``client`` (one per client) and ``server`` (one); relations ``client -> server``
(``uploads``) and ``server -> client`` (``serves``), without edge features. Every client feature
is a ratio, so scaling every time, energy or bit count of an instance leaves them unchanged:
times are divided by the instance's proven lower bound :math:`T_\mathrm{relaxed}` (the round
without energy budgets, :mod:`._relaxed`), energies by the client's budget, shares by ``1/N``.
The relaxed round's shares and energies say which clients need the band and whose budgets bind,
which is what separates :math:`T^\star` from the bound. Per-layer quantities are summarised over
the layers (least, or at the layer of least latency) so that layer tables of any length give the
same feature width.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, HeteroData

from gnnalloc.families.sfl._exact import solo_energy
from gnnalloc.families.sfl._instance import SflInstance
from gnnalloc.families.sfl._model import cycles, fixed_time, upload_bits, uplink_rate
from gnnalloc.families.sfl._relaxed import relaxed_round
from gnnalloc.nn import GraphSchema

__all__ = ["CLIENT_FEATURES", "EDGE_TYPES", "SCHEMA", "SERVER_FEATURES", "collate_graphs", "instance_graph"]

CLIENT_FEATURES = (
    "log_relaxed_share", "log_relaxed_energy", "log_equal_latency", "log_floor", "log_upload_share", "log_compute_share", "log_energy_at_equal",
    "log_least_energy", "log_bits_energy", "log_snr_full_band", "log_power_range", "log_cpu_range",
)
SERVER_FEATURES = (
    "log_clients", "layers", "log_max_floor", "log_equal_scale", "mean_log_relaxed_energy", "binding_share",
)
EDGE_TYPES = (("client", "uploads", "server"), ("server", "serves", "client"))
SCHEMA = GraphSchema(
    {"client": len(CLIENT_FEATURES), "server": len(SERVER_FEATURES)}, {e: 0 for e in EDGE_TYPES},
)
_LN2 = math.log(2.0)


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-300))


def _equal_share_times(instance: SflInstance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, L)`` device time at full speed, upload time at an equal share and full power, and
    the fixed server and download time."""
    n = instance.num_clients
    rate = uplink_rate(np.full((n, 1), 1.0 / n), instance.power_max[:, None], instance.gain[:, None],
                       instance.bandwidth, instance.noise_psd)
    device = cycles(instance) / instance.cpu_max[:, None]
    return device, upload_bits(instance) / rate, fixed_time(instance)


def instance_graph(instance: SflInstance) -> HeteroData:
    """The :class:`HeteroData` of ``instance``: features (module docstring), ``graph.scale``
    (:math:`T_\\mathrm{relaxed}`, float64) to turn a predicted ratio into a round time, and
    ``graph.equal_floor``, a lower bound on the ``equal`` baseline's round time."""
    n = instance.num_clients
    device, upload, fixed = _equal_share_times(instance)
    latency = device + upload + fixed
    relaxed = relaxed_round(instance)
    scale = relaxed.round_time
    relaxed_energy = _log(relaxed.energy / instance.energy_max)
    best = latency.argmin(axis=1)
    rows = np.arange(n)
    floor = (device + fixed).min(axis=1)
    energy_eq = (instance.kappa * instance.cpu_max ** 2 * cycles(instance, best)
                 + instance.power_max * upload[rows, best])
    least_energy = solo_energy(instance).min(axis=1)
    bits_energy = upload_bits(instance).min(axis=1) * instance.noise_psd * _LN2 / instance.gain
    budget = instance.energy_max
    snr = instance.power_max * instance.gain / (instance.bandwidth * instance.noise_psd)
    x = np.stack([
        _log(relaxed.share * n) / 4.0,
        relaxed_energy / 4.0,
        _log(latency[rows, best] / scale),
        _log(floor / scale),
        upload[rows, best] / latency[rows, best],
        device[rows, best] / latency[rows, best],
        _log(energy_eq / budget) / 4.0,
        _log(least_energy / budget) / 4.0,
        _log(bits_energy / budget) / 4.0,
        _log(snr) / 10.0,
        np.minimum(_log(instance.power_max / np.maximum(instance.power_min, 1e-13 * instance.power_max)), 30.0) / 10.0,
        _log(instance.cpu_max / instance.cpu_min) / 4.0,
    ], axis=1)
    server = np.array([[math.log(n) / 5.0, instance.num_layers / 10.0, math.log(floor.max() / scale),
                        math.log(float(latency.min(axis=1).max()) / scale), float(relaxed_energy.mean()) / 4.0,
                        float((relaxed_energy > 0).mean())]])
    graph = HeteroData()
    graph["client"].x = torch.from_numpy(np.nan_to_num(x, nan=0.0, posinf=30.0, neginf=-30.0)).float()
    graph["server"].x = torch.from_numpy(server).float()
    graph["client"].num_nodes = n
    graph["server"].num_nodes = 1
    to_server = torch.stack([torch.arange(n), torch.zeros(n, dtype=torch.long)])
    graph[EDGE_TYPES[0]].edge_index = to_server
    graph[EDGE_TYPES[1]].edge_index = to_server.flip(0)
    graph.scale = torch.tensor([scale], dtype=torch.float64)
    # A lower bound on the `equal` baseline's round (its shares are at most 1/N, its speeds and
    # powers at most the maxima, its split common): the learned method compares with the
    # baseline only when its own round is longer than this.
    graph.equal_floor = torch.tensor([float(latency.max(axis=0).min())], dtype=torch.float64)
    return graph


def collate_graphs(graphs: Sequence[HeteroData]) -> Batch:
    """One PyG batch of :func:`instance_graph` graphs."""
    return Batch.from_data_list(list(graphs))
