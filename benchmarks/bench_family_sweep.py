"""The anytime ``gnn`` and ``dual`` across the utility family: random settings of layout, size,
alpha, penalty and load, each solved towards a proven gap and checked against ``exact``.

The anytime tables of ``bench_learned_prices.py`` fix a grid (by default 816 EUA users, loads
0.6-1.4, alpha 0.5-2, named penalties). This script draws ``--instances`` settings from a seeded
generator instead: three held-out layouts (:mod:`benchmarks._heldout`: EUA, random,
clustered), ``--users`` (default 150-1,500, beyond the shipped model's training sizes of
20-200), alpha 0.25-4 and penalty 1-50 (the shipped model's training ranges) and load 0.2-3
(beyond its 0.4-1.6), so that what users meet off the grid is measured too. Per setting:
``exact`` once (its first-call costs paid beforehand, on a small instance) and its optimum, then
``gnn`` and ``dual`` with ``gap_tol`` (0.005 at penalty <= 10, 0.02 above) and no time limit,
each called once untimed, then timed as the median of ``--repeats`` calls; the gaps and the stop
come from the last call. Reported per answer: the true per-weight gap to the optimum, the proven
gap, how the solve stopped (``proven``: its proven gap met ``gap_tol``; ``stalled``: the dual
stalled above it, the status naming ``exact``; ``other``: anything else, which a solve without
a time limit should never report) and whether its bound is at or above ``exact``'s optimum
(``yes`` / ``NO``; ``-`` where ``exact`` did not certify its optimum, so there is nothing to
check against). Writes the rows to ``benchmarks/out/family_sweep_seed{seed}_n{instances}.md`` and
a summary per alpha band to ``..._summary.md``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_family_sweep.py [--instances 40] \
        [--seed 1] [--users 150 400 816 1500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import objective, proven_bound, write_table  # noqa: E402
from _heldout import heldout_instance  # noqa: E402

from gnnalloc import solve  # noqa: E402
from gnnalloc.core import configure_threads  # noqa: E402
from gnnalloc.families.edge import gnn_gap_tol  # noqa: E402
from gnnalloc.families.edge import shipped_allocator  # noqa: E402
from gnnalloc.families.edge.solvers import load_dual_kernels  # noqa: E402

LAYOUTS = ("eua", "random", "clustered")
ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
PENALTIES = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0)
LOADS = (0.2, 0.4, 0.6, 1.0, 1.4, 2.0, 3.0)
METHODS = ("gnn", "dual")
#: Alpha bands of the summary: below proportional fairness, around it, and far above it.
BANDS = (("alpha 0.25-0.75", 0.0, 0.8), ("alpha 1-2", 0.8, 2.5), ("alpha 3-4", 2.5, 10.0))


@dataclass(frozen=True)
class Answer:
    seconds: float
    true_gap: float
    proven_gap: float
    stop: str  # "proven", "stalled" or "other"
    bound_ok: bool | None  # None: exact did not certify its optimum


def _setting(rng: random.Random, users: list[int]) -> tuple[str, int, float, float, float, int]:
    return (rng.choice(LAYOUTS), rng.choice(users), rng.choice(ALPHAS), rng.choice(PENALTIES),
            rng.choice(LOADS), rng.randrange(100, 10_000))


def _stop(status: str) -> str:
    if status.startswith("proven"):
        return "proven"
    return "stalled" if "the dual stalled" in status else "other"


def _answer(instance, method: str, optimum: float, certified: bool, total_weight: float, repeats: int) -> Answer:
    tol = gnn_gap_tol(instance)
    solve(instance, method=method, gap_tol=tol)  # untimed: caches and first-call costs
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = solve(instance, method=method, gap_tol=tol)
        times.append(time.perf_counter() - start)
    value = objective(instance, result.allocation)
    # A bound below the optimum would be a bug (a small relative slack for exact's tolerance).
    bound_ok = proven_bound(result) >= optimum - 1e-6 * max(1.0, abs(optimum)) if certified else None
    return Answer(
        statistics.median(times), (optimum - value) / total_weight, (proven_bound(result) - value) / total_weight,
        _stop(result.status), bound_ok,
    )


def _speedup(ratio: float) -> str:
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:.0f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description="Anytime gnn and dual on random settings of the whole utility family.")
    parser.add_argument("--instances", type=int, default=40, help="settings drawn (default 40)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the settings' generator (default 1)")
    parser.add_argument("--users", type=int, nargs="+", default=[150, 400, 816, 1500], help="sizes drawn from")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per method and setting (default 3)")
    args = parser.parse_args()
    for name in ("instances", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be at least 1, got {getattr(args, name)}")
    for users in args.users:
        if users < 2:
            parser.error(f"--users: every size must be at least 2, got {users}")
    configure_threads(1)
    load_dual_kernels()
    shipped_allocator()  # loaded once, outside the timings
    solve(heldout_instance(50, 1.0, 0), method="exact")  # exact's first-call costs, outside the timings
    rng = random.Random(args.seed)
    rows, answers = [], []
    for _ in range(args.instances):
        layout, users, alpha, penalty, load, seed = _setting(rng, args.users)
        instance = heldout_instance(users, load, seed, penalty=penalty, alpha=alpha, layout=layout)
        start = time.perf_counter()
        exact = solve(instance, method="exact")
        exact_seconds = time.perf_counter() - start
        optimum = objective(instance, exact.allocation)
        total_weight = float(instance.weight.sum())
        results = {m: _answer(instance, m, optimum, exact.certified_optimal, total_weight, args.repeats)
                   for m in METHODS}
        answers.append((alpha, exact_seconds, results))
        row = [layout, users, f"{alpha:g}", f"{penalty:g}", f"{load:g}", seed, f"{exact_seconds:.2f}",
               "yes" if exact.certified_optimal else "no"]
        for m in METHODS:
            a = results[m]
            row += [f"{1000 * a.seconds:.0f}", f"{a.true_gap:.4f}", f"{a.proven_gap:.4f}", a.stop,
                    "-" if a.bound_ok is None else "yes" if a.bound_ok else "NO"]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    header = ["layout", "users", "alpha", "penalty", "load", "instance seed", "exact s", "exact certified"]
    for m in METHODS:
        header += [f"{m} ms", f"{m} true gap", f"{m} proven gap", f"{m} stop", f"{m} bound ok"]
    stem = f"family_sweep_seed{args.seed}_n{args.instances}"
    settings = f"seed {args.seed}, {args.instances} settings, users {args.users}, median of {args.repeats}"
    write_table(stem, f"Anytime gnn and dual across the utility family ({settings})", header, rows)
    summary = []
    for band, low, high in BANDS:
        chosen = [(e, r) for a, e, r in answers if low <= a < high]
        if not chosen:
            continue
        line = [band, len(chosen)]
        for m in METHODS:
            line += [f"{sum(r[m].stop == 'proven' for _, r in chosen)}/{len(chosen)}",
                     f"{max(r[m].true_gap for _, r in chosen):.4f}"]
        speedups = [e / r["gnn"].seconds for e, r in chosen]
        checked = [r[m].bound_ok for _, r in chosen for m in METHODS if r[m].bound_ok is not None]
        line += [f"{statistics.median(r['gnn'].seconds / r['dual'].seconds for _, r in chosen):.2f}",
                 _speedup(statistics.median(speedups)), _speedup(min(speedups)),
                 f"{sum(not ok for ok in checked)} of {len(checked)}"]
        summary.append(line)
    write_table(f"{stem}_summary", f"Summary by alpha band ({settings})",
                ["band", "settings", "gnn proven", "gnn worst true gap", "dual proven", "dual worst true gap",
                 "gnn / dual time (median)", "gnn speed-up over exact (median)", "gnn speed-up over exact (worst)",
                 "bounds below the optimum (of checked)"], summary)


if __name__ == "__main__":
    main()
