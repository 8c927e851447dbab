"""Power control: proportional-fair time sharing (``proportional_fair_frame``), the trade-off
between sum rate and the bottom of the rate distribution over a frame of slots.

Per instance and per-slot allocator (the shipped sum-rate ``gnn`` through ``gnnalloc.solve``, or
``--checkpoint``'s model, and WMMSE), the frame's ``--slots`` slots are computed once: slot 1 the
allocator's answer, each next one its answer to the weighted sum rate with weights
``(mean rate so far + eps)^-alpha``. Each ``fair_time`` of ``--fair-times`` then mixes them
(slot 1 gets ``1 - fair_time + fair_time / T`` of the time, every other slot ``fair_time / T``):
0 is the allocator's own answer. Reported per suite, allocator and ``fair_time``: the frame's
sum rate as a share of the allocator's own answer (summed over instances; worst instance) and of
WMMSE's, the mean 5th-percentile and median rates, their ratio (per instance, averaged; and of
the means), how many instances keep >= 90 % of the allocator's own sum rate with a 5th
percentile >= 10 % of their median (fairness backprop's power target (ii), instance by
instance), the share of links below 1e-6 bits/s/Hz, and the median time per instance of the
whole frame (one intra-op thread). With ``--p5-rates``, also each rate target's rows: per
instance the least ``fair_time`` whose 5th-percentile average rate reaches it
(``least_fair_time``), its median over instances in the ``fair_time`` column.

Run: python benchmarks/bench_power_frame.py [--instances 20] [--slots 16] [--alpha 1]
     [--fair-times 0 0.1 0.2 0.3 0.5 1] [--p5-rates 0.05 0.1] [--seed 7000000] [--sparse 25 50 100]
     [--checkpoint C]
Writes power_frame_seed{SEED}.md (power_frame_sparse_... with --sparse, ..._{checkpoint stem}_...
with --checkpoint, ..._p5_... with --p5-rates).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import number, power_suites, rate_front_cells, rate_front_header, write_table  # noqa: E402

from gnnalloc import solve  # noqa: E402
from gnnalloc.core import configure_threads  # noqa: E402
from gnnalloc.families.power import (  # noqa: E402
    PowerAllocation, PowerInstance, fair_time_rates, frame_rates, least_fair_time, proportional_fair_frame, wmmse,
)
from gnnalloc.families.power._instance import MAX_ALPHA  # noqa: E402
from gnnalloc.families.power._model import PowerAllocator  # noqa: E402


def _allocators(checkpoint: str | None) -> dict[str, Callable[[PowerInstance], PowerAllocation]]:
    """The per-slot allocators: the learned one (the shipped model, or ``checkpoint``'s, loaded
    once) and WMMSE."""
    model = None if checkpoint is None else PowerAllocator.from_checkpoint(checkpoint)
    return {
        "gnn": lambda instance: solve(instance, method="gnn", allocator=model).allocation,
        "wmmse": lambda instance: wmmse(instance).allocation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=number(int, 1), default=20, help="instances per suite (a quarter at K = 200)")
    parser.add_argument("--slots", type=number(int, 1), default=16, help="slots per frame")
    parser.add_argument("--alpha", type=number(float, 0.0, MAX_ALPHA), default=1.0,
                        help="alpha of the slot weights (1: proportional fair)")
    parser.add_argument("--fair-times", type=number(float, 0.0, 1.0), nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5, 1.0],
                        help="fair_time values to report (0 is always reported)")
    parser.add_argument("--p5-rates", type=number(float, 0.0), nargs="*", default=[], metavar="BITS_PER_S_HZ",
                        help="also rows at the least fair_time reaching each 5th-percentile rate target")
    parser.add_argument("--seed", type=number(int, 0), default=7_000_000,
                        help="first instance seed of the suites (the held-out suites of the other power benchmarks)")
    parser.add_argument("--checkpoint", default=None,
                        help="the learned allocator's checkpoint (default: the shipped power model)")
    parser.add_argument("--sparse", type=number(float, 0.0, above=True), nargs="*", default=[], metavar="LINKS_PER_KM2",
                        help="instead of the default suites, D2D K = 50 at these densities")
    args = parser.parse_args()
    fair_times = sorted({0.0, *args.fair_times})
    configure_threads(1)
    try:
        allocators = _allocators(args.checkpoint)
    except (OSError, ValueError) as exc:  # a missing or foreign checkpoint, named
        parser.error(f"--checkpoint: {exc}")
    allocators["gnn"](power_suites(1, (), args.seed)["d2d K=20"][0])  # first-call costs, outside the timings
    rows = []
    for suite, cases in power_suites(args.instances, args.sparse, args.seed).items():
        fronts, seconds, frames = {}, {}, {}
        for name, allocate in allocators.items():
            fronts[name], seconds[name], frames[name] = [], [], []
            for instance in cases:
                start = time.perf_counter()
                frame = proportional_fair_frame(instance, allocate, slots=args.slots, alpha=args.alpha)
                seconds[name].append(time.perf_counter() - start)
                frames[name].append(frame)
                # (fair_time, link) average rates; fair_times[0] is 0, the allocator's own answer.
                fronts[name].append(fair_time_rates(instance, frame, fair_times))
        own = {name: np.array([front[0].sum() for front in fronts[name]]) for name in fronts}
        for name in allocators:
            ms = statistics.median(seconds[name]) * 1000
            for column, fair_time in enumerate(fair_times):
                rates = [front[column] for front in fronts[name]]
                rows.append([suite, name, f"{fair_time:g}", *rate_front_cells(rates, own[name], own["wmmse"]), f"{ms:.0f}"])
                print(" | ".join(rows[-1]), flush=True)
            for target in args.p5_rates:
                chosen = [least_fair_time(i, f, target) for i, f in zip(cases, frames[name])]
                rates = [frame_rates(i, f.with_fair_time(t)) for i, f, t in zip(cases, frames[name], chosen)]
                label = f"p5 >= {target:g}: {statistics.median(chosen):.3f}"
                rows.append([suite, name, label, *rate_front_cells(rates, own[name], own["wmmse"]), f"{ms:.0f}"])
                print(" | ".join(rows[-1]), flush=True)
    stem = "power_frame_sparse" if args.sparse else "power_frame"
    if args.checkpoint is not None:
        stem += f"_{Path(args.checkpoint).stem}"
    if args.p5_rates:
        stem += "_p5"
    write_table(
        f"{stem}_seed{args.seed}",
        f"bench_power_frame.py — proportional-fair time sharing, {args.slots} slots, alpha {args.alpha:g}, "
        f"seeds {args.seed}+",
        ["suite", "allocator", "fair_time", *rate_front_header("share of own sum rate"), "frame ms"],
        rows,
    )


if __name__ == "__main__":
    main()
