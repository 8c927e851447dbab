"""Helpers shared by the benchmark scripts: timing, markdown output, the edge family's
objective and anytime tolerance, and the power family's held-out suites and rate-front cells."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gnnalloc.families.edge.metrics import user_utilities
from gnnalloc.families.power import PowerInstance, d2d, gaussian

OUT = Path(__file__).resolve().parent / "out"
#: The shipped share-head model (`gnn-shares`; the edge `gnn` is the price model,
#: `checkpoints/prices.ckpt`), wherever the script is run from.
SHARES_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default.ckpt"


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


def number(kind: type = float, low: float | None = None, high: float | None = None, *, above: bool = False):
    """An ``argparse`` ``type``: a finite ``kind`` (``int`` or ``float``) of at least ``low``
    (above it with ``above``) and at most ``high``; a bad value is an argparse error naming the
    flag, for every value of a ``nargs`` list too."""
    bounds = [f"{'>' if above else '>='} {low:g}"] if low is not None else []
    bounds += [f"<= {high:g}"] if high is not None else []
    rule = f"{'an integer' if kind is int else 'a finite number'}{' ' + ' and '.join(bounds) if bounds else ''}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}") from None
        too_low = low is not None and (value <= low if above else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    return parse


def proven_bound(result) -> float:
    """A result's proven upper bound on the optimum, ``inf`` where it proves none (``None``)."""
    return math.inf if result.upper_bound is None else float(result.upper_bound)


def objective(instance, allocation) -> float:
    """An edge allocation's objective: the sum of its users' utilities."""
    return float(user_utilities(instance, allocation).sum())


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


def power_suites(
    instances: int, sparse: Sequence[float] = (), seed: int = 7_000_000,
) -> dict[str, list[PowerInstance]]:
    """The power family's held-out suites (the model was trained at K <= 50, 200 links/km²):
    ``instances`` each of Gaussian K = 10, D2D K = 20 and 50 at 200 links/km² (seeds ``seed``+),
    D2D K = 50 at 400 links/km² (seeds ``seed`` + 500 +) and a quarter as many D2D K = 200;
    with ``sparse``, only D2D K = 50 at those densities (seeds ``seed`` + 1,000 +)."""
    if sparse:
        return {
            f"d2d K=50, {density:g}/km²": [d2d(50, seed + 1_000 + i, density=density) for i in range(instances)]
            for density in sparse
        }
    return {
        "gaussian K=10": [gaussian(10, seed + i) for i in range(instances)],
        "d2d K=20": [d2d(20, seed + i) for i in range(instances)],
        "d2d K=50": [d2d(50, seed + i) for i in range(instances)],
        "d2d K=50, 400/km²": [d2d(50, seed + 500 + i, density=400.0) for i in range(instances)],
        "d2d K=200": [d2d(200, seed + i) for i in range(max(instances // 4, 1))],
    }


def rate_front_header(share_of_base: str) -> list[str]:
    """The headers of :func:`rate_front_cells`' columns, the first (the share of ``base``) named
    ``share_of_base``."""
    return [
        share_of_base, "worst instance", "ratio to WMMSE", "p5 rate", "median rate",
        "p5 / median (per instance)", "p5 / median (of means)", "instances meeting both", "off",
    ]


def rate_front_cells(rates: Sequence[np.ndarray], base: np.ndarray, reference: np.ndarray) -> list[str]:
    """The cells of one point of a (sum rate, 5th-percentile rate) front, from each instance's
    link rates: sum rate as a share of ``base`` (per instance; summed over instances, and the
    worst instance) and of ``reference``; the means over instances of the 5th-percentile and
    median rates; their ratio per instance (averaged) and of the means (0 where the median is 0);
    how many instances keep >= 90 % of ``base`` with a 5th percentile >= 10 % of their median
    (fairness backprop's power target (ii), instance by instance); and the share of links below
    1e-6 bits/s/Hz."""
    sums = np.array([r.sum() for r in rates])
    p5 = np.array([np.percentile(r, 5) for r in rates])
    median = np.array([np.median(r) for r in rates])
    per_instance = np.where(median > 0, p5 / np.where(median > 0, median, 1.0), 0.0)
    off = np.mean([float((r < 1e-6).mean()) for r in rates])
    both = int(np.sum((sums >= 0.9 * base) & (p5 >= 0.1 * median) & (median > 0)))
    return [
        f"{sums.sum() / base.sum():.3f}", f"{(sums / base).min():.3f}", f"{sums.sum() / reference.sum():.3f}",
        f"{p5.mean():.4f}", f"{median.mean():.4f}", f"{per_instance.mean():.3f}",
        f"{p5.mean() / median.mean() if median.mean() > 0 else 0.0:.3f}", f"{both}/{len(rates)}", f"{off:.3f}",
    ]
