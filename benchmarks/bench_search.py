"""What the migration search buys: gap and time against the number of rounds.

For EUA instances (seed 1000, never used in training) this runs the shipped model once, then
:func:`gnnalloc.families.edge.solvers.improve_migrations` on its output for each number of rounds, and reports
the gap to the exact optimum and the search's own wall time (median of ``--repeats``; the
model's forward pass is not included), plus how many users sit below their minimum.

Run: python benchmarks/bench_search.py [--users 816 5000] [--loads 0.6 1.0 1.4] [--rounds 0 1 3 5 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import SHARES_CHECKPOINT, median_time, write_table  # noqa: E402

from gnnalloc import Allocation, eua_instance, score, solve_exact  # noqa: E402
from gnnalloc.families.edge.nn.allocator import Allocator  # noqa: E402
from gnnalloc.families.edge.solvers import improve_migrations  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[816, 5000])
    parser.add_argument("--loads", type=float, nargs="+", default=[0.6, 1.0, 1.4])
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 1, 3, 5, 10])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", default=str(SHARES_CHECKPOINT))
    args = parser.parse_args()
    model = Allocator.from_checkpoint(args.checkpoint)
    rows = []
    for users in args.users:
        for load in args.loads if users == args.users[0] else [1.0]:
            instance = eua_instance(users, load, 1000)
            exact = solve_exact(instance).allocation
            graph, problem = model.prepare([instance])
            with torch.no_grad():
                out = model(graph, problem)
            bandwidth = out.bandwidth.to(torch.float64).numpy()
            for rounds in args.rounds:
                seconds, compute = median_time(
                    lambda: improve_migrations(out.compute, problem, rounds), repeats=args.repeats
                )
                x = compute.to(torch.float64)
                report = score(instance, Allocation(compute=x.numpy(), bandwidth=bandwidth), exact)
                below = int((problem.user_compute(x) < problem.compute_min * (1 - 1e-9)).sum())
                rows.append(
                    [users, f"{load:g}", rounds, f"{report.gap:.4f}", below,
                     f"{report.max_violation:.1e}", f"{seconds * 1000:.1f}"]
                )
    write_table(
        "search", "Migration search on the shipped model's output (EUA, seed 1000)",
        ["users", "load", "rounds", "gap to opt.", "users below minimum", "max violation", "search ms"],
        rows,
    )


if __name__ == "__main__":
    main()
