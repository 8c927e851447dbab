"""Split federated learning: the exact min-max solver's time and certificate bracket, and the
baselines' round time as a ratio to the optimum, at 10 / 100 / 1,000 clients.

Per size and architecture, ``--seeds`` instances (seeds 0..); per instance the median wall time of
``--repeats`` solves (after one warm-up that compiles the kernels); the table gives medians over
the instances and the largest relative bracket ``(T_hi - T_lo) / T_hi``.

Run: python benchmarks/bench_sfl.py [--sizes 10 100 1000] [--seeds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402

from gnnalloc.families.sfl import (  # noqa: E402
    equal_allocation, max_violation, proportional_allocation, random_sfl, round_costs, solve_exact,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--architectures", nargs="+", default=["resnet18-cifar", "vit-cifar"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    solve_exact(random_sfl(5, 0))  # compile the kernels before timing
    rows = []
    for architecture in args.architectures:
        for size in args.sizes:
            times, gaps, evaluations, violations = [], [], [], []
            ratios = {"equal": [], "proportional": []}
            base_times = {"equal": [], "proportional": []}
            for seed in range(args.seeds):
                instance = random_sfl(size, seed, architecture=architecture)
                seconds, solution = median_time(lambda: solve_exact(instance), args.repeats)
                times.append(seconds)
                gaps.append(solution.relative_gap)
                evaluations.append(solution.evaluations)
                violations.append(max_violation(instance, solution.allocation))
                optimum = round_costs(instance, solution.allocation).latency.max()
                for name, allocate in (("equal", equal_allocation), ("proportional", proportional_allocation)):
                    base_seconds, allocation = median_time(lambda: allocate(instance), args.repeats)
                    base_times[name].append(base_seconds)
                    violations.append(max_violation(instance, allocation))
                    ratios[name].append(round_costs(instance, allocation).latency.max() / optimum)
            rows.append([
                architecture, size, f"{statistics.median(times):.3f}", statistics.median(evaluations),
                f"{max(gaps):.1e}", f"{max(violations):.1e}",
                f"{statistics.median(ratios['equal']):.2f} ({min(ratios['equal']):.2f}-{max(ratios['equal']):.2f})",
                f"{statistics.median(base_times['equal']):.3f}",
                f"{statistics.median(ratios['proportional']):.2f} ({min(ratios['proportional']):.2f}-{max(ratios['proportional']):.2f})",
                f"{statistics.median(base_times['proportional']):.3f}",
            ])
            print(rows[-1], flush=True)
    write_table(
        "bench_sfl", "Split federated learning: exact solver and baselines",
        ["architecture", "clients", "exact s (median)", "round times evaluated", "max bracket",
         "max violation (all methods)", "equal: max latency / optimum (median, range)", "equal s",
         "proportional: max latency / optimum", "proportional s"],
        rows,
    )


if __name__ == "__main__":
    main()
