"""Graph build, HAN encoder forward and decision heads: wall time at 100 to 20,000 EUA users.

Encoder and heads run with default sizes (hidden 64, 4 heads, 2 layers), in eval mode without
gradients; the encoder also with ``outputs=("server",)`` (what a head on servers alone needs), and
the shipped price model's whole ``predict`` (graph, water-filling references, encoder, heads).
Each figure is the median of ``--repeats`` runs on ``eua_instance(users, 1.0, 0)``
(pair arrays already enumerated, as on any instance that was validated or scored).

Run: python benchmarks/bench_graph.py [--repeats 3] [--sizes 100 800 5000 20000] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, median_time, write_table  # noqa: E402

from gnnalloc import eua_instance  # noqa: E402
from gnnalloc.families.edge.graph import DEFAULT_MAX_METAPATH_NEIGHBORS, build_graph  # noqa: E402
from gnnalloc.families.edge.graph import SCHEMA  # noqa: E402
from gnnalloc.families.edge import shipped_allocator  # noqa: E402
from gnnalloc.families.edge.nn import DecisionHeads  # noqa: E402
from gnnalloc.nn import HANEncoder  # noqa: E402
from gnnalloc.families.edge.problem import ProblemTensors  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 800, 5000, 20000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-neighbors", type=int, default=DEFAULT_MAX_METAPATH_NEIGHBORS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    # Named parser errors rather than tracebacks from the statistics, the generator or torch.
    for name, value, least in (("--repeats", args.repeats, 1), ("--max-neighbors", args.max_neighbors, 0),
                               ("--threads", args.threads, 1), *(("--sizes", v, 1) for v in args.sizes)):
        if value is not None and value < least:
            parser.error(f"{name}: must be at least {least}, got {value}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    encoder, heads = HANEncoder(SCHEMA).eval(), DecisionHeads(64).eval()
    price_model = shipped_allocator()
    rows = []
    for users in args.sizes:
        instance = eua_instance(users, 1.0, 0)
        instance.pair_user  # enumerate the (cached) pair arrays outside the timing
        build, graph = median_time(
            lambda: build_graph(instance, max_metapath_neighbors=args.max_neighbors),
            args.repeats,
            warmup=1,
        )
        problem = ProblemTensors.from_instance(instance)
        with torch.no_grad():
            forward, emb = median_time(lambda: encoder(graph), args.repeats, warmup=1)
            servers_only, _ = median_time(lambda: encoder(graph, ("server",)), args.repeats, warmup=1)
            user, server = emb["user"], emb["server"]
            decide, _ = median_time(lambda: heads(user, server, graph, problem), args.repeats, warmup=1)
        predict, _ = median_time(lambda: price_model.predict(instance), args.repeats, warmup=1)
        rows.append(
            [
                users,
                instance.num_servers,
                instance.num_pairs,
                graph["user", "execute", "user"].edge_index.shape[1],
                graph["user", "migrate", "user"].edge_index.shape[1],
                f"{1e3 * build:.1f}",
                f"{1e3 * forward:.1f}",
                f"{1e3 * servers_only:.1f}",
                f"{1e3 * decide:.1f}",
                f"{1e3 * predict:.1f}",
            ]
        )
    header = [
        "users", "servers", "pairs", "execute edges", "migrate edges", "build (ms)",
        "encoder (ms)", "encoder, servers only (ms)", "heads (ms)", "price model predict (ms)",
    ]
    write_table(
        "graph",
        f"Graph build and model forward (median of {args.repeats}; "
        f"max_metapath_neighbors={args.max_neighbors}, torch threads={torch.get_num_threads()})",
        header,
        rows,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    note = f"\nLoad average (1 min) at the end of the run: {load:.2f}.\n"
    with open(OUT / "graph.md", "a") as f:
        f.write(note)
    print(note)


if __name__ == "__main__":
    main()
