"""Split federated learning: the learned method ``gnn`` (the predicted round time finished by
the bisection) against the exact solver, at 10 / 100 / 1,000 clients on held-out seeds.

Per size ``--seeds`` instances of the default generator at seeds from 900,000 on (the training
data draws other seeds and settings); per instance the median wall time of ``--repeats`` runs of
each method in the same process (kernels compiled and the model loaded before timing). Columns:
the max latency as a ratio to the exact optimum, the mean latency and the energy used (as a share
of the budgets) of each, the largest constraint violation, the round times each evaluated, the
predicted round time's error, and the times. Two ablations: the cold exact solver stopped at the
same ``--tolerance`` as the learned method, and the bisection started at the proven budget-free
bound instead of the prediction (``bound start``: what the model adds).

Run: python benchmarks/bench_sfl_model.py [--checkpoint checkpoints/sfl.ckpt] [--sizes 10 100 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, write_table  # noqa: E402

import torch  # noqa: E402

from gnnalloc.families.sfl import max_violation, random_sfl, round_costs, solve_exact  # noqa: E402
from gnnalloc.families.sfl._allocator import RoundTimePredictor  # noqa: E402
from gnnalloc.families.sfl._learned import DEFAULT_CHECKPOINT, learned_allocation  # noqa: E402
from gnnalloc.families.sfl._relaxed import relaxed_round  # noqa: E402
from gnnalloc.families.sfl._warm import solve_from_guess  # noqa: E402

HELD_OUT_SEED = 900_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = RoundTimePredictor.from_checkpoint(args.checkpoint)
    warm = random_sfl(5, 0)
    solve_exact(warm)
    learned_allocation(model, warm)
    rows = []
    for size in args.sizes:
        stats: dict[str, list[float]] = {k: [] for k in (
            "ratio", "mean_gnn", "mean_exact", "energy_gnn", "energy_exact", "violation", "evals_gnn",
            "evals_exact", "guess_error", "time_gnn", "time_exact", "evals_cold", "time_cold",
            "evals_bound", "time_bound", "bound_error")}
        for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + args.seeds):
            instance = random_sfl(size, seed)
            time_exact, exact = median_time(lambda: solve_exact(instance), args.repeats)
            time_gnn, learned = median_time(lambda: learned_allocation(model, instance, args.tolerance), args.repeats)
            time_cold, cold = median_time(lambda: solve_exact(instance, args.tolerance), args.repeats)

            def from_bound():
                bound = relaxed_round(instance).round_time
                return bound, solve_from_guess(instance, bound, tolerance=args.tolerance, lower=bound)

            time_bound, (bound, started) = median_time(from_bound, args.repeats)
            stats["evals_cold"].append(cold.evaluations)
            stats["time_cold"].append(time_cold)
            stats["evals_bound"].append(started.evaluations)
            stats["time_bound"].append(time_bound)
            stats["bound_error"].append(abs(bound / exact.t_upper - 1.0))
            best, got = round_costs(instance, exact.allocation), round_costs(instance, learned.allocation)
            stats["ratio"].append(got.latency.max() / best.latency.max())
            stats["mean_gnn"].append(got.latency.mean())
            stats["mean_exact"].append(best.latency.mean())
            stats["energy_gnn"].append((got.energy / instance.energy_max).mean())
            stats["energy_exact"].append((best.energy / instance.energy_max).mean())
            stats["violation"].append(max(max_violation(instance, learned.allocation), max_violation(instance, exact.allocation)))
            stats["evals_gnn"].append(learned.evaluations)
            stats["evals_exact"].append(exact.evaluations)
            stats["guess_error"].append(abs(learned.guess / exact.t_upper - 1.0))
            stats["time_gnn"].append(time_gnn)
            stats["time_exact"].append(time_exact)
        med = {k: statistics.median(v) for k, v in stats.items()}
        rows.append([
            size, f"{med['ratio']:.4f} (max {max(stats['ratio']):.4f})",
            f"{med['mean_gnn']:.2f} / {med['mean_exact']:.2f}",
            f"{med['energy_gnn']:.3f} / {med['energy_exact']:.3f}", f"{max(stats['violation']):.1e}",
            f"{med['guess_error']:.3f} (max {max(stats['guess_error']):.3f})",
            f"{med['evals_gnn']:.0f} / {med['evals_exact']:.0f}",
            f"{med['time_gnn']:.3f} / {med['time_exact']:.3f}", f"{med['time_exact'] / med['time_gnn']:.1f}x",
            f"{med['evals_cold']:.0f}, {med['time_cold']:.3f}",
            f"{med['bound_error']:.4f}; {med['evals_bound']:.0f}, {med['time_bound']:.3f}",
        ])
        print(rows[-1], flush=True)
    write_table(
        "bench_sfl_model", "Split federated learning: the learned method against the exact solver",
        ["clients", "max latency / optimum (median, max)", "mean latency s (gnn / exact)",
         "energy / budget (gnn / exact)", "max violation", "|guess / T* - 1| (median, max)",
         "round times evaluated (gnn / exact)", "s (gnn / exact, median)", "speed-up",
         "exact at the same tolerance: evaluated, s", "bound start: |bound / T* - 1|; evaluated, s"],
        rows,
    )


if __name__ == "__main__":
    main()
