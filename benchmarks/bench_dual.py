"""The smoothed-dual solver against the exact one: gap and time against L-BFGS iterations.

For EUA instances (seed 1000, the demo's) this solves each instance exactly once, then runs
:func:`gnnalloc.families.edge.solvers.solve_dual` for each number of iterations (5 search rounds after it, its
default) and reports the gap to the exact optimum, the max violation and the wall time of both
(median of ``--repeats`` runs; the exact solver once per instance, as its time barely varies).

Run: python benchmarks/bench_dual.py [--users 816 5000 20000] [--loads 0.6 1.0 1.4]
    [--iterations 100 200 300 600] [--repeats 3]

``--anytime`` instead runs the anytime solve (``gap_tol``, ``time_limit``) on held-out instances
(``benchmarks/_heldout.py``, outside the library's generators) and on ``eua_instance``, over
penalties, alphas and loads: the default one-pass dual beside the anytime one, each with its
true gap to the exact optimum, its proven gap and its time (median of ``--repeats``), and the
anytime curve (proven gap after each checkpoint) of the first held-out instance of each penalty.

Run: python benchmarks/bench_dual.py --anytime [--penalties 2 10 25 30] [--alphas 0.5 1 2]
    [--loads 0.6 1.0 1.4] [--gap-tol-low 0.005] [--gap-tol-high 0.02] [--time-limit 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402
from _heldout import heldout_instance  # noqa: E402

import dataclasses  # noqa: E402

from gnnalloc import eua_instance, score, solve_exact  # noqa: E402
from gnnalloc.core import SolverError  # noqa: E402
from gnnalloc.families.edge.solvers import load_dual_kernels, solve_dual  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[816, 5000, 20000])
    parser.add_argument("--loads", type=float, nargs="+", default=[0.6, 1.0, 1.4])
    parser.add_argument("--iterations", type=int, nargs="+", default=[100, 200, 300, 600])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--anytime", action="store_true")
    parser.add_argument("--penalties", type=float, nargs="+", default=[2.0, 10.0, 25.0, 30.0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--layouts", nargs="+", default=["heldout", "eua_instance"])
    parser.add_argument("--gap-tol-low", type=float, default=0.005, help="gap_tol at penalty <= 10")
    parser.add_argument("--gap-tol-high", type=float, default=0.02, help="gap_tol above penalty 10")
    parser.add_argument("--time-limit", type=float, default=10.0)
    args = parser.parse_args()
    load_dual_kernels()  # as the demo does: loading (or compiling) the kernels is not solving
    if args.anytime:
        anytime(args)
        return
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


def anytime(args: argparse.Namespace) -> None:
    """The ``--anytime`` tables (module docstring)."""
    users = args.users[0]
    rows, curves = [], []
    for penalty in args.penalties:
        gap_tol = args.gap_tol_low if penalty <= 10 else args.gap_tol_high
        for layout in args.layouts:
            for alpha in args.alphas:
                for load in args.loads:
                    if layout == "heldout":
                        instance = heldout_instance(users, load, 1, penalty=penalty, alpha=alpha)
                    else:
                        instance = dataclasses.replace(eua_instance(users, load, 1000), penalty=penalty, alpha=alpha)
                    try:
                        exact = solve_exact(instance).allocation
                    except SolverError:  # Clarabel failed: the proven gaps still stand
                        exact = None
                    row = [layout, f"{penalty:g}", f"{alpha:g}", f"{load:g}"]
                    for options in ({}, {"gap_tol": gap_tol, "time_limit": args.time_limit}):
                        seconds, result = median_time(lambda: solve_dual(instance, **options), repeats=args.repeats)
                        gap = "exact failed" if exact is None else f"{score(instance, result.allocation, exact).gap:.4f}"
                        row += [gap, f"{result.gap_bound:.4f}", f"{seconds * 1000:.0f}"]
                    row.append(result.stop)
                    rows.append(row)
                    print(" | ".join(row), flush=True)
                    if layout == "heldout" and alpha == args.alphas[0] and load == args.loads[0]:
                        curve = " ".join(f"{t:.2f}s:{g:.4f}" for t, g in result.checkpoints)
                        curves.append([f"{penalty:g}", f"{alpha:g}", f"{load:g}", curve])
    write_table(
        "dual_anytime",
        f"Anytime dual on held-out and eua_instance {users}-user instances (seed 1 / 1000): one pass "
        f"vs gap_tol ({args.gap_tol_low:g} at penalty <= 10, {args.gap_tol_high:g} above), "
        f"time_limit {args.time_limit:g} s",
        ["instances", "penalty", "alpha", "load", "1-pass gap", "1-pass proven", "1-pass ms",
         "anytime gap", "anytime proven", "anytime ms", "stop"],
        rows,
    )
    write_table(
        "dual_anytime_curve", "Anytime curve: proven gap after each checkpoint (held-out, first alpha and load)",
        ["penalty", "alpha", "load", "seconds:proven gap"], curves,
    )


if __name__ == "__main__":
    main()
