"""What a better prediction would buy ``gnn``: its anytime solve from the model's predicted prices
against oracle starts, on held-out instances (:mod:`benchmarks._heldout`).

The oracle is the dual's own minimiser at the model's temperature (``solve_dual``, 3,000
iterations), the point the model is trained to predict. For every instance (816 users of
``--layout`` and ``--seed`` at loads 0.6 / 1.0 / 1.4, alpha 0.5 / 1 / 2, each ``--penalties``),
``solve_dual`` runs as ``gnn`` runs it (anytime to :func:`~gnnalloc.families.edge.gnn_gap_tol`,
first chunk :data:`~gnnalloc.families.edge.GNN_FIRST_CHUNK`, the temperature
:func:`~gnnalloc.families.edge.gnn_temperature` picks, five search rounds) from five starts: the
model's prediction; its server prices with zero link prices; the oracle's server prices with the
model's link prices; the model's server prices with the oracle's link prices; the oracle. Per start:
L-BFGS iterations to the proven gap (free of the machine's timing noise) and the median time of
``--repeats`` runs. ``--checkpoint``: another price model to judge (default: the shipped one).
Writes ``benchmarks/out/start_quality_{layout}_seed{seed}.md``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_start_quality.py [--penalties 10] \
        [--seed 1] [--layout eua] [--repeats 3] [--checkpoint checkpoints/prices.ckpt]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import number, write_table  # noqa: E402
from _heldout import heldout_instance  # noqa: E402

from gnnalloc.families.edge import (  # noqa: E402
    GNN_FIRST_CHUNK, PricePredictor, gnn_gap_tol, gnn_temperature, shipped_allocator,
)
from gnnalloc.families.edge.problem import ProblemTensors  # noqa: E402
from gnnalloc.families.edge.solvers import DEFAULT_TEMPERATURE, solve_dual  # noqa: E402
from gnnalloc.families.edge.solvers.functional import waterfill_prices  # noqa: E402

STARTS = ("model", "model servers, zero links", "oracle servers, model links", "model servers, oracle links",
          "oracle")


def starts(model, instance, water_filling) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The five starts (module docstring) of ``instance``."""
    server, link = model.predict(instance, water_filling)
    oracle = solve_dual(instance, temperature=float(model.temperature), iterations=3000, search_rounds=0)
    return {
        "model": (server, link),
        "model servers, zero links": (server, np.zeros_like(link)),
        "oracle servers, model links": (oracle.server_price, link),
        "model servers, oracle links": (server, oracle.link_price),
        "oracle": (oracle.server_price, oracle.link_price),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--penalties", type=number(float, 1.0), nargs="+", default=[10.0])
    parser.add_argument("--seed", type=number(int, 0), default=1)
    parser.add_argument("--layout", choices=["eua", "random", "clustered"], default="eua")
    parser.add_argument("--repeats", type=number(int, 1), default=3)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a price model (default: the shipped one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        model = shipped_allocator() if args.checkpoint is None else PricePredictor.from_checkpoint(args.checkpoint)
    except (OSError, ValueError) as exc:  # the library's messages name the checkpoint
        parser.error(str(exc))
    iterations: dict[tuple[float, str], list[int]] = {}
    seconds: dict[tuple[float, str], list[float]] = {}
    for penalty, load, alpha in itertools.product(args.penalties, (0.6, 1.0, 1.4), (0.5, 1.0, 2.0)):
        instance = heldout_instance(816, load, args.seed, penalty=penalty, alpha=alpha, layout=args.layout)
        water_filling = waterfill_prices(ProblemTensors.from_instance(instance, dtype=torch.float64))
        options = dict(
            water_filling=water_filling, iterations=GNN_FIRST_CHUNK, search_rounds=5,
            temperature=gnn_temperature(model, instance, True), gap_tol=gnn_gap_tol(instance),
            cold_temperature=DEFAULT_TEMPERATURE,
        )
        for name, start in starts(model, instance, water_filling).items():
            times = []
            for _ in range(args.repeats):
                clock = time.perf_counter()
                result = solve_dual(instance, start=start, **options)
                times.append(time.perf_counter() - clock)
            iterations.setdefault((penalty, name), []).append(result.iterations)
            seconds.setdefault((penalty, name), []).append(statistics.median(times))
        print(f"penalty {penalty:g} load {load} alpha {alpha}: " + ", ".join(
            f"{name} {iterations[(penalty, name)][-1]}" for name in STARTS), flush=True)
    rows = [
        [f"{penalty:g}", name, statistics.median(iterations[(penalty, name)]),
         f"{min(iterations[(penalty, name)])}-{max(iterations[(penalty, name)])}",
         f"{1e3 * statistics.median(seconds[(penalty, name)]):.0f}"]
        for penalty, name in itertools.product(args.penalties, STARTS)
    ]
    write_table(
        f"start_quality_{args.layout}_seed{args.seed}",
        f"gnn's anytime solve from the model's prediction and from oracle starts ({args.layout}, seed {args.seed}, "
        "816 users, 9 instances per penalty)",
        ["penalty", "start", "iterations (median)", "iterations (range)", "ms (median)"], rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
