"""What the home refill buys, and where the remaining gap is.

For EUA instances (seed 1000, never used in training) this measures, against the exact optimum:
the shipped model's gap without and with the home refill, both baselines without and with it,
the refill's wall time, and how the gap splits over users by what the optimum gives them
(dropped = nothing, partial = below the minimum, at min = exactly the minimum, above).

Run: python benchmarks/bench_refill.py [--users 816] [--loads 0.6 1.0 1.4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import SHARES_CHECKPOINT, median_time, write_table  # noqa: E402

from gnnalloc import eua_instance, solve_exact  # noqa: E402
from gnnalloc.families.edge.nn.allocator import Allocator  # noqa: E402
from gnnalloc.families.edge.problem import ProblemTensors, resource_utility  # noqa: E402
from gnnalloc.families.edge.solvers import equal_share, proportional_share  # noqa: E402
from gnnalloc.families.edge.solvers.functional import refill_home_compute  # noqa: E402

CLASSES = ("dropped", "partial", "at min", "above")


def _compute_utility(problem: ProblemTensors, compute: torch.Tensor) -> torch.Tensor:
    total = problem.user_compute(compute)
    return problem.weight * resource_utility(total, problem.compute_min, problem.penalty, problem.alpha)


def _classes(problem: ProblemTensors, compute: torch.Tensor) -> torch.Tensor:
    ratio = problem.user_compute(compute) / problem.compute_min
    return torch.bucketize(ratio, torch.tensor([1e-3, 1 - 1e-4, 1 + 1e-4], dtype=ratio.dtype))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=816)
    parser.add_argument("--loads", type=float, nargs="+", default=[0.6, 1.0, 1.4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", default=str(SHARES_CHECKPOINT))
    args = parser.parse_args()
    model = Allocator.from_checkpoint(args.checkpoint)
    gaps, splits = [], []
    for load in args.loads:
        inst = eua_instance(args.users, load, 1000)
        problem = ProblemTensors.from_instance(inst)
        optimum = torch.as_tensor(np.asarray(solve_exact(inst).allocation.compute))
        reference = _compute_utility(problem, optimum)
        total_weight = float(problem.weight.sum())
        # Bandwidth is the exact water-filling in the model and identical across the rows below
        # only for the model; gaps here are of the compute utility, which is where they differ.
        graph, tensors = model.prepare([inst])
        with torch.no_grad():
            projected = model(graph, tensors, refill_home=False).compute.to(torch.float64)
        seconds, refilled = median_time(lambda: refill_home_compute(projected, problem), args.repeats)
        row = [args.users, load]
        for compute in (projected, refilled):
            row.append(f"{float((reference - _compute_utility(problem, compute)).sum()) / total_weight:.4f}")
        for baseline in (proportional_share, equal_share):
            x = torch.as_tensor(np.asarray(baseline(inst).compute))
            for compute in (x, refill_home_compute(x, problem)):
                row.append(f"{float((reference - _compute_utility(problem, compute)).sum()) / total_weight:.3f}")
        row.append(f"{seconds * 1000:.1f}")
        gaps.append(row)
        per_user = (reference - _compute_utility(problem, refilled)) / total_weight
        opt_class, model_class = _classes(problem, optimum), _classes(problem, refilled)
        for i, name in enumerate(CLASSES):
            mine = opt_class == i
            splits.append([
                args.users, load, name, int(mine.sum()), f"{float(per_user[mine].sum()):+.4f}",
                ", ".join(f"{CLASSES[j]} {int((mine & (model_class == j)).sum())}" for j in range(4)
                          if int((mine & (model_class == j)).sum())),
            ])
    write_table(
        "refill",
        f"Compute-utility gap to the optimum, EUA seed 1000; refill time median of {args.repeats}, "
        f"{torch.get_num_threads()} threads",
        ["users", "load", "model", "model + refill", "proportional", "proportional + refill", "equal",
         "equal + refill", "refill ms"],
        gaps,
    )
    write_table(
        "refill_split",
        "Where the model's remaining gap is: users grouped by what the optimum gives them",
        ["users", "load", "optimum gives", "users", "gap contribution", "model + refill gives"],
        splits,
    )


if __name__ == "__main__":
    main()
