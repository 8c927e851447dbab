"""Fairness backprop cost: one training step per Gram mode on the real model, N = 64 ... 4,096.

Each (mode, N) runs in a fresh subprocess so its peak RSS is its own. A step is: forward (graph
already built), per-user losses, the mode's backward, an AdamW step; then the batch is evaluated
again to count the users whose loss went down.

Run: python benchmarks/bench_fairness.py [--sizes 64 256 1024 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARES_CHECKPOINT, write_table  # noqa: E402


def _one(mode: str, users: int, repeats: int) -> dict:
    import torch

    from gnnalloc import eua_instance
    from gnnalloc.fairness import FairBackward, loss_decrease_share
    from gnnalloc.families.edge.training import per_user_loss
    from gnnalloc.families.edge.nn.allocator import Allocator
    from gnnalloc.families.edge.projection._jacobian import ProjectionJacobian

    # The shipped model, never a silent untrained stand-in: the shares measured depend on it.
    model = Allocator.from_checkpoint(SHARES_CHECKPOINT)
    model.train()
    instance = eua_instance(users, 1.0, 7)
    graph, problem = model.prepare([instance])
    times, shares, stats = [], [], None
    for _ in range(repeats):
        # Fresh optimizer and weights each repeat: every repeat measures the same first step.
        state = {k: v.clone() for k, v in model.state_dict().items()}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        fair = FairBackward(mode)
        start = time.perf_counter()
        out = model(graph, problem)
        losses = per_user_loss(problem, out.compute, out.bandwidth)
        optimizer.zero_grad()
        pullback = ProjectionJacobian(problem, out.compute, out.bandwidth) if mode == "output" else None
        stats = fair(losses, list(model.parameters()), compute=out.compute, bandwidth=out.bandwidth,
                     pair_user=problem.pair_user, pullback=pullback)
        optimizer.step()
        times.append(time.perf_counter() - start)
        with torch.no_grad():
            after = model(graph, problem)
            shares.append(loss_decrease_share(losses.detach(), per_user_loss(problem, after.compute, after.bandwidth)))
        model.load_state_dict(state)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": statistics.median(times), "share": statistics.median(shares), "peak_mib": peak_mib,
        "stationary": stats.stationary, "entropy": stats.weights_entropy,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--exact-max", type=int, default=1024,
                        help="exact mode above this size is skipped (N backward passes, N x d memory)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "USERS", "REPEATS"))
    args = parser.parse_args()
    if args.child:
        mode, users, repeats = args.child
        print(json.dumps(_one(mode, int(users), int(repeats))))
        return
    rows = []
    for users in args.sizes:
        results = {}
        for mode in ("sum", "output", "exact"):
            if mode == "exact" and users > args.exact_max:
                continue
            repeats = 1 if mode == "exact" and users > 256 else args.repeats
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(users), str(repeats)],
                capture_output=True, text=True, check=True,
            )
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        base = results["sum"]["seconds"]
        for mode, r in results.items():
            rows.append([
                users, mode, f"{r['seconds']:.3f}", f"{r['seconds'] / base:.2f}x",
                f"{r['peak_mib']:.0f}", f"{r['share']:.3f}", "yes" if r["stationary"] else "no",
            ])
        if "exact" not in results:
            rows.append([users, "exact", "not run", "", "", "", "N x d Jacobian, N backward passes"])
    write_table(
        "fairness",
        f"One training step per fairness mode (EUA load 1.0, real model), median of {args.repeats}",
        ["users", "mode", "step seconds", "vs sum", "peak RSS MiB", "share of users whose loss fell",
         "Pareto-stationary"],
        rows,
    )


if __name__ == "__main__":
    main()
