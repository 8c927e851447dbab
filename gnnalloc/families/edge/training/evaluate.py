"""Evaluate a checkpoint against the exact solver and the baselines: a table and PNG plots.

``gnnalloc evaluate`` and ``gnnalloc demo`` are thin shells over :func:`evaluate_suite`,
:func:`format_table` and :func:`write_plots`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from gnnalloc.families.edge.generators import eua_instance, random_instance
from gnnalloc.families.edge.metrics import score, user_utilities
from gnnalloc.families.edge._methods import METHODS, default_checkpoint, load_edge_model, shares_checkpoint
from gnnalloc.families.edge.nn import Allocator, PricePredictor
from gnnalloc.nn import load_checkpoint_data
from gnnalloc.core import InputError, check_count
from gnnalloc.families.edge.problem import Instance
from gnnalloc.families.edge.solvers import (
    equal_share, load_dual_kernels, proportional_share, solve_dual, solve_exact,
)

__all__ = ["EvalRow", "evaluate_suite", "format_table", "write_plots", "evaluate_cli", "demo"]

METHOD_ORDER = ("gnn", "gnn+search", "gnn-shares", "dual", "exact", "proportional", "equal")
#: Migration-search rounds of a share-head model's ``gnn+search`` rows and of the demo's
#: ``gnn-shares`` rows.
DEMO_SEARCH_ROUNDS = 5
DEFAULT_CHECKPOINT = default_checkpoint()
_GAP_FLOOR = 1e-4


@dataclass
class EvalRow:
    """One method on one instance."""

    suite: str
    users: int
    load: float
    seed: int
    method: str
    objective: float
    gap: float | None
    jain: float
    met_minimum: float
    min_utility: float
    max_violation: float
    seconds: float
    certified: bool | None = None
    utilities: np.ndarray = field(default=None, repr=False)
    #: Proven bound on ``gap``: against the lowest Lagrangian bound of the instance's ``exact``
    #: and ``dual`` runs (``None`` when neither ran); available where the exact solver is not.
    gap_bound: float | None = None
    penalty: float = 10.0
    alpha: float = 1.0


def _instance(
    suite: str, users: int, load: float, seed: int, servers: int, penalty: float = 10.0, alpha: float = 1.0
) -> Instance:
    if suite == "eua":
        return eua_instance(users, load, seed, penalty=penalty, alpha=alpha)
    if suite == "random":
        return random_instance(users, servers, load, seed, penalty=penalty, alpha=alpha)
    raise InputError(f"suite: unknown {suite!r}, expected 'eua' or 'random'")


def _time(fn, repeats: int = 1):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def evaluate_suite(
    model: Allocator | PricePredictor,
    *,
    suite: str = "eua",
    users: Sequence[int] = (816,),
    loads: Sequence[float] = (0.6, 1.0, 1.4),
    seeds: Sequence[int] = (1000,),
    servers: int = 50,
    exact_max_users: int = 20_000,
    gnn_repeats: int = 3,
    search_rounds: int = 0,
    dual_iterations: int | None = None,
    penalty: float = 10.0,
    alpha: float = 1.0,
    shares: Allocator | None = None,
    log=print,
) -> list[EvalRow]:
    """Run the model, the exact solver, the smoothed dual and both baselines on every
    (size, load, seed).

    The model's time is the median of ``gnn_repeats`` calls of :meth:`Allocator.allocate`
    (graph building included); a :class:`PricePredictor` runs as the ``gnn`` method does
    (predicted prices refined by the dual, its proven bound included). Gaps are to the exact
    optimum when it was computed. With ``search_rounds > 0`` a share-head model also runs with
    that many rounds of migration search (method ``gnn+search``, timed the same way, search
    included); ``shares``, a share-head model beside a price model, gives ``gnn-shares`` rows
    (with ``search_rounds`` rounds). Unless ``dual_iterations``
    is 0, :func:`~gnnalloc.families.edge.solvers.solve_dual` runs too (method ``dual``), with that many
    iterations or, for ``None``, its default: the strongest non-learned reference short of the
    exact solver. Its Lagrangian bound (and the exact solver's) gives every row a proven
    ``gap_bound``, also on instances above ``exact_max_users``.
    """
    check_count("search_rounds", search_rounds)
    if dual_iterations is not None:
        check_count("dual_iterations", dual_iterations)
    rows: list[EvalRow] = []
    priced = isinstance(model, PricePredictor)

    def learned(inst: Instance):
        """The ``gnn`` method with ``model`` (prediction, dual refinement and bound)."""
        return METHODS["gnn"].run(inst, allocator=model)

    warm = _instance(suite, 50, 1.0, 0, 10)  # warm-up: first call pays lazy init
    for allocator in (model, shares):
        if isinstance(allocator, PricePredictor):
            learned(warm)
        elif allocator is not None:
            allocator.allocate(warm)
    run_dual = dual_iterations != 0
    if run_dual:  # timed from outside: load the kernels first, as the model is warmed up
        load_dual_kernels()
    for n in users:
        for load in loads:
            for seed in seeds:
                inst = _instance(suite, n, load, seed, servers, penalty, alpha)
                results = {}
                bounds = []
                if priced:
                    runs = [learned(inst) for _ in range(gnn_repeats)]
                    results["gnn"] = (runs[-1].allocation, statistics.median(r.seconds for r in runs))
                    bounds.append(runs[-1].upper_bound)
                else:
                    results["gnn"] = _time(lambda: model.allocate(inst, search_rounds=0), gnn_repeats)
                    if search_rounds:
                        results["gnn+search"] = _time(
                            lambda: model.allocate(inst, search_rounds=search_rounds), gnn_repeats
                        )
                if shares is not None:
                    results["gnn-shares"] = _time(
                        lambda: shares.allocate(inst, search_rounds=search_rounds), gnn_repeats
                    )
                if run_dual:
                    dual, dual_seconds = _time(lambda: solve_dual(inst, iterations=dual_iterations))
                    results["dual"] = (dual.allocation, dual_seconds)
                    bounds.append(dual.upper_bound)
                results["proportional"] = _time(lambda: proportional_share(inst))
                results["equal"] = _time(lambda: equal_share(inst))
                reference, certified = None, None
                if n <= exact_max_users:
                    exact, exact_seconds = _time(lambda: solve_exact(inst))
                    reference, certified = exact.allocation, exact.certified
                    results["exact"] = (exact.allocation, exact_seconds)
                    bounds.append(exact.upper_bound)
                upper_bound = min(bounds) if bounds else None
                for method, (allocation, seconds) in results.items():
                    report = score(inst, allocation, reference, upper_bound)
                    rows.append(
                        EvalRow(
                            suite, n, float(load), seed, method, report.objective, report.gap,
                            report.jain, report.met_minimum, report.min_utility,
                            report.max_violation, seconds,
                            certified if method == "exact" else None,
                            user_utilities(inst, allocation) / inst.weight,
                            report.gap_bound, float(penalty), float(alpha),
                        )
                    )
                gaps = {r.method: r.gap for r in rows[-len(results):]}
                message = f"  {suite} users={n} load={load} penalty={penalty:g} alpha={alpha:g} seed={seed}: gnn {results['gnn'][1] * 1000:.0f} ms"
                if "exact" in results:
                    message += f", exact {results['exact'][1]:.2f} s, gap {gaps['gnn']:.4f}"
                for method in ("gnn+search", "gnn-shares", "dual"):
                    if method in results:
                        message += f"; {method} {results[method][1] * 1000:.0f} ms"
                        if "exact" in results:
                            message += f", gap {gaps[method]:.4f}"
                log(message)
    return rows


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _speed_up(ratio: float) -> str:
    # One decimal below 10x: "1x" would hide whether a method is faster than exact at all.
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def format_table(rows: Sequence[EvalRow]) -> str:
    """A markdown table: per (users, load) and method, means over seeds."""
    header = [
        "users", "load", "penalty", "alpha", "method", "objective", "gap to opt.", "proven gap ≤", "Jain", "met min",
        "min utility", "max violation", "time / instance", "speed-up vs exact",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keys = sorted({(r.users, r.load, r.penalty, r.alpha) for r in rows})
    for users, load, penalty, alpha in keys:
        group = [r for r in rows if (r.users, r.load, r.penalty, r.alpha) == (users, load, penalty, alpha)]
        exact_time = _mean(r.seconds for r in group if r.method == "exact")
        for method in METHOD_ORDER:
            sel = [r for r in group if r.method == method]
            if not sel:
                continue
            gap = _mean(r.gap for r in sel)
            # A mean of bounds bounds the mean gap only if every seed has one.
            bound = _mean(r.gap_bound for r in sel) if all(r.gap_bound is not None for r in sel) else None
            seconds = _mean(r.seconds for r in sel)
            speed = "" if exact_time is None or method == "exact" else _speed_up(exact_time / seconds)
            name = method
            if method == "exact" and not all(r.certified for r in sel):
                name = "exact (not certified)"
            lines.append(
                "| "
                + " | ".join(
                    [
                        str(users), f"{load:g}", f"{penalty:g}", f"{alpha:g}", name, f"{_mean(r.objective for r in sel):.2f}",
                        "n/a" if gap is None else f"{gap:.4f}",
                        "n/a" if bound is None else f"{bound:.4f}",
                        f"{_mean(r.jain for r in sel):.3f}", f"{_mean(r.met_minimum for r in sel):.3f}",
                        f"{_mean(r.min_utility for r in sel):.2f}",
                        f"{max(r.max_violation for r in sel):.1e}",
                        f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s",
                        speed,
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def _colour(method: str) -> str:
    # One colour per method in every panel (the gap panel leaves `exact` out).
    return f"C{METHOD_ORDER.index(method)}"


def write_plots(rows: Sequence[EvalRow], out_dir: Path) -> list[Path]:
    """Per-user utility CDFs per method (one panel per load) and gap/time against size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    # The plots compare like with like: the default utility (penalty 10, alpha 1) when present.
    rows = [r for r in rows if (r.penalty, r.alpha) == (10.0, 1.0)] or list(rows)
    written = []
    sizes = sorted({r.users for r in rows})
    cdf_size = 816 if 816 in sizes else sizes[0]
    loads = sorted({r.load for r in rows if r.users == cdf_size})
    fig, axes = plt.subplots(1, len(loads), figsize=(5 * len(loads), 4), squeeze=False)
    for ax, load in zip(axes[0], loads):
        for method in METHOD_ORDER:
            sel = [r for r in rows if r.users == cdf_size and r.load == load and r.method == method]
            if not sel:
                continue
            values = np.sort(np.concatenate([r.utilities for r in sel]))
            ax.plot(values, np.linspace(0, 1, values.size), label=method, color=_colour(method))
        ax.set_title(f"{cdf_size} users, load {load:g}")
        ax.set_xlabel("per-user utility / weight")
        ax.set_ylabel("CDF")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out_dir / "utility_cdf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    if len(sizes) > 1:
        # One load across sizes (the demo runs 816 users at three loads, the sweep at 1.0 only):
        # averaging loads would put a different mix at one size than at the others.
        common = set.intersection(*({r.load for r in rows if r.users == n} for n in sizes))
        sweep_load = (1.0 if 1.0 in common else min(common)) if common else None
        swept = [r for r in rows if sweep_load is None or r.load == sweep_load]
        fig, (ax_gap, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
        for method in METHOD_ORDER:
            pts = [(n, _mean(r.gap for r in swept if r.users == n and r.method == method)) for n in sizes]
            # Log scale: a converged method's gap can be 0 or a round-off below it.
            pts = [(n, max(g, _GAP_FLOOR)) for n, g in pts if g is not None]
            if pts and method != "exact":
                ax_gap.plot(*zip(*pts), marker="o", label=method, color=_colour(method))
            tms = [(n, _mean(r.seconds for r in swept if r.users == n and r.method == method)) for n in sizes]
            tms = [(n, t) for n, t in tms if t is not None]
            if tms:
                ax_time.plot(*zip(*tms), marker="o", label=method, color=_colour(method))
        where = f"load {sweep_load:g}" if sweep_load is not None else "mean over loads"
        gap_label = f"mean per-user gap to optimum (floor {_GAP_FLOOR:g})"
        for ax, label in ((ax_gap, gap_label), (ax_time, "seconds per instance")):
            ax.set_xscale("log")
            ax.set_xlabel("users")
            ax.set_ylabel(label)
            ax.set_title(where)
            ax.grid(alpha=0.3)
            if ax.get_lines():
                ax.legend()
        if not ax_gap.get_lines():
            ax_gap.text(0.5, 0.5, "no exact reference computed", ha="center", va="center",
                        transform=ax_gap.transAxes)
        ax_time.set_yscale("log")
        ax_gap.set_yscale("log")
        fig.tight_layout()
        path = out_dir / "gap_time_vs_size.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _report(rows: Sequence[EvalRow], out_dir: Path, title: str) -> None:
    table = format_table(rows)
    print(f"\n{title}\n\n{table}\n")
    (out_dir / "table.md").write_text(f"{title}\n\n{table}\n")
    for path in write_plots(rows, out_dir):
        print(f"wrote {path}")


def _output_directory(out_dir: Path) -> Path:
    """Create ``out_dir`` before any work, so a bad ``--out`` fails in a second, not after the
    exact solves."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"out: cannot use {str(out_dir)!r} as a directory: {exc.strerror or exc}") from None
    return out_dir


def _load_model(checkpoint: Path) -> Allocator | PricePredictor:
    """The price model or share-head model a checkpoint holds."""
    return load_edge_model(load_checkpoint_data(checkpoint), checkpoint)


def evaluate_cli(args: argparse.Namespace) -> int:
    """``gnnalloc evaluate``."""
    out_dir = _output_directory(Path(args.out))
    model = _load_model(args.checkpoint)
    rows = evaluate_suite(
        model, suite=args.suite, users=args.users, loads=args.loads, seeds=args.seeds,
        servers=args.servers, exact_max_users=args.exact_max_users,
        search_rounds=args.search_rounds,
        dual_iterations=args.dual_iterations,
    )
    _report(rows, out_dir, f"{args.checkpoint} on the {args.suite} suite")
    return 0


def demo(out_dir: Path = Path("out/demo"), checkpoint: Path = DEFAULT_CHECKPOINT) -> int:
    """The README's main job: the shipped model on the real Melbourne topology.

    EUA instances with 816 users at loads 0.6, 1.0 and 1.4 (seed 1000, never used in training),
    at penalty 25 and at alpha 2 (load 1.0), then a size sweep at load 1.0 from 100 to 20,000
    users, against the share-head model (``gnn-shares``), the exact solver, the smoothed dual and
    both baselines. Prints the table and writes plots to ``out_dir``.
    """
    _output_directory(out_dir)
    model = _load_model(checkpoint)
    shares = None
    if isinstance(model, PricePredictor) and shares_checkpoint().is_file():
        shares = Allocator.from_checkpoint(shares_checkpoint())
    print(f"model: {checkpoint} ({checkpoint.stat().st_size / 1024:.0f} KiB)")
    print("EUA Melbourne CBD, 816 users, loads 0.6 / 1.0 / 1.4:")
    common = dict(suite="eua", seeds=[1000], search_rounds=DEMO_SEARCH_ROUNDS, shares=shares)
    rows = evaluate_suite(model, users=[816], loads=[0.6, 1.0, 1.4], **common)
    print("penalty 25, then alpha 2 (816 users, load 1.0):")
    rows += evaluate_suite(model, users=[816], loads=[1.0], penalty=25.0, **common)
    rows += evaluate_suite(model, users=[816], loads=[1.0], alpha=2.0, **common)
    print("size sweep at load 1.0:")
    rows += evaluate_suite(model, users=[100, 5000, 20000], loads=[1.0], **common)
    _report(rows, out_dir, "gnnalloc demo: shipped model vs exact optimum and baselines (EUA)")
    return 0
