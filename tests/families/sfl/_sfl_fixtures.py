"""Small hand-made ``gnnalloc.sfl/v1`` documents shared by the family's tests."""

from __future__ import annotations

import copy


def small_doc(num_clients: int = 3) -> dict:
    """Two candidate layers, ``num_clients`` clients with different channels and budgets."""
    clients = []
    for i in range(num_clients):
        clients.append({
            "id": f"c{i}", "samples": 32 + 16 * (i % 3), "gain": [3e-12, 1e-11, 5e-13][i % 3] * (1 + 0.1 * i),
            "cpu_min": 1e8, "cpu_max": [2e9, 1e9, 1.5e9][i % 3], "power_min": 0.01, "power_max": 0.2,
            "energy_max": [2.0, 0.5, 3.0][i % 3], "kappa": 1e-28, "cycles_per_flop": 1.0, "weight": 1.0,
        })
    return copy.deepcopy({
        "format": "gnnalloc.sfl/v1", "objective": "minmax",
        "server": {"bandwidth": 2e7, "noise_psd": 4e-21, "cpu": 5e10, "downlink_rate": 1e8},
        "layers": [
            {"name": "block2", "device_flops": 2.1e8, "server_flops": 1.6e9, "activation_bits": 1.6e5,
             "gradient_bits": 1.6e5, "device_model_bits": 3.2e6},
            {"name": "block3", "device_flops": 6e8, "server_flops": 1.2e9, "activation_bits": 6e4,
             "gradient_bits": 6e4, "device_model_bits": 8e6},
        ],
        "clients": clients,
    })
