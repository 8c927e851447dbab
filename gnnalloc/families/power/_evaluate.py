"""Evaluation of power-control methods on held-out instances: the table of ``gnnalloc demo`` and
``gnnalloc evaluate`` for the power family.

Every method answers the same instances (seeds disjoint from training); the learned method's
``ratio`` is its total utility over that of the reference method (``wmmse``) on the same
instances, and rates are summarised per instance (sum, 5th percentile, minimum, Jain's index)
then averaged over instances.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from gnnalloc.core import SolveResult
from gnnalloc.families.power import functional as F
from gnnalloc.families.power._generators import d2d, gaussian
from gnnalloc.families.power._instance import PowerInstance

__all__ = ["DEMO_SUITES", "PowerRow", "Suite", "evaluate_power", "format_power_table"]


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


@dataclass(frozen=True)
class PowerRow:
    """One method on one suite, averaged over its instances.

    Args:
        suite, method: what ran on what.
        instances: how many instances.
        ratio: total utility over the reference method's on the same instances.
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
    ratio: float
    sum_rate: float
    p5_rate: float
    min_rate: float
    geo_rate: float
    jain: float
    off: float
    violation: float
    seconds: float


def _rates(instance: PowerInstance, power: np.ndarray) -> np.ndarray:
    gains = torch.from_numpy(instance.gain_matrix())[None]
    return F.link_rates(gains, torch.from_numpy(power)[None], instance.noise)[0].numpy()


def _objective(instance: PowerInstance, rates: np.ndarray) -> float:
    rate_min = instance.rate_min if instance.rate_min is not None else np.ones_like(rates)
    utility = F.link_utility(
        torch.from_numpy(rates), torch.from_numpy(instance.weight), torch.from_numpy(rate_min),
        instance.utility, instance.alpha, instance.penalty,
    )
    return float(utility.sum())


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
        ref_total = sum(_objective(i, _rates(i, r.allocation.power)) for i, r in zip(cases, results[reference]))
        for name, answers in results.items():
            if not answers:
                continue
            stats = []
            for instance, answer in zip(cases, answers):
                power = np.asarray(answer.allocation.power, dtype=np.float64)
                rates = _rates(instance, np.clip(power, 0.0, None))
                excess = np.maximum(power - instance.pmax, 0.0) / instance.pmax
                deficit = np.maximum(-power, 0.0) / instance.pmax
                stats.append((
                    _objective(instance, rates), rates.sum(), np.percentile(rates, 5), rates.min(),
                    float(np.exp(np.log(np.maximum(rates, 1e-300)).mean())),
                    float(rates.sum() ** 2 / (len(rates) * (rates**2).sum())) if rates.any() else 0.0,
                    float((power < 1e-6 * instance.pmax).mean()),
                    float(max(excess.max(), deficit.max())), answer.seconds,
                ))
            columns = list(zip(*stats))
            rows.append(PowerRow(
                suite.name, name, len(stats), sum(columns[0]) / ref_total if ref_total else float("nan"),
                *(float(np.mean(c)) for c in columns[1:7]), float(max(columns[7])),
                statistics.median(columns[8]),
            ))
    return rows


def format_power_table(rows: Sequence[PowerRow]) -> str:
    """The rows as a fixed-width table, one block per suite."""
    head = f"{'suite':<30} {'method':<11} {'ratio':>7} {'sum rate':>9} {'p5 rate':>8} {'min rate':>8} {'geo rate':>8} {'Jain':>6} {'off':>5} {'viol':>8} {'time':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.suite:<30} {r.method:<11} {r.ratio:>7.4f} {r.sum_rate:>9.2f} {r.p5_rate:>8.3f} "
            f"{r.min_rate:>8.3f} {r.geo_rate:>8.3f} {r.jain:>6.3f} {r.off:>5.2f} {r.violation:>8.1e} "
            f"{r.seconds * 1000:>8.1f}ms"
        )
    return "\n".join(lines)
