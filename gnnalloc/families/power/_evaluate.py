"""Evaluation of power-control methods on held-out instances: the table of ``gnnalloc demo`` and
``gnnalloc evaluate`` for the power family.

Every method answers the same instances (seeds disjoint from training); the learned method's
``ratio`` is its total utility over that of the reference method (``wmmse``) on the same
instances, and rates are summarised per instance (sum, 5th percentile, minimum, Jain's index)
then averaged over instances. The demo adds the learned method as the per-slot allocator of a
proportional-fair frame (:func:`~gnnalloc.families.power.proportional_fair_frame`) at a few
``fair_time`` values.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gnnalloc.core import SolveResult
from gnnalloc.families.power._allocation import PowerAllocation
from gnnalloc.families.power._frame import DEFAULT_SLOTS, fair_time_rates, proportional_fair_frame
from gnnalloc.families.power._generators import d2d, gaussian
from gnnalloc.families.power._instance import PowerInstance
from gnnalloc.families.power._score import score

__all__ = [
    "DEMO_SUITES", "FRAME_SUITES", "FRAME_TIMES", "FrameRow", "PowerRow", "Suite", "evaluate_cli",
    "evaluate_power", "format_frame_table", "format_power_table", "frame_rows", "power_demo",
]


@dataclass(frozen=True)
class Suite:
    """Instances of one kind: ``generator`` (``"gaussian"`` or ``"d2d"``) at ``links`` links with
    ``utility`` (and the α-fair settings ``alpha``, ``penalty``, ``rate_min``)."""

    generator: str
    links: int
    utility: str = "sum_rate"
    alpha: float = 1.0
    penalty: float = 10.0
    rate_min: float = 0.1

    @property
    def name(self) -> str:
        fair = f" alpha={self.alpha:g}" if self.utility == "alpha_fair" else ""
        return f"{self.generator} K={self.links} {self.utility}{fair}"

    def instance(self, seed: int) -> PowerInstance:
        make = {"gaussian": gaussian, "d2d": d2d}[self.generator]
        settings: dict[str, Any] = {"utility": self.utility}
        if self.utility == "alpha_fair":
            settings.update(alpha=self.alpha, penalty=self.penalty, rate_min=self.rate_min)
        return make(self.links, seed, **settings)


#: The demo's suites: the issue's sizes (Gaussian at 10 links, D2D at 50 / 200 / 1,000), and the
#: proportional-fair utility at 50 links.
DEMO_SUITES = (
    Suite("gaussian", 10), Suite("d2d", 50), Suite("d2d", 200), Suite("d2d", 1000),
    Suite("d2d", 50, "alpha_fair", alpha=1.0, penalty=10.0, rate_min=0.5),
)
#: Seeds of held-out instances (training draws its seeds from another stream).
HELD_OUT_SEED = 7_000_000
#: The demo's time-sharing table: dense layouts, where the sum rate switches half the links off...
FRAME_SUITES = (Suite("d2d", 50), Suite("d2d", 200))
#: ... at these shares of the frame's time spread over all slots (0: the allocator's own answer).
FRAME_TIMES = (0.0, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class PowerRow:
    """One method on one suite, averaged over its instances.

    Args:
        suite, method: what ran on what.
        instances: how many instances.
        ratio: total utility over the reference method's on the same instances, ``None`` when
            the reference's total is not positive (α-fair utilities in the penalty region are
            negative, and a ratio of negative totals ranks backwards: compare ``utility`` there).
        utility: mean utility per link.
        sum_rate, p5_rate, min_rate, geo_rate: per instance the sum, 5th percentile, minimum and
            geometric mean of the link rates (bits/s/Hz), averaged over instances.
        jain: Jain's index of the rates, averaged over instances.
        off: share of links switched off (power below 1e-6 of the limit).
        violation: largest relative violation of a power limit.
        seconds: median wall time per instance.
    """

    suite: str
    method: str
    instances: int
    ratio: float | None
    utility: float
    sum_rate: float
    p5_rate: float
    min_rate: float
    geo_rate: float
    jain: float
    off: float
    violation: float
    seconds: float


def evaluate_power(
    methods: dict[str, Callable[[PowerInstance], SolveResult]],
    suites: Sequence[Suite] = DEMO_SUITES,
    instances: int = 5,
    reference: str = "wmmse",
    skip: Callable[[str, Suite], bool] = lambda method, suite: False,
) -> list["PowerRow"]:
    """Run every method on ``instances`` held-out instances of every suite.

    Args:
        methods: name -> ``run(instance) -> SolveResult``; must include ``reference``.
        suites: the instance kinds.
        instances: instances per suite.
        reference: the method ratios are taken against.
        skip: ``skip(method, suite)`` leaves a method out of a suite (e.g. a slow baseline).
    """
    rows = []
    for suite in suites:
        cases = [suite.instance(HELD_OUT_SEED + i) for i in range(instances)]
        results = {name: [] for name in methods}
        for instance in cases:
            for name, run in methods.items():
                if name != reference and skip(name, suite):
                    continue
                results[name].append(run(instance))
        reports = {
            name: [score(i, r.allocation) for i, r in zip(cases, answers)]
            for name, answers in results.items() if answers
        }
        ref_total = sum(report.objective for report in reports[reference])
        for name, scores in reports.items():
            rows.append(PowerRow(
                suite.name, name, len(scores),
                sum(r.objective for r in scores) / ref_total if ref_total > 0 else None,
                float(np.mean([r.objective for r in scores])) / suite.links,
                *(float(np.mean([getattr(r, key) for r in scores]))
                  for key in ("sum_rate", "rate_p5", "min_rate", "geomean_rate", "jain")),
                float(np.mean([r.links_off / suite.links for r in scores])),
                float(max(r.max_violation for r in scores)),
                statistics.median(r.seconds for r in results[name]),
            ))
    return rows


def format_power_table(rows: Sequence[PowerRow]) -> str:
    """The rows as a fixed-width table, one block per suite."""
    head = f"{'suite':<30} {'method':<11} {'ratio':>7} {'U/link':>8} {'sum rate':>9} {'p5 rate':>8} {'min rate':>8} {'geo rate':>8} {'Jain':>6} {'off':>5} {'viol':>8} {'time':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.suite:<30} {r.method:<11} {'-' if r.ratio is None else f'{r.ratio:.4f}':>7} {r.utility:>8.4f} {r.sum_rate:>9.2f} {r.p5_rate:>8.3f} "
            f"{r.min_rate:>8.3f} {r.geo_rate:>8.3f} {r.jain:>6.3f} {r.off:>5.2f} {r.violation:>8.1e} "
            f"{r.seconds * 1000:>8.1f}ms"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class FrameRow:
    """One allocator's α-fair frames on one suite at one ``fair_time``, over its instances.

    Args:
        suite: the instance kind.
        fair_time: the share of the frame's time spread over all slots.
        sum_rate_kept: the frames' total sum rate over that of the allocator's own answers.
        p5_rate, median_rate: per instance the 5th percentile and the median of the links'
            average rates (bits/s/Hz), averaged over instances.
        off: share of links switched off (power below 1e-6 of the limit) in every slot that has
            time (slot 1 alone at ``fair_time`` 0).
    """

    suite: str
    fair_time: float
    sum_rate_kept: float
    p5_rate: float
    median_rate: float
    off: float


def frame_rows(
    allocate: Callable[[PowerInstance], PowerAllocation], suites: Sequence[Suite] = FRAME_SUITES,
    instances: int = 5, fair_times: Sequence[float] = FRAME_TIMES,
) -> list[FrameRow]:
    """``allocate``'s α-fair frames (default slots, alpha 1) on ``instances`` held-out
    instances of every suite, one row per ``fair_time``; the slots are computed once per
    instance."""
    rows = []
    for suite in suites:
        cases = [suite.instance(HELD_OUT_SEED + i) for i in range(instances)]
        frames = [proportional_fair_frame(i, allocate) for i in cases]
        # (instance, fair_time, link) average rates, every slot's rates computed once.
        front = [fair_time_rates(i, f, [0.0, *fair_times]) for i, f in zip(cases, frames)]
        own = sum(float(rates[0].sum()) for rates in front)
        for column, fair_time in enumerate(fair_times, start=1):
            rates = [instance_rates[column] for instance_rates in front]
            # The score's count: off in every slot that has time (slot 1 alone at fair_time 0).
            off = np.mean([
                score(i, f.with_fair_time(fair_time)).links_off / i.num_links for i, f in zip(cases, frames)
            ])
            rows.append(FrameRow(
                suite.name, fair_time, sum(float(r.sum()) for r in rates) / own,
                float(np.mean([np.percentile(r, 5) for r in rates])), float(np.mean([np.median(r) for r in rates])),
                float(off),
            ))
    return rows


def format_frame_table(rows: Sequence[FrameRow]) -> str:
    """:func:`frame_rows` as a fixed-width table (``p5/median``: the ratio of the two means)."""
    head = (f"{'suite':<30} {'fair_time':>9} {'sum rate / own':>14} {'p5 rate':>8} {'median':>8} "
            f"{'p5/median':>9} {'off':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = r.p5_rate / r.median_rate if r.median_rate > 0 else 0.0
        lines.append(f"{r.suite:<30} {r.fair_time:>9g} {r.sum_rate_kept:>14.3f} {r.p5_rate:>8.3f} "
                     f"{r.median_rate:>8.3f} {ratio:>9.3f} {r.off:>5.2f}")
    return "\n".join(lines)


def _methods(allocator: Any, links: int) -> dict[str, Callable[[PowerInstance], SolveResult]]:
    """The demo's methods: the learned one, WMMSE (the reference), FP and the baselines
    (greedy only up to 200 links: it evaluates every link at every step)."""
    from gnnalloc.families.power._family import METHODS
    from gnnalloc.families.power._learned import solve_gnn

    methods: dict[str, Callable[[PowerInstance], SolveResult]] = {
        "gnn": lambda instance: solve_gnn(instance, allocator=allocator),
        "wmmse": METHODS["wmmse"].run, "fp": METHODS["fp"].run,
        "full_power": METHODS["full_power"].run,
    }
    if links <= 200:
        methods["greedy"] = METHODS["greedy"].run
    return methods


def _run(allocator: Any, suites: Sequence[Suite], instances: int) -> list[PowerRow]:
    rows: list[PowerRow] = []
    for suite in suites:
        # Warm-up on another instance: the first call of each method pays one-off costs.
        for run in _methods(allocator, suite.links).values():
            run(suite.instance(HELD_OUT_SEED - 1))
        rows += evaluate_power(_methods(allocator, suite.links), [suite], instances)
    return rows


def _plot(rows: Sequence[PowerRow], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = list(dict.fromkeys(r.suite for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, method in enumerate(methods):
        mine = [next((r for r in rows if r.suite == s and r.method == method), None) for s in suites]
        xs = [j + 0.8 * (i - len(methods) / 2) / len(methods) for j in range(len(suites))]
        axes[0].bar(xs, [r.ratio if r and r.ratio is not None else 0 for r in mine], width=0.8 / len(methods), label=method)
        axes[1].bar(xs, [r.seconds * 1000 if r else 0 for r in mine], width=0.8 / len(methods), label=method)
    for ax, title in zip(axes, ("utility / WMMSE's", "time per instance (ms)")):
        ax.set_xticks(range(len(suites)), [s.replace(" ", "\n", 2) for s in suites], fontsize=7)
        ax.set_title(title)
    axes[0].set_ylim(0.5, 1.1)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "power_methods.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _report(rows: Sequence[PowerRow], out_dir: Path, title: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = format_power_table(rows)
    print(f"\n{title}\n{table}")
    (out_dir / "power_table.txt").write_text(table + "\n")
    print(f"wrote {out_dir / 'power_table.txt'} and {_plot(rows, out_dir)}")


def power_demo(out_dir: Path, checkpoint: Path | None) -> int:
    """``gnnalloc demo``'s power section: the shipped model on :data:`DEMO_SUITES`."""
    from gnnalloc.families.power._model import PowerAllocator

    if checkpoint is None or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint: no shipped power model at {str(checkpoint)!r} (make train)")
    allocator = PowerAllocator.from_checkpoint(checkpoint)
    rows = _run(allocator, DEMO_SUITES, instances=5)
    _report(rows, Path(out_dir), "Power control: held-out instances, 5 per suite (ratio = total utility / WMMSE's, "
            "'-' where WMMSE's is not positive; "
            "U/link = mean utility per link; rates in bits/s/Hz; time = median per instance)")
    from gnnalloc.families.power._learned import gnn_allocate

    table = format_frame_table(frame_rows(gnn_allocate(allocator=allocator)))
    print(f"\nPower control, time sharing: gnn as the per-slot allocator of a proportional-fair frame "
          f"({DEFAULT_SLOTS} slots; sum rate over gnn's own answer; p5 and median of the links' average "
          f"rates, averaged over instances, and their ratio; off = share of links off in every slot "
          f"that has time)\n{table}")
    (Path(out_dir) / "power_frame_table.txt").write_text(table + "\n")
    print(f"wrote {Path(out_dir) / 'power_frame_table.txt'}")
    return 0


def evaluate_cli(args: Any) -> int:
    """``gnnalloc evaluate --checkpoint power.ckpt [--links 50 200 ...] [--instances N]``: the
    checkpoint on D2D layouts of the given sizes (default: the demo's suites)."""
    from gnnalloc.families.power._model import PowerAllocator

    allocator = PowerAllocator.from_checkpoint(args.checkpoint)
    sizes = getattr(args, "links", None)
    suites = DEMO_SUITES if not sizes else tuple(Suite("d2d", int(k)) for k in sizes)
    instances = getattr(args, "instances", None) or 5
    rows = _run(allocator, suites, instances)
    _report(rows, Path(args.out), f"Power control: {instances} held-out instances per suite")
    return 0
