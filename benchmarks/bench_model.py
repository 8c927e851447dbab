"""The learned allocator end to end: graph build, encoder + heads, fast projection, home refill,
total.

Run: python benchmarks/bench_model.py [--sizes 100 800 5000 20000] [--repeats 3]
Uses the shipped checkpoint (or --checkpoint) when present, else an untrained model (same cost).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import SHARES_CHECKPOINT, median_time, write_table  # noqa: E402

from gnnalloc import eua_instance  # noqa: E402
from gnnalloc.families.edge.nn.allocator import Allocator  # noqa: E402
from gnnalloc.families.edge.problem import max_violation  # noqa: E402
from gnnalloc.families.edge.solvers.functional import refill_home_compute  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 800, 5000, 20000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=str(SHARES_CHECKPOINT))
    args = parser.parse_args()
    path = Path(args.checkpoint)
    model = Allocator.from_checkpoint(path) if path.is_file() else Allocator()
    model.eval()
    model.allocate(eua_instance(50, 1.0, 0))  # warm-up
    rows = []
    for users in args.sizes:
        inst = eua_instance(users, 1.0, 1000)
        build, (graph, problem) = median_time(lambda: model.prepare([inst]), args.repeats)
        with torch.no_grad():
            def forward():
                emb = model.encoder(graph)
                u, s = emb["user"], emb["server"]
                return model.heads(u, s, graph, problem)

            encode, (raw_c, raw_b) = median_time(forward, args.repeats)
            project, (x, y) = median_time(lambda: model.projection(raw_c, raw_b, problem), args.repeats)
            refill, _ = median_time(lambda: refill_home_compute(x, problem), args.repeats)
        total, alloc = median_time(lambda: model.allocate(inst), args.repeats)
        rows.append([
            users, inst.num_pairs, f"{build * 1000:.0f}", f"{encode * 1000:.0f}",
            f"{project * 1000:.0f}", f"{refill * 1000:.0f}", f"{total * 1000:.0f}", f"{max_violation(inst, alloc):.1e}",
        ])
    write_table(
        "model",
        f"Allocator.allocate on EUA instances (load 1.0), median of {args.repeats}, {torch.get_num_threads()} threads",
        ["users", "pairs", "graph build ms", "encoder+heads ms", "fast projection ms", "home refill ms",
         "allocate() total ms",
         "max violation"],
        rows,
    )


if __name__ == "__main__":
    main()
