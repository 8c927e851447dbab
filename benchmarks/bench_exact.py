"""Exact solver: wall time at 100 to 20,000 users, and agreement with the independent formulation.

The cross-check solves the split formulation without fallback and compares it with the default
solve only when that one came from the hypograph formulation (its fallback may have used split).

Run: python benchmarks/bench_exact.py [--repeats 3] [--sizes 100 800 5000 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402

from gnnalloc import eua_instance  # noqa: E402
from gnnalloc.families.edge.problem import max_violation  # noqa: E402
from gnnalloc.families.edge.problem import SolverError  # noqa: E402
from gnnalloc.families.edge.solvers import solve_exact  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 800, 5000, 20000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-max", type=int, default=5000, help="cross-check up to this size")
    args = parser.parse_args()
    rows = []
    for users in args.sizes:
        times, certified, agreements, violations, unchecked = [], 0, [], [], 0
        pairs = eua_instance(users, 1.0, 0).num_pairs
        for seed in range(args.repeats):
            inst = eua_instance(users, 1.0, seed)
            seconds, result = median_time(lambda: solve_exact(inst), 1)
            times.append(seconds)
            certified += int(result.certified)
            violations.append(max_violation(inst, result.allocation))
            if users <= args.check_max:
                try:
                    split = solve_exact(inst, formulation="split", fallback=False)
                except SolverError:
                    split = None
                if split is None or result.formulation != "hypograph":
                    unchecked += 1  # one of the two formulations failed: nothing independent
                    continue
                agreements.append(
                    abs(result.objective - split.objective) / max(1.0, abs(result.objective))
                )
        check = f"{max(agreements):.1e}" if agreements else "not run"
        if unchecked:
            check += f" ({unchecked} seed(s) without two independent results)"
        rows.append([
            users, pairs, f"{statistics.median(times):.2f}", f"{certified}/{args.repeats}",
            f"{max(violations):.1e}", check,
        ])
    write_table(
        "exact",
        f"Exact solver (Clarabel via cvxpy), EUA load 1.0, seeds 0..{args.repeats - 1}, median",
        ["users", "pairs (seed 0)", "median seconds", "certified optimal", "max violation",
         "max rel. diff vs split formulation"],
        rows,
    )


if __name__ == "__main__":
    main()
