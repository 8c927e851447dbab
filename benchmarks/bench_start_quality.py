"""What a better prediction would buy ``gnn``: its anytime solve from the model's predicted prices
against oracle starts, on held-out instances (:mod:`benchmarks._heldout`).

The oracle is the dual's own minimiser at the model's temperature (``solve_dual``, 3,000
iterations), the point the model is trained to predict. For every instance (816 users of
``--layout`` and ``--seed`` at loads 0.6 / 1.0 / 1.4, alpha 0.5 / 1 / 2, each ``--penalties``),
``solve_dual`` runs as ``gnn`` runs it (anytime to :func:`~gnnalloc.families.edge.gnn_gap_tol`,
first chunk :data:`~gnnalloc.families.edge.GNN_FIRST_CHUNK`, the temperature
:func:`~gnnalloc.families.edge.gnn_temperature` picks, five search rounds) from five starts: the
model's prediction; its server prices with zero link prices; the oracle's server prices with the
model's link prices; the model's server prices with the oracle's link prices; the oracle; and, for
each ``--noise`` sigma, the oracle's prices each multiplied by :math:`e^{\sigma z}`, :math:`z` standard
normal (how close a prediction must be). Per start: L-BFGS iterations to the proven gap (free of
the machine's timing noise), the median time of ``--repeats`` runs, and the recovery's loss at
the start itself: the objective per unit of weight that the primal recovery (five search rounds)
from the start, without any iteration, leaves below the oracle's. ``--checkpoint``: another price
model to judge (default: the shipped one). Writes
``benchmarks/out/start_quality_{layout}_seed{seed}.md``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_start_quality.py [--penalties 10] \
        [--seed 1] [--layout eua] [--repeats 3] [--checkpoint checkpoints/prices.ckpt] [--noise 0.01 0.1]
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


def noisy(sigma: float) -> str:
    """The name of the oracle start perturbed by log-noise ``sigma``."""
    return f"oracle, log-noise {sigma:g}"


def starts(model, instance, water_filling, noise: list[float], seed: int):
    """The starts (module docstring) of ``instance``, and the oracle's result (its prices and the
    objective of its recovery)."""
    server, link = model.predict(instance, water_filling)
    oracle = solve_dual(instance, temperature=float(model.temperature), iterations=3000, search_rounds=5)
    found = {
        "model": (server, link),
        "model servers, zero links": (server, np.zeros_like(link)),
        "oracle servers, model links": (oracle.server_price, link),
        "model servers, oracle links": (server, oracle.link_price),
        "oracle": (oracle.server_price, oracle.link_price),
    }
    rng = np.random.default_rng(seed)
    for sigma in noise:
        found[noisy(sigma)] = tuple(
            price * np.exp(sigma * rng.standard_normal(price.shape))
            for price in (oracle.server_price, oracle.link_price)
        )
    return found, oracle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--penalties", type=number(float, 1.0), nargs="+", default=[10.0])
    parser.add_argument("--seed", type=number(int, 0), default=1)
    parser.add_argument("--layout", choices=["eua", "random", "clustered"], default="eua")
    parser.add_argument("--repeats", type=number(int, 1), default=3)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a price model (default: the shipped one)")
    parser.add_argument("--noise", type=number(float, 0.0, 10.0, above=True), nargs="*", default=[],
                        help="log-noise sigmas of perturbed oracle starts")
    args = parser.parse_args()
    names = STARTS + tuple(noisy(sigma) for sigma in args.noise)
    torch.set_num_threads(1)
    try:
        model = shipped_allocator() if args.checkpoint is None else PricePredictor.from_checkpoint(args.checkpoint)
    except (OSError, ValueError) as exc:  # the library's messages name the checkpoint
        parser.error(str(exc))
    iterations: dict[tuple[float, str], list[int]] = {}
    seconds: dict[tuple[float, str], list[float]] = {}
    losses: dict[tuple[float, str], list[float]] = {}
    for penalty, load, alpha in itertools.product(args.penalties, (0.6, 1.0, 1.4), (0.5, 1.0, 2.0)):
        instance = heldout_instance(816, load, args.seed, penalty=penalty, alpha=alpha, layout=args.layout)
        water_filling = waterfill_prices(ProblemTensors.from_instance(instance, dtype=torch.float64))
        options = dict(
            water_filling=water_filling, iterations=GNN_FIRST_CHUNK, search_rounds=5,
            temperature=gnn_temperature(model, instance, True), gap_tol=gnn_gap_tol(instance),
            cold_temperature=DEFAULT_TEMPERATURE,
        )
        found, oracle = starts(model, instance, water_filling, args.noise, args.seed)
        weight = float(instance.weight.sum())
        for name, start in found.items():
            at_start = solve_dual(instance, start=start, iterations=0, search_rounds=5,
                                  temperature=options["temperature"], water_filling=water_filling)
            losses.setdefault((penalty, name), []).append((oracle.objective - at_start.objective) / weight)
            times = []
            for _ in range(args.repeats):
                clock = time.perf_counter()
                result = solve_dual(instance, start=start, **options)
                times.append(time.perf_counter() - clock)
            iterations.setdefault((penalty, name), []).append(result.iterations)
            seconds.setdefault((penalty, name), []).append(statistics.median(times))
        print(f"penalty {penalty:g} load {load} alpha {alpha}: " + ", ".join(
            f"{name} {iterations[(penalty, name)][-1]}" for name in names), flush=True)
    rows = [
        [f"{penalty:g}", name, statistics.median(iterations[(penalty, name)]),
         f"{min(iterations[(penalty, name)])}-{max(iterations[(penalty, name)])}",
         f"{1e3 * statistics.median(seconds[(penalty, name)]):.0f}",
         f"{statistics.median(losses[(penalty, name)]):.4f}"]
        for penalty, name in itertools.product(args.penalties, names)
    ]
    write_table(
        f"start_quality_{args.layout}_seed{args.seed}",
        f"gnn's anytime solve from the model's prediction and from oracle starts ({args.layout}, seed {args.seed}, "
        "816 users, 9 instances per penalty)",
        ["penalty", "start", "iterations (median)", "iterations (range)", "ms (median)",
         "recovery loss at the start (median)"], rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
