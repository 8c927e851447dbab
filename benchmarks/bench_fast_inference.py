"""The shipped price model with the encoder's inference paths (compiled relation attention, one
score per relation without edges) against the torch version: ``predict`` and the encoder's
forward, medians over interleaved repetitions after a warm-up of each, and the largest difference
of the predicted log-prices. EUA held-out instances (``_heldout.py``), one thread.

Run: python benchmarks/bench_fast_inference.py [--sizes 200 816 2000] [--repeats 21]
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

from gnnalloc.families.edge._methods import shipped_allocator  # noqa: E402
from gnnalloc.families.edge.nn.prices import price_references  # noqa: E402
from gnnalloc.nn import fast_inference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=number(int, 1), nargs="+", default=[200, 816, 2000])
    parser.add_argument("--repeats", type=number(int, 1), default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = shipped_allocator().eval()
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


if __name__ == "__main__":
    main()
