"""The smoothed-dual solver against the exact one: gap and time against L-BFGS iterations.

For EUA instances (seed 1000, the demo's) this solves each instance exactly once, then runs
:func:`gnnalloc.families.edge.solvers.solve_dual` for each number of iterations (5 search rounds after it, its
default) and reports the gap to the exact optimum, the max violation and the wall time of both
(median of ``--repeats`` runs; the exact solver once per instance, as its time barely varies).

Run: python benchmarks/bench_dual.py [--users 816 5000 20000] [--loads 0.6 1.0 1.4]
    [--iterations 100 200 300 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402

from gnnalloc import eua_instance, score, solve_exact  # noqa: E402
from gnnalloc.families.edge.solvers import load_dual_kernels, solve_dual  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[816, 5000, 20000])
    parser.add_argument("--loads", type=float, nargs="+", default=[0.6, 1.0, 1.4])
    parser.add_argument("--iterations", type=int, nargs="+", default=[100, 200, 300, 600])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_dual_kernels()  # as the demo does: loading (or compiling) the kernels is not solving
    rows = []
    for users in args.users:
        for load in args.loads if users == args.users[0] else [1.0]:
            instance = eua_instance(users, load, 1000)
            start = time.perf_counter()
            exact = solve_exact(instance).allocation
            exact_seconds = time.perf_counter() - start
            for iterations in args.iterations:
                seconds, result = median_time(
                    lambda: solve_dual(instance, iterations=iterations), repeats=args.repeats
                )
                report = score(instance, result.allocation, exact)
                rows.append(
                    [users, f"{load:g}", iterations, f"{report.gap:.4f}", f"{report.max_violation:.1e}",
                     f"{seconds * 1000:.0f}", f"{exact_seconds * 1000:.0f}", f"{exact_seconds / seconds:.1f}x"]
                )
    write_table(
        "dual", "Smoothed dual (+5 search rounds) against the exact solver (EUA, seed 1000)",
        ["users", "load", "iterations", "gap to opt.", "max violation", "dual ms", "exact ms", "speed-up"],
        rows,
    )


if __name__ == "__main__":
    main()
