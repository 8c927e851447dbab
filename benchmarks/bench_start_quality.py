"""What a better prediction would buy ``gnn``: its anytime solve from the model's predicted prices
against oracle starts, on held-out instances (:mod:`benchmarks._heldout`).

The oracle is the dual's own minimiser at the model's temperature (``solve_dual``, 3,000
iterations), the point the model is trained to predict. For every instance (816 users of
``--layout`` and ``--seed`` at loads 0.6 / 1.0 / 1.4, alpha 0.5 / 1 / 2, each ``--penalties``),
``solve_dual`` runs as ``gnn`` runs it (:func:`~gnnalloc.families.edge.gnn_refinement_options`:
anytime to ``gnn``'s default proven gap, at the temperature it picks) from five starts: the
model's prediction; its server prices with zero link prices; the oracle's server prices with the
model's link prices; the model's server prices with the oracle's link prices; the oracle; and, for
each ``--noise`` sigma, the oracle's prices each multiplied by :math:`e^{\sigma z}`, :math:`z` standard
normal, a fresh draw per instance (how close a prediction must be); and, for reference, ``dual``
as a user calls it (its one pass from the water-filling prices at its default temperature). Per
start: L-BFGS iterations (to the proven gap; ``dual``'s: its one pass), free of the machine's
timing noise; the median time of ``--repeats`` runs; the start's log-price RMS against the
oracle, servers and used links, relative to the model's references (the training loss's terms);
and, at the start itself, without any iteration: how far below the oracle's objective the primal
recovery (five search rounds) lands, and how far above the oracle's bound the start's bound lies
(per unit of weight; at the temperature the start's solve runs at, ``dual``'s 0.03 for its row;
over the instances where ``solve_dual`` keeps the start, not where it sets it aside for the
water-filling prices, whose smoothed dual is lower). Every start's solve first clears its link
prices at its server prices, as ``gnn``'s does (``solve_dual``'s ``clear_start_links``, at most 12
users per server; the recovery and bound at the start are taken after it, the log-price RMS
before). ``--checkpoint``: another price model to judge (default: the shipped one).
Writes ``benchmarks/out/start_quality_{layout}_seed{seed}.md``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_start_quality.py [--penalties 10] \
        [--seed 1] [--layout eua] [--repeats 3] [--checkpoint checkpoints/prices.ckpt] [--noise 0.01 0.1]
"""

from __future__ import annotations

import argparse
import itertools
import math
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
    PricePredictor, gnn_refinement_options, shipped_allocator,
)
from gnnalloc.families.edge.problem import ProblemTensors  # noqa: E402
from gnnalloc.families.edge.solvers import DEFAULT_TEMPERATURE, solve_dual  # noqa: E402
from gnnalloc.families.edge.solvers.functional import waterfill_prices  # noqa: E402
from gnnalloc.families.edge.training.prices import log_price_targets  # noqa: E402

STARTS = ("model", "model servers, zero links", "oracle servers, model links", "model servers, oracle links",
          "oracle")


def noisy(sigma: float) -> str:
    """The name of the oracle start perturbed by log-noise ``sigma``."""
    return f"oracle, log-noise {sigma:g}"


#: The reference row: ``dual`` as a user calls it (one pass of its default iterations at its
#: default temperature from the water-filling prices), with that start's measures.
DUAL = "dual's one pass (water-filling start)"

COLUMNS = ("iterations", "ms", "loss", "bound", "server", "link")


def starts(model, instance, water_filling, noise: list[float], rng: np.random.Generator):
    """The starts (module docstring) of ``instance``, and the oracle's result (its prices and the
    objective of its recovery); ``rng`` draws the noise (one generator for the whole run, so
    every instance gets its own draw)."""
    server, link = model.predict(instance, water_filling)
    oracle = solve_dual(instance, temperature=float(model.temperature), iterations=3000, search_rounds=5)
    found = {
        "model": (server, link),
        "model servers, zero links": (server, np.zeros_like(link)),
        "oracle servers, model links": (oracle.server_price, link),
        "model servers, oracle links": (server, oracle.link_price),
        "oracle": (oracle.server_price, oracle.link_price),
    }
    for sigma in noise:
        found[noisy(sigma)] = tuple(
            price * np.exp(sigma * rng.standard_normal(price.shape))
            for price in (oracle.server_price, oracle.link_price)
        )
    return found, oracle


