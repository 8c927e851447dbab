"""Projection layers: FastProjection (torch) against CvxpyProjection (cvxpylayers + Clarabel).

Times forward and forward+backward at 100 and 1,000 users (EUA, load 1.0), batch 1 and 32, and
the fast projection alone at 5,000 and 20,000 users. Batch 32 means 32 different raw inputs on the
same instance: one ``(32, P)`` call, which cvxpylayers solves as 32 programs (diffcp's thread pool)
and FastProjection as one collated block-diagonal problem.

Raw inputs imitate a model's output: each pair gets its user's compute demand split evenly over
the user's candidates times ``1 + N(0, 1)`` (about 16% negative), and each user its bandwidth
demand times ``1 + N(0, 1)``. Times are medians; the fast path after one warm-up run, the
cvxpylayers layer without one (it is built, which takes seconds, before timing; a warm-up would
double the longest runs, and its first call measured within the spread of the others). "max abs diff" compares the two forward outputs.

Each measurement runs in a fresh process: on a small shared machine, what ran before (large
allocations, numerical libraries' spinning worker threads after cvxpy's solves) otherwise shifts
the next timings by up to 2x.

Run: python benchmarks/bench_projection.py [--repeats 3] [--fast-repeats 9] [--sizes 100 1000]
     [--batches 1 32] [--fast-sizes 5000 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402

from gnnalloc import eua_instance  # noqa: E402
from gnnalloc.families.edge.problem import Instance, ProblemTensors  # noqa: E402
from gnnalloc.families.edge.projection import CvxpyProjection, FastProjection  # noqa: E402


def raw_inputs(instance: Instance, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-like raw decisions, ``(batch, P)`` and ``(batch, U)`` float64."""
    rng = np.random.default_rng(seed)
    degree = np.diff(instance.user_pair_ptr)[instance.pair_user]
    share = instance.compute_min[instance.pair_user] / degree
    compute = share * (1.0 + rng.normal(size=(batch, instance.num_pairs)))
    bandwidth = instance.bandwidth_min * (1.0 + rng.normal(size=(batch, instance.num_users)))
    return torch.tensor(compute), torch.tensor(bandwidth)


def timed(projection, raw_c, raw_b, problem, backward: bool, repeats: int, warmup: int = 1):
    """Median seconds of a forward (and backward with a fixed random cotangent) pass."""
    generator = torch.Generator().manual_seed(0)
    cot_c = torch.randn(raw_c.shape, generator=generator, dtype=raw_c.dtype)
    cot_b = torch.randn(raw_b.shape, generator=generator, dtype=raw_b.dtype)

    def run():
        c = raw_c.detach().requires_grad_(backward)
        b = raw_b.detach().requires_grad_(backward)
        x, y = projection(c, b, problem)
        if backward:
            ((x * cot_c).sum() + (y * cot_b).sum()).backward()
        return x.detach(), y.detach()

    return median_time(run, repeats, warmup=warmup)


def worker(which: str, users: int, batch: int, repeats: int) -> dict:
    """One measurement (run in its own process by ``main``)."""
    instance = eua_instance(users, 1.0, 0)
    problem = ProblemTensors.from_instance(instance)
    raw_c, raw_b = raw_inputs(instance, batch, seed=users + batch)
    result: dict = {"pairs": instance.num_pairs}
    if which == "fast":
        fast = FastProjection()
        result["forward"], _ = timed(fast, raw_c, raw_b, problem, False, repeats)
        result["iterations"] = fast.last_stats.iterations
        result["both"], _ = timed(fast, raw_c, raw_b, problem, True, repeats)
    else:
        reference = CvxpyProjection()
        reference._layer(problem)  # build outside the timings: it is cached per structure
        result["forward"], (x_ref, y_ref) = timed(reference, raw_c, raw_b, problem, False, repeats, 0)
        result["both"], _ = timed(reference, raw_c, raw_b, problem, True, repeats, 0)
        x, y = FastProjection()(raw_c, raw_b, problem)
        result["diff"] = max(float((x - x_ref).abs().max()), float((y - y_ref).abs().max()))
    return result


def measure(which: str, users: int, batch: int, repeats: int) -> dict:
    command = [
        sys.executable, __file__, "--worker", which, "--users", str(users), "--batch", str(batch),
        "--repeats", str(repeats),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--fast-sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of cvxpylayers")
    parser.add_argument("--fast-repeats", type=int, default=9, help="runs of the fast projection")
    parser.add_argument("--worker", choices=["fast", "cvxpy"], help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.users, args.batch, args.repeats)))
        return

    rows = []
    configs = [(u, b) for u in args.sizes for b in args.batches] + [(u, 1) for u in args.fast_sizes]
    for users, batch in configs:
        fast = measure("fast", users, batch, args.fast_repeats)
        row = [users, fast["pairs"], batch, f"{fast['forward'] * 1e3:.1f}", f"{fast['both'] * 1e3:.1f}"]
        if users in args.sizes:
            ref = measure("cvxpy", users, batch, args.repeats)
            row += [
                f"{ref['forward'] * 1e3:.0f}", f"{ref['both'] * 1e3:.0f}",
                f"{ref['forward'] / fast['forward']:.0f}x", f"{ref['both'] / fast['both']:.0f}x",
                f"{ref['diff']:.1e}",
            ]
        else:
            row += ["not run", "not run", "", "", ""]
        rows.append(row + [fast["iterations"]])
        print(rows[-1], flush=True)
    write_table(
        "projection",
        f"Projection layers, EUA load 1.0 seed 0, float64; median of {args.fast_repeats} runs "
        f"(fast) and {args.repeats} (cvxpylayers), each configuration in a fresh process, in ms",
        [
            "users", "pairs", "batch", "fast fwd", "fast fwd+bwd", "cvxpylayers fwd",
            "cvxpylayers fwd+bwd", "speed-up fwd", "speed-up fwd+bwd", "max abs diff",
            "fast iterations",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
