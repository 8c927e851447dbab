"""What clearing a predicted start's link prices buys ``gnn``: its anytime solve from the shipped
model's prediction with the links as predicted and with them cleared at the predicted server
prices (``solve_dual(clear_start_links=...)``), on held-out instances (:mod:`benchmarks._heldout`).

For every instance (``--users`` of ``--layout`` and ``--seed``, ``--servers`` for the random and
clustered layouts, loads 0.6 / 1.0 / 1.4 x alpha 0.5 / 1 / 2, at ``--penalty``), both solves run
as ``gnn`` runs them (prediction included in the time: water-filling, prediction, ``solve_dual``
with :func:`~gnnalloc.families.edge.gnn_refinement_options`), one untimed call each, then the
median of ``--repeats`` calls; ``dual`` as a user calls it gives the time ratio; ``exact`` the
true gap (every proven bound is checked against its optimum, asserted). ``--force`` clears the
links whatever the users per server (``solve_dual`` clears them only up to
``_CLEARING_MAX_USERS_PER_SERVER``), to measure where that limit should lie. Per row: median L-BFGS
iterations, median time over ``dual``'s, how many instances take at most half of ``dual``'s time,
the largest true gap. Writes ``benchmarks/out/link_clearing_{layout}_seed{seed}_{users}u{...}.md``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_link_clearing.py --layout eua --seed 1 \\
        [--users 816] [--servers N] [--penalty 10] [--repeats 3] [--force]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, number, objective, proven_bound, write_table  # noqa: E402
from _heldout import heldout_instance  # noqa: E402

from gnnalloc import solve  # noqa: E402
from gnnalloc.families.edge import gnn_refinement_options, shipped_allocator  # noqa: E402
from gnnalloc.families.edge.problem import ProblemTensors  # noqa: E402
from gnnalloc.families.edge.solvers import solve_dual  # noqa: E402
from gnnalloc.families.edge.solvers import _dual  # noqa: E402  (--force lifts the density limit)
from gnnalloc.families.edge.solvers.functional import waterfill_prices  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=["eua", "random", "clustered"], default="eua")
    parser.add_argument("--seed", type=number(int, 0), default=1)
    parser.add_argument("--users", type=number(int, 2), default=816)
    parser.add_argument("--servers", type=number(int, 2), default=None, help="random and clustered layouts")
    parser.add_argument("--penalty", type=number(float, 1.0), default=10.0)
    parser.add_argument("--repeats", type=number(int, 1), default=3)
    parser.add_argument("--force", action="store_true", help="clear the links whatever the users per server")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.force:
        _dual._CLEARING_MAX_USERS_PER_SERVER = float("inf")
    model = shipped_allocator()
    measured: dict[bool, tuple[list, list, list]] = {False: ([], [], []), True: ([], [], [])}
    density = None
    for load, alpha in itertools.product((0.6, 1.0, 1.4), (0.5, 1.0, 2.0)):
        instance = heldout_instance(args.users, load, args.seed, penalty=args.penalty, alpha=alpha,
                                    layout=args.layout, servers=args.servers)
        density = instance.num_users / instance.num_servers
        exact = solve(instance, "exact")
        optimum, weight = objective(instance, exact.allocation), float(instance.weight.sum())
        solve(instance, "dual")
        dual_seconds = median_time(lambda: solve(instance, "dual"), args.repeats)[0]

        def gnn(clear: bool):
            # gnn's own steps, timed from the water-filling on, with the clearing switched.
            clock = time.perf_counter()
            water_filling = waterfill_prices(ProblemTensors.from_instance(instance, dtype=torch.float64))
            start = model.predict(instance, water_filling)
            options = {**gnn_refinement_options(model, instance), "clear_start_links": clear}
            result = solve_dual(instance, start=start, water_filling=water_filling, **options)
            return time.perf_counter() - clock, result

        line = [f"load {load} alpha {alpha}: dual {1e3 * dual_seconds:.1f} ms"]
        for clear in (False, True):
            gnn(clear)  # untimed
            runs = [gnn(clear) for _ in range(args.repeats)]
            seconds, result = statistics.median(run[0] for run in runs), runs[-1][1]
            assert proven_bound(result) >= optimum - 1e-6 * max(1.0, abs(optimum)), instance
            iterations, ratios, gaps = measured[clear]
            iterations.append(result.iterations)
            ratios.append(seconds / dual_seconds)
            gaps.append((optimum - objective(instance, result.allocation)) / weight)
            line.append(f"{'cleared' if clear else 'as predicted'} {result.iterations} it {ratios[-1]:.2f}x")
        print(", ".join(line), flush=True)
    rows = [
        ["links cleared" if clear else "links as predicted", statistics.median(iterations),
         f"{statistics.median(ratios):.2f}", f"{sum(r <= 0.5 for r in ratios)} of {len(ratios)}", f"{max(gaps):.4f}"]
        for clear, (iterations, ratios, gaps) in measured.items()
    ]
    servers = f"_{args.servers}s" if args.servers else ""
    write_table(
        f"link_clearing_{args.layout}_seed{args.seed}_{args.users}u{servers}{'_forced' if args.force else ''}",
        f"gnn from the shipped model's prediction, links as predicted or cleared ({args.layout}, seed {args.seed}, "
        f"{args.users} users, {density:.1f} per server, penalty {args.penalty:g}{', clearing forced' if args.force else ''}; "
        "9 instances, medians)",
        ["start", "iterations", "time / dual's", "at most half", "true gap: max"], rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