def log_errors(problem: ProblemTensors, start, oracle) -> tuple[float, float]:
    """RMS of ``start``'s log-prices against the oracle's, relative to the model's references as
    in its training loss (:func:`~gnnalloc.families.edge.training.prices.log_price_targets`):
    servers, and the links some pair uses."""
    server, link, used = log_price_targets(problem, *(torch.as_tensor(part) for part in start))
    server_oracle, link_oracle, _ = log_price_targets(
        problem, torch.as_tensor(oracle.server_price), torch.as_tensor(oracle.link_price),
    )
    link_rms = float((link - link_oracle)[used].pow(2).mean().sqrt()) if bool(used.any()) else 0.0
    return float((server - server_oracle).pow(2).mean().sqrt()), link_rms


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
    names = (*STARTS, *(noisy(sigma) for sigma in args.noise), DUAL)
    torch.set_num_threads(1)
    try:
        model = shipped_allocator() if args.checkpoint is None else PricePredictor.from_checkpoint(args.checkpoint)
    except (OSError, ValueError) as exc:  # the library's messages name the checkpoint
        parser.error(str(exc))
    rng = np.random.default_rng(args.seed)
    measured: dict[tuple[float, str, str], list[float]] = {}

    def timed(call) -> tuple[float, object]:
        times, result = [], None
        for _ in range(args.repeats):
            clock = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - clock)
        return statistics.median(times), result

    for penalty, load, alpha in itertools.product(args.penalties, (0.6, 1.0, 1.4), (0.5, 1.0, 2.0)):
        instance = heldout_instance(816, load, args.seed, penalty=penalty, alpha=alpha, layout=args.layout)
        problem = ProblemTensors.from_instance(instance, dtype=torch.float64)
        water_filling = waterfill_prices(problem)
        options = {"water_filling": water_filling, **gnn_refinement_options(model, instance)}
        found, oracle = starts(model, instance, water_filling, args.noise, rng)
        found[DUAL] = (water_filling.numpy(), np.zeros(instance.num_links))
        weight = float(instance.weight.sum())
        for name, start in found.items():
            # The recovery and the bound at the start itself, at the temperature its solve runs
            # at, its links cleared as its solve clears them (dual's own start: as it is);
            # solve_dual sets aside a start whose smoothed dual is above the water-filling
            # prices' (then those are what it returns): such a start has no figures of its own.
            # Clearing moves only link prices, so the server prices tell which.
            at_start = solve_dual(instance, start=start, iterations=0, search_rounds=5, water_filling=water_filling,
                                  temperature=DEFAULT_TEMPERATURE if name == DUAL else options["temperature"],
                                  clear_start_links=name != DUAL)
            used = np.array_equal(at_start.server_price, start[0])
            if name == DUAL:
                seconds, result = timed(lambda: solve_dual(instance, water_filling=water_filling))
            else:
                seconds, result = timed(lambda: solve_dual(instance, start=start, **options))
            loss = (oracle.objective - at_start.objective) / weight if used else math.nan
            bound = (at_start.upper_bound - oracle.upper_bound) / weight if used else math.nan
            values = (result.iterations, 1e3 * seconds, loss, bound, *log_errors(problem, start, oracle))
            for column, value in zip(COLUMNS, values):
                measured.setdefault((penalty, name, column), []).append(value)
        print(f"penalty {penalty:g} load {load} alpha {alpha}: " + ", ".join(
            f"{name} {measured[(penalty, name, 'iterations')][-1]}" for name in names), flush=True)

    def median(penalty: float, name: str, column: str) -> float:
        """The median over the instances where the column has a value (NaN where none has)."""
        values = [v for v in measured[(penalty, name, column)] if not math.isnan(v)]
        return statistics.median(values) if values else math.nan

    def figure(penalty: float, name: str, column: str) -> str:
        """The column's median, with how many instances it covers where the start was set aside."""
        values = measured[(penalty, name, column)]
        kept = sum(not math.isnan(v) for v in values)
        if not kept:
            return "(set aside)"
        return f"{median(penalty, name, column):.4f}" + (f" ({kept} of {len(values)})" if kept < len(values) else "")

    rows = [
        [f"{penalty:g}", name, median(penalty, name, "iterations"),
         "{}-{}".format(*(f(measured[(penalty, name, "iterations")]) for f in (min, max))),
         f"{median(penalty, name, 'ms'):.0f}", figure(penalty, name, "loss"),
         figure(penalty, name, "bound"), f"{median(penalty, name, 'server'):.2f}",
         f"{median(penalty, name, 'link'):.2f}"]
        for penalty, name in itertools.product(args.penalties, names)
    ]
    write_table(
        f"start_quality_{args.layout}_seed{args.seed}",
        f"gnn's anytime solve from the model's prediction and from oracle starts ({args.layout}, seed {args.seed}, "
        "816 users, 9 instances per penalty; medians)",
        ["penalty", "start", "iterations", "iterations (range)", "ms", "recovery loss at the start",
         "bound above the oracle's at the start", "server log-price RMS", "link log-price RMS"], rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
