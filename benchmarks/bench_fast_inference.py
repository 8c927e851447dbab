"""The shipped price model with the encoder's inference paths (compiled relation attention, one
score per relation without edges) against the torch version: ``predict`` and the encoder's
forward, medians over interleaved repetitions after a warm-up of each, and the largest difference
of the predicted log-prices. EUA held-out instances (``_heldout.py``), one thread.

With ``--solve``: what that buys ``gnn`` against ``dual``'s one pass, on the held-out sets given
(``layout:seed``, 816 users, loads 0.6 / 1.0 / 1.4 x alpha 0.5 / 1 / 2, ``--penalty``): per
instance ``dual``, then ``gnn`` (:func:`~gnnalloc.families.edge.gnn_refine` with the shipped
model) with the paths on and off, in turn, ``--rounds`` timed rounds after one untimed; per set
the geometric mean and the median of the per-instance ratios of ``gnn``'s median time over
``dual``'s, and the median L-BFGS iterations both ways.

Run: python benchmarks/bench_fast_inference.py [--sizes 200 816 2000] [--repeats 21]
     python benchmarks/bench_fast_inference.py --solve eua:1 eua:2 random:3 clustered:6 [--penalty 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import number, write_table  # noqa: E402
from _heldout import heldout_instance  # noqa: E402

from gnnalloc.core import configure_threads  # noqa: E402
from gnnalloc.families.edge import gnn_refine, shipped_allocator  # noqa: E402
from gnnalloc.families.edge.solvers import solve_dual  # noqa: E402
from gnnalloc.families.edge.nn.prices import price_references  # noqa: E402
from gnnalloc.nn import fast_inference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=number(int, 1), nargs="+", default=[200, 816, 2000])
    parser.add_argument("--repeats", type=number(int, 1), default=21)
    parser.add_argument("--solve", nargs="+", default=None, metavar="LAYOUT:SEED",
                        help="gnn against dual's one pass with the paths on and off (module docstring)")
    parser.add_argument("--penalty", type=number(float, 1.0), default=10.0, help="--solve: the instances' penalty")
    parser.add_argument("--rounds", type=number(int, 1), default=3, help="--solve: timed rounds per instance")
    args = parser.parse_args()
    configure_threads(1)
    model = shipped_allocator().eval()
    if args.solve is not None:
        sets = []
        for item in args.solve:
            layout, _, seed = item.partition(":")
            if layout not in ("eua", "random", "clustered") or not seed.isdigit():
                parser.error(f"--solve: expected LAYOUT:SEED with LAYOUT eua, random or clustered, got {item!r}")
            sets.append((layout, int(seed)))
        _solve(model, sets, args.penalty, args.rounds)
        return
    rows = []
    for users in args.sizes:
        instance = heldout_instance(users, 1.0, 1, penalty=10.0, alpha=1.0)
        graph, problem = model.prepare([instance])
        references = price_references(problem)

        def predict() -> None:
            model.predict(instance)

        def encode() -> None:
            with torch.no_grad():
                model.encoder(graph, ("server",))

        logs, times = {}, {(fast, step): [] for fast in (False, True) for step in ("predict", "encoder")}
        for fast in (False, True):  # warm-up (and the kernel's first load) outside the timings
            with fast_inference(fast), torch.no_grad():
                predict()
                encode()
                logs[fast] = torch.cat(model(graph, problem, references))
        for _ in range(args.repeats):  # interleaved: a busy machine slows both alike
            for fast in (False, True):
                with fast_inference(fast):
                    for step, run in (("predict", predict), ("encoder", encode)):
                        start = time.perf_counter()
                        run()
                        times[fast, step].append(time.perf_counter() - start)
        ms = {key: 1e3 * statistics.median(value) for key, value in times.items()}
        rows.append([
            users, f"{ms[False, 'predict']:.2f}", f"{ms[True, 'predict']:.2f}",
            f"{ms[False, 'predict'] / ms[True, 'predict']:.2f}x", f"{ms[False, 'encoder']:.2f}",
            f"{ms[True, 'encoder']:.2f}", f"{ms[False, 'encoder'] / ms[True, 'encoder']:.2f}x",
            f"{float((logs[True] - logs[False]).abs().max()):.1e}",
        ])
    write_table(
        "fast_inference", "Price model: torch version against the encoder's inference paths (ms, median)",
        ["users", "predict, torch", "predict, fast", "speed-up", "encoder, torch", "encoder, fast", "speed-up",
         "max abs difference of the log-prices"],
        rows,
    )


def _solve(model, sets: list[tuple[str, int]], penalty: float, rounds: int) -> None:
    """``--solve`` (module docstring)."""
    def timed(run) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    rows = []
    for layout, seed in sets:
        ratios = {True: [], False: []}
        iterations = {True: [], False: []}
        for load in (0.6, 1.0, 1.4):
            for alpha in (0.5, 1.0, 2.0):
                instance = heldout_instance(816, load, seed, penalty=penalty, alpha=alpha, layout=layout)
                times = {"dual": [], True: [], False: []}
                for round_ in range(rounds + 1):  # the first round untimed
                    spent = timed(lambda: solve_dual(instance))
                    if round_:
                        times["dual"].append(spent)
                    for fast in (True, False) if round_ % 2 else (False, True):  # neither always first
                        with fast_inference(fast):
                            result = []
                            spent = timed(lambda: result.append(gnn_refine(model, instance)))
                        if round_:
                            times[fast].append(spent)
                        else:
                            iterations[fast].append(result[0].iterations)
                for fast in (True, False):
                    ratios[fast].append(statistics.median(times[fast]) / statistics.median(times["dual"]))

        rows.append([
            f"{layout}, {seed}", f"{penalty:g}",
            f"{statistics.geometric_mean(ratios[False]):.3f} / {statistics.median(ratios[False]):.3f}",
            f"{statistics.geometric_mean(ratios[True]):.3f} / {statistics.median(ratios[True]):.3f}",
            f"{statistics.median(iterations[False]):.0f} / {statistics.median(iterations[True]):.0f}",
        ])
        print(" | ".join(rows[-1]), flush=True)
    write_table(
        "fast_inference_solve", "gnn over dual's one pass, the encoder's inference paths off and on",
        ["layout, seed", "penalty", "torch: geometric mean / median", "fast: geometric mean / median",
         "L-BFGS iterations, median (torch / fast)"],
        rows,
    )


if __name__ == "__main__":
    main()
