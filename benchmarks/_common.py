"""Helpers shared by the benchmark scripts: timing, markdown output, and the edge family's
objective and anytime tolerance."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from gnnalloc.families.edge.metrics import user_utilities

OUT = Path(__file__).resolve().parent / "out"
#: The shipped model, wherever the script is run from.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default.ckpt"


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 0) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` runs, and the last result."""
    for _ in range(warmup):
        fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def fairness_modes_edge_stem(topology: str, penalty: float, alpha: float, steps: int) -> str:
    """The output name of a ``bench_fairness_modes_edge.py`` run without its seed (one file per
    setting and seed, so runs of other settings never overwrite each other)."""
    return f"fairness_modes_edge_{topology}_k{penalty:g}_a{alpha:g}_steps{steps}_seed"


def objective(instance, allocation) -> float:
    """An edge allocation's objective: the sum of its users' utilities."""
    return float(user_utilities(instance, allocation).sum())


def gap_tol_for(instance) -> float:
    """The proven gap every anytime benchmark solves an edge instance to: issue 17's 0.005 at
    penalty <= 10, 0.02 above."""
    return 0.005 if instance.penalty <= 10 else 0.02


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_table(name: str, title: str, header: list[str], rows: list[list[object]]) -> str:
    lines = [f"### {title}", "", f"Machine: {machine()}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.md").write_text(text)
    print(text)
    return text
