"""Power control: the shipped learned ``gnn`` against WMMSE on held-out layouts, quality and speed.

Suites: the Gaussian channel at K = 10 and the D2D layout at K = 50, 200 and 1,000 at the default
200 links/km² (seeds 7,000,000+, the demo's), and a second range at 400 links/km² (seeds
7,000,500+), none of them used in training (trained at K <= 50, 200 links/km²). Per instance,
``gnn`` (the shipped checkpoint, model loading excluded) and ``wmmse`` (defaults: full power plus
three random starts, relative tolerance 1e-4) run alternately ``--repeats`` times after one
untimed warm-up each, in one process with one intra-op thread (as the CLI and the demo run). The
ratio is the summed objective over WMMSE's; times are medians over instances of each instance's
median; the speed-up is WMMSE's median over ``gnn``'s. Violations are the largest relative
excess over a power limit.

Run: python benchmarks/bench_power_gnn.py [--instances 5] [--repeats 3] [--sizes 10,50,200,1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_table  # noqa: E402

from gnnalloc.core import configure_threads  # noqa: E402
from gnnalloc.families.power import d2d, gaussian, score, wmmse  # noqa: E402
from gnnalloc.families.power._learned import shipped_power_allocator, solve_gnn  # noqa: E402

#: (label, seed base, D2D settings) of the two ranges.
RANGES = (
    ("200 links/km²", 7_000_000, {}),
    ("400 links/km²", 7_000_500, {"density": 400.0}),
)


def _suite(size: int, base: int, settings: dict, instances: int) -> list:
    if size == 10:
        return [gaussian(10, base + i) for i in range(instances)] if not settings else []
    return [d2d(size, base + i, **settings) for i in range(instances)]


def _timed(run, instance) -> tuple[float, object]:
    start = time.perf_counter()
    result = run(instance)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="10,50,200,1000")
    args = parser.parse_args()
    configure_threads()
    model = shipped_power_allocator()
    methods = {"gnn": lambda i: solve_gnn(i, allocator=model), "wmmse": wmmse}
    rows = []
    for label, base, settings in RANGES:
        for size in (int(s) for s in args.sizes.split(",")):
            cases = _suite(size, base, settings, args.instances)
            if not cases:
                continue
            times = {name: [] for name in methods}
            objective = {name: 0.0 for name in methods}
            violation = 0.0
            for instance in cases:
                per_run = {name: [] for name in methods}
                last = {}
                for run in methods.values():
                    run(instance)  # warm-up (caches, first-call allocations)
                for _ in range(args.repeats):
                    for name, run in methods.items():
                        seconds, last[name] = _timed(run, instance)
                        per_run[name].append(seconds)
                for name in methods:
                    report = score(instance, last[name].allocation)
                    objective[name] += report.objective
                    if name == "gnn":
                        violation = max(violation, report.max_violation)
                    times[name].append(statistics.median(per_run[name]))
            gnn_ms = 1e3 * statistics.median(times["gnn"])
            wmmse_ms = 1e3 * statistics.median(times["wmmse"])
            rows.append([
                "Gaussian" if size == 10 else f"D2D, {label}", size, len(cases),
                f"{objective['gnn'] / objective['wmmse']:.4f}", f"{gnn_ms:.1f} ms", f"{wmmse_ms:.1f} ms",
                f"{wmmse_ms / gnn_ms:.1f}x", f"{violation:.1e}",
            ])
            print(rows[-1], flush=True)
    write_table(
        "bench_power_gnn", "Power `gnn` against WMMSE (held-out)",
        ["layout", "K", "instances", "gnn / WMMSE", "gnn time", "WMMSE time", "speed-up", "violation"], rows,
    )


if __name__ == "__main__":
    main()
