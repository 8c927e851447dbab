"""Feasibility and finiteness on instances that mix extreme magnitudes (RESULTS.md,
"bench_extremes.py").

Three users on two linked servers; every combination of a user's compute and bandwidth minimums
(1e-12 / 1e-4 / 1 / 1e4 / 1e12), its home server's capacities (0 / 1e-12 / 1 / 1e12) and its
weight (1e-6 / 1 / 1e6): 300 instances per alpha, each through gnn (the shipped price model, with
its defaults: anytime to its default proven gap), gnn-shares (the shipped share-head model), dual,
equal and proportional. A case fails if the allocation is not finite, violates a constraint by
more than 1e-7 (relative), or the method raises.

Run: python benchmarks/bench_extremes.py [--alphas 1e-6 1 100]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import SHARES_CHECKPOINT, write_table  # noqa: E402

from gnnalloc import Instance, solve  # noqa: E402
from gnnalloc.families.edge.nn.allocator import Allocator  # noqa: E402
from gnnalloc.families.edge.problem import max_violation  # noqa: E402

METHODS = ("gnn", "gnn-shares", "dual", "equal", "proportional")
MINIMUMS = (1e-12, 1e-4, 1.0, 1e4, 1e12)
CAPACITIES = (0.0, 1e-12, 1.0, 1e12)
WEIGHTS = (1e-6, 1.0, 1e6)


def instance(alpha: float, compute_min: float, bandwidth_min: float, capacity: float, weight: float) -> Instance:
    return Instance.from_dict({
        "format": "gnnalloc.instance/v1", "alpha": alpha,
        "servers": [{"id": "h", "compute": capacity, "bandwidth": capacity},
                    {"id": "n", "compute": 1.0, "bandwidth": 1.0}],
        "links": [{"a": "h", "b": "n", "capacity": 1.0}],
        "users": [
            {"id": "a", "server": "h", "compute_min": compute_min, "bandwidth_min": bandwidth_min,
             "weight": weight, "data_rate": 1.0},
            {"id": "b", "server": "h", "compute_min": 1.0, "bandwidth_min": 1.0},
            {"id": "c", "server": "n", "compute_min": 1.0, "bandwidth_min": 1e-3},
        ],
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[1e-6, 0.1, 1.0, 10.0, 100.0])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    shares = Allocator.from_checkpoint(SHARES_CHECKPOINT)
    rows = []
    for alpha in args.alphas:
        failures = {method: 0 for method in METHODS}
        worst = {method: 0.0 for method in METHODS}
        for values in itertools.product(MINIMUMS, MINIMUMS, CAPACITIES, WEIGHTS):
            inst = instance(alpha, *values)
            for method in METHODS:
                try:
                    options = {"allocator": shares} if method == "gnn-shares" else {}
                    result = solve(inst, method, **options)
                    allocation = result.allocation
                    finite = np.isfinite(allocation.compute).all() and np.isfinite(allocation.bandwidth).all()
                    violation = max_violation(inst, allocation) if finite else float("inf")
                except Exception:  # counted, not hidden: any exception is a failure here
                    violation = float("inf")
                worst[method] = max(worst[method], violation)
                failures[method] += int(not violation <= 1e-7)
        cases = len(MINIMUMS) ** 2 * len(CAPACITIES) * len(WEIGHTS)
        rows.append([f"{alpha:g}", cases] + [f"{failures[m]} ({worst[m]:.1e})" for m in METHODS])
    write_table(
        "extremes",
        "Failures per method (worst relative violation; inf = not finite or raised)",
        ["alpha", "instances"] + list(METHODS),
        rows,
    )


if __name__ == "__main__":
    main()
