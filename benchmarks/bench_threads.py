"""Cost of a busy machine: ``allocate`` (the shipped model) and ``dual`` at 816 EUA users, idle
and beside 1 and 2 busy processes, with torch's default threads and with the library's choice
(:func:`gnnalloc.core.configure_threads`: one intra-op thread per solve).

The busy processes are local pure-Python loops (no network), each bounded by ``--busy-seconds``
and stopped when their condition is measured. Reports the median of ``--repeats`` runs and the
slow-down against idle with the same thread setting; writes ``benchmarks/out/threads.md``.

Run: python benchmarks/bench_threads.py [--repeats 7] [--busy-seconds 120]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARES_CHECKPOINT, write_table  # noqa: E402

from gnnalloc import eua_instance  # noqa: E402
from gnnalloc.core import configure_threads  # noqa: E402
from gnnalloc.families.edge import Allocator  # noqa: E402
from gnnalloc.families.edge.solvers import load_dual_kernels, solve_dual  # noqa: E402


def _busy(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        x += 1


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--busy-seconds", type=float, default=120.0,
                        help="upper bound on each busy process's life")
    parser.add_argument("--checkpoint", type=Path, default=SHARES_CHECKPOINT)
    args = parser.parse_args()

    instance = eua_instance(816, 1.0, 1000)
    allocator = Allocator.from_checkpoint(args.checkpoint).eval()
    load_dual_kernels()
    default_threads = torch.get_num_threads()
    settings = [(f"torch default ({default_threads})", lambda: torch.set_num_threads(default_threads)),
                ("library (configure_threads)", lambda: configure_threads())]
    tasks = {"allocate": lambda: allocator.allocate(instance), "dual": lambda: solve_dual(instance)}
    spawn = mp.get_context("spawn")
    results: dict[tuple[str, str, int], float] = {}
    for busy in (0, 1, 2):
        workers = [spawn.Process(target=_busy, args=(args.busy_seconds,), daemon=True)
                   for _ in range(busy)]
        for worker in workers:
            worker.start()
        time.sleep(0.5 if busy else 0.0)
        try:
            for label, apply in settings:
                apply()
                for task, fn in tasks.items():
                    results[(label, task, busy)] = _median_ms(fn, args.repeats)
                    print(f"{label:28s} {task:8s} busy={busy}: {results[(label, task, busy)]:.1f} ms",
                          flush=True)
        finally:
            for worker in workers:
                worker.terminate()
                worker.join()
    rows = []
    for label, _ in settings:
        for task in tasks:
            idle = results[(label, task, 0)]
            rows.append([label, task, f"{idle:.1f}"] + [
                f"{results[(label, task, b)]:.1f} ({results[(label, task, b)] / idle:.2f}x)"
                for b in (1, 2)
            ])
    write_table(
        "threads", f"Busy machine: median ms of {args.repeats} runs at 816 EUA users",
        ["threads", "task", "idle", "beside 1 busy process", "beside 2 busy processes"], rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
