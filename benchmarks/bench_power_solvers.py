"""Power control: WMMSE against FP, the baselines and (K <= 4) the certified optimum.

For each size, ``--instances`` held-out layouts (seeds 1000, 1001, ...): the Gaussian
interference channel at K = 4 and 10, the spatial D2D layout at K = 50, 200 and 1,000. Every
method's objective is reported as a ratio to WMMSE's (mean over instances), its time as the median
over instances of the median of ``--repeats`` runs, and the mean per-link utility gap to WMMSE
(:attr:`PowerScore.gap`; positive = worse than WMMSE, the comparable figure for alpha_fair, whose
objectives may be negative). WMMSE runs with its defaults (relative
objective tolerance 1e-4, at most 500 iterations, full power plus three random starts); its
iterations are counted on the same starts. The optimum row gives how many instances were
certified and the mean proven bound on WMMSE's own per-link gap to the optimum.

Run: python benchmarks/bench_power_solvers.py [--instances 3] [--repeats 3] [--utility sum_rate]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402

from gnnalloc.families.power import (  # noqa: E402
    MAX_OPTIMUM_LINKS, NormalisedProblem, WMMSE_STARTS, d2d, fp, full_power, gaussian, greedy, optimum,
    score, starting_points, wmmse, wmmse_powers,
)

SIZES = [("gaussian", 4), ("gaussian", 10), ("d2d", 50), ("d2d", 200), ("d2d", 1000)]
GENERATORS = {"gaussian": gaussian, "d2d": d2d}
METHODS = {"wmmse": wmmse, "fp": fp, "greedy": greedy, "full_power": full_power}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--utility", choices=["sum_rate", "alpha_fair"], default="sum_rate")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="only these K")
    parser.add_argument("--optimum-time-limit", type=float, default=30.0)
    args = parser.parse_args()
    rows = []
    for layout, size in SIZES:
        if args.sizes and size not in args.sizes:
            continue
        instances = [GENERATORS[layout](size, seed=1000 + i, utility=args.utility) for i in range(args.instances)]
        reference = [wmmse(inst).allocation for inst in instances]
        methods = dict(METHODS)
        if size <= MAX_OPTIMUM_LINKS:
            methods["optimum"] = lambda inst: optimum(inst, time_limit=args.optimum_time_limit)
        iterations = [
            wmmse_powers(NormalisedProblem.of(inst), starting_points(NormalisedProblem.of(inst), WMMSE_STARTS)).iterations
            for inst in instances
        ]
        for name, method in methods.items():
            times, ratios, gaps, reports, certified, bound_gaps = [], [], [], [], 0, []
            for inst, ref_allocation in zip(instances, reference):
                ref = score(inst, ref_allocation).objective
                repeats = 1 if name == "optimum" else args.repeats
                seconds, result = median_time(lambda: method(inst), repeats=repeats)
                report = score(inst, result.allocation, reference=ref_allocation)
                gaps.append(report.gap)
                times.append(seconds)
                ratios.append(report.objective / ref)
                reports.append(report)
                certified += int(result.certified_optimal)
                if result.upper_bound is not None:  # proven: how far WMMSE can be from optimal
                    bound_gaps.append((result.upper_bound - ref) / float(inst.weight.sum()))
            extra = ""
            if name == "wmmse":
                extra = f"{statistics.median(iterations):.0f} iterations (median)"
            if name == "optimum":
                extra = (f"{certified}/{len(instances)} certified; (bound - WMMSE) per link "
                         f"{statistics.mean(bound_gaps):.2e}")
            rows.append([
                f"{layout} K={size}", name,
                f"{statistics.mean(ratios):.4f}" if args.utility == "sum_rate" else "-",
                f"{statistics.mean(gaps):.4f}", f"{max(gaps):.4f}",
                f"{statistics.mean(r.min_rate for r in reports):.3g}", f"{statistics.mean(r.jain for r in reports):.3f}",
                f"{statistics.median(times) * 1000:.1f}", extra,
            ])
    write_table(
        f"power_solvers_{args.utility}",
        f"Power control ({args.utility}): objective / WMMSE's, time (median of {args.repeats} runs, "
        f"{args.instances} instances)",
        ["instances", "method", "objective / WMMSE (mean)", "gap to WMMSE per link (mean)", "(worst)",
         "min rate (mean)", "Jain (mean)",
         "time ms (median)", "notes"],
        rows,
    )


if __name__ == "__main__":
    main()
