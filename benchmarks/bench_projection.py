"""Projection layers: FastProjection (torch) against CvxpyProjection (cvxpylayers + Clarabel).

Times forward and forward+backward at 100 and 1,000 users (EUA, load 1.0), batch 1 and 32, and
the fast projection alone at 5,000 and 20,000 users. Batch 32 means 32 different raw inputs on the
same instance: one ``(32, P)`` call, which cvxpylayers solves as 32 programs (diffcp's thread pool)
and FastProjection as one collated block-diagonal problem.

Raw inputs imitate a model's output: each pair gets its user's compute demand split evenly over
the user's candidates times ``1 + N(0, 1)`` (about 16% negative), and each user its bandwidth
demand times ``1 + N(0, 1)``. Times are medians; "max |diff|" compares the two forward outputs.

Run: python benchmarks/bench_projection.py [--repeats 3] [--fast-repeats 9] [--sizes 100 1000]
     [--batches 1 32] [--fast-sizes 5000 20000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402

from gnnalloc import eua_instance  # noqa: E402
from gnnalloc.problem import Instance, ProblemTensors  # noqa: E402
from gnnalloc.projection import CvxpyProjection, FastProjection  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--fast-sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of cvxpylayers")
    parser.add_argument("--fast-repeats", type=int, default=9, help="runs of the fast projection")
    args = parser.parse_args()

    fast = FastProjection()
    reference = CvxpyProjection()
    cases = []
    # All fast timings first: cvxpy's numerical libraries leave worker threads spinning for a
    # while after each solve, which would slow down whatever runs next on a 2-core machine.
    for users in args.sizes + args.fast_sizes:
        instance = eua_instance(users, 1.0, 0)
        problem = ProblemTensors.from_instance(instance)
        batches = args.batches if users in args.sizes else [1]
        for batch in batches:
            raw_c, raw_b = raw_inputs(instance, batch, seed=users + batch)
            fast_fwd, (x_fast, y_fast) = timed(fast, raw_c, raw_b, problem, False, args.fast_repeats)
            iterations = fast.last_stats.iterations
            fast_both, _ = timed(fast, raw_c, raw_b, problem, True, args.fast_repeats)
            cases.append((users, instance, problem, batch, raw_c, raw_b, fast_fwd, fast_both,
                          x_fast, y_fast, iterations))
            print(users, batch, f"fast {fast_fwd * 1e3:.1f} / {fast_both * 1e3:.1f} ms", flush=True)
    rows = []
    for users, instance, problem, batch, raw_c, raw_b, fast_fwd, fast_both, x_fast, y_fast, its in cases:
        if users in args.sizes:
            reference._layer(problem)  # build (seconds) outside the timings, as it is cached
            ref_fwd, (x_ref, y_ref) = timed(reference, raw_c, raw_b, problem, False, args.repeats, 0)
            ref_both, _ = timed(reference, raw_c, raw_b, problem, True, args.repeats, 0)
            diff = max(float((x_fast - x_ref).abs().max()), float((y_fast - y_ref).abs().max()))
            reference_cells = [
                f"{ref_fwd * 1e3:.0f}", f"{ref_both * 1e3:.0f}", f"{ref_fwd / fast_fwd:.0f}x",
                f"{ref_both / fast_both:.0f}x", f"{diff:.1e}",
            ]
        else:
            reference_cells = ["not run", "not run", "", "", ""]
        rows.append([
            users, instance.num_pairs, batch, f"{fast_fwd * 1e3:.1f}", f"{fast_both * 1e3:.1f}",
            *reference_cells, its,
        ])
        print(rows[-1], flush=True)
    write_table(
        "projection",
        f"Projection layers, EUA load 1.0 seed 0, float64; median of {args.fast_repeats} runs "
        f"(fast) and {args.repeats} (cvxpylayers), in ms",
        [
            "users", "pairs", "batch", "fast fwd", "fast fwd+bwd", "cvxpylayers fwd",
            "cvxpylayers fwd+bwd", "speed-up fwd", "speed-up fwd+bwd", "max abs diff",
            "fast iterations",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
