r"""Power control: the shipped sum-rate ``gnn`` with a rate floor (``rate_floor``), the trade-off
between sum rate and the bottom of the rate distribution.

Sum-rate power control switches about half of the links of a dense layout off. The allocator's
``rate_floor = {"rate": r, "max_off": 0.05}`` lifts its answer so that every link gets at least
``r`` bits/s/Hz except, per instance of ``K`` links, the ``floor(0.05 (K - 1))`` that would need
the most power, by the least power increase. The classical counterpart (``wmmse`` rows) lifts
WMMSE's sum-rate answer the same way. Suites (held out: seeds 7,000,000+, and 7,000,500+ for the
denser range; the model was trained at K <= 50, 200 links/km²): Gaussian K = 10, D2D K = 20, 50
and 200 at 200 links/km², D2D K = 50 at 400 links/km². Reported per method and floor: sum rate
as a share of the same method's unfloored one (summed over instances; worst instance), over
WMMSE's, the mean over instances of the 5th-percentile and median rates, of their ratio per
instance, the ratio of those means, how many instances keep >= 90 % of the unfloored sum rate
with a 5th percentile >= 10 % of their median (the power target (ii) of fairness backprop,
instance by instance), the share of links below 1e-6 bits/s/Hz, and the median time per instance
(one intra-op thread).

With ``--optimised``, a third method asks whether *any* single power vector does better than
lifting a sum-rate answer (``optimised`` rows; slow, seconds per instance and floor): per floor
:math:`f`, Adam ascends the penalised sum rate

.. math::  \sum_k r_k - \rho\, \bar r \sum_{k \notin E} \big(\max(0, f - r_k) / f\big)^2

over the power shares (a sigmoid of free variables), :math:`\bar r` the mean rate (held
constant in each step), :math:`E` the :math:`\lfloor 0.05 (K - 1) \rfloor` links furthest
below the floor at each step (those ``max_off`` lets go), :math:`\rho \in \{1, 10, 100\}`,
from WMMSE's answer lifted to the floor and from half power, each run's answer then lifted to the
floor (a finite penalty leaves links just below it). Of the six runs and the lifted answer
itself, the answer kept has the fewest links below the floor beyond
:math:`\lfloor 0.05 (K - 1) \rfloor`, then the best sum rate, so by that measure it is never
worse than the ``wmmse`` row. Its ``none`` row is WMMSE's unfloored answer (the shares' base).

Run: python benchmarks/bench_power_floor.py [--instances 20] [--floors 0.001 0.003 0.01 0.03 0.1]
     [--sparse 25 50 100]  (D2D K = 50 at those densities instead: writes power_floor_sparse.md)
     [--optimised]  (adds the ``optimised`` rows: writes power_floor_optimised.md, or
                    power_floor_sparse_optimised.md with --sparse)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import power_suites, rate_front_cells, rate_front_header, write_table  # noqa: E402

from gnnalloc.core import configure_threads  # noqa: E402
from gnnalloc.families.power import (  # noqa: E402
    NormalisedProblem, PowerAllocation, allocation_rates, wmmse,
)
from gnnalloc.families.power._graph import instance_graph  # noqa: E402
from gnnalloc.families.power._links import lift_to_floor, link_rates  # noqa: E402
from gnnalloc.families.power._learned import shipped_power_allocator  # noqa: E402
from gnnalloc.families.power._model import PowerAllocator  # noqa: E402


def _with_floor(shipped: PowerAllocator, rate: float | None) -> PowerAllocator:
    config = shipped.config()
    if rate is not None:
        config["rate_floor"] = {"rate": rate, "max_off": 0.05}
    model = PowerAllocator(**config)
    model.load_state_dict(shipped.state_dict())
    return model.eval()


def _rates(model: PowerAllocator, instance) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    shares = model.shares(instance_graph(instance)).clamp(0.0, 1.0).numpy()
    seconds = time.perf_counter() - start
    return allocation_rates(instance, PowerAllocation(shares * instance.pmax)), seconds


def _wmmse_shares(instance) -> tuple[np.ndarray, float]:
    """WMMSE's sum-rate answer as power shares, and its time (solved once per instance)."""
    start = time.perf_counter()
    shares = wmmse(instance).allocation.power / instance.pmax
    return shares, time.perf_counter() - start


def _wmmse_rates(instance, solved: tuple[np.ndarray, float], rate: float | None) -> tuple[np.ndarray, float]:
    """The classical counterpart: WMMSE's answer ``solved`` (shares, seconds), lifted by the same
    least power increase; the time is WMMSE's plus the lift's."""
    shares, seconds = solved
    if rate is not None:
        start = time.perf_counter()
        problem = NormalisedProblem.of(instance)
        shares = lift_to_floor(problem.links, torch.as_tensor(shares, dtype=torch.float64), rate).numpy()
        seconds += time.perf_counter() - start
    return allocation_rates(instance, PowerAllocation(shares * instance.pmax)), seconds


#: ``--optimised``: Adam's steps per run, its learning rate, the floor penalties and the starts' share.
_ADAM_STEPS, _ADAM_LR, _PENALTIES, _HALF_POWER = 1500, 0.05, (1.0, 10.0, 100.0), 0.5


def _optimised_rates(instance, solved: tuple[np.ndarray, float], rate: float) -> tuple[np.ndarray, float]:
    """The ``optimised`` method (module docstring) at floor ``rate``: link rates and seconds
    (WMMSE's time included, as for the ``wmmse`` rows)."""
    start = time.perf_counter()
    links = NormalisedProblem.of(instance).links
    allowed = math.floor(0.05 * (instance.num_links - 1))
    lifted = lift_to_floor(links, torch.as_tensor(solved[0], dtype=torch.float64), rate)

    def rank(q: torch.Tensor) -> tuple[int, float]:  # larger is better: -(links below beyond max_off), sum rate
        rates = link_rates(links, q)
        below = int((rates < rate * (1.0 - 1e-9)).sum())
        return -max(0, below - allowed), float(rates.sum())

    best_q, best = lifted, rank(lifted)
    for penalty in _PENALTIES:
        for q0 in (lifted, torch.full_like(lifted, _HALF_POWER)):
            logit = torch.logit(q0.clamp(1e-6, 1.0 - 1e-6)).requires_grad_(True)
            adam = torch.optim.Adam([logit], lr=_ADAM_LR)
            for _ in range(_ADAM_STEPS):
                rates = link_rates(links, torch.sigmoid(logit))
                short = (torch.relu(rate - rates) / rate).sort().values
                short = short[: short.numel() - allowed]  # the links max_off lets go
                loss = penalty * rates.detach().mean() * short.square().sum() - rates.sum()
                adam.zero_grad()
                loss.backward()
                adam.step()
            # A finite penalty leaves some links just below the floor: lift them (least increase).
            q = lift_to_floor(links, torch.sigmoid(logit.detach()), rate)
            candidate = rank(q)
            if candidate > best:
                best_q, best = q, candidate
    seconds = solved[1] + time.perf_counter() - start
    return allocation_rates(instance, PowerAllocation(best_q.numpy() * instance.pmax)), seconds


def _row(suite: str, method: str, floor: float | None, results, base: np.ndarray, reference: np.ndarray) -> list[str]:
    cells = rate_front_cells([r for r, _ in results], base, reference)
    ms = statistics.median(s for _, s in results) * 1000
    return [suite, method, "none" if floor is None else f"{floor:g}", *cells, f"{ms:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--floors", type=float, nargs="*", default=[0.001, 0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--sparse", type=float, nargs="*", default=[], metavar="LINKS_PER_KM2",
                        help="instead of the default suites, D2D K = 50 at these densities (seeds 7,001,000+)")
    parser.add_argument("--optimised", action="store_true",
                        help="add the optimised single power vector per floor (module docstring; slow)")
    args = parser.parse_args()
    # Named parser errors, not tracebacks from deep inside the generator or the model.
    if args.instances < 1:
        parser.error(f"--instances: must be at least 1, got {args.instances}")
    for name, values in (("--floors", args.floors), ("--sparse", args.sparse)):
        bad = [v for v in values if not (math.isfinite(v) and v > 0)]
        if bad:
            parser.error(f"{name}: every value must be a positive finite number, got {bad[0]!r}")
    configure_threads(1)
    shipped = shipped_power_allocator()
    try:  # the model checks the floor's range and names it
        models = {None: _with_floor(shipped, None), **{f: _with_floor(shipped, f) for f in args.floors}}
    except ValueError as exc:
        parser.error(f"--floors: {exc}")
    floors = [None, *args.floors]
    rows = []
    for suite, cases in power_suites(args.instances, args.sparse).items():
        classical = [_wmmse_shares(i) for i in cases]
        unfloored = [_wmmse_rates(i, solved, None) for i, solved in zip(cases, classical)]
        reference = np.array([rates.sum() for rates, _ in unfloored])
        for method in ("gnn", "wmmse", "optimised") if args.optimised else ("gnn", "wmmse"):
            base = None
            for floor in floors:
                if method == "gnn":
                    results = [_rates(models[floor], i) for i in cases]
                elif floor is None:
                    results = unfloored
                elif method == "optimised":
                    results = [_optimised_rates(i, solved, floor) for i, solved in zip(cases, classical)]
                else:
                    results = [_wmmse_rates(i, solved, floor) for i, solved in zip(cases, classical)]
                sums = np.array([r.sum() for r, _ in results])
                base = sums if base is None else base
                rows.append(_row(suite, method, floor, results, base, reference))
                print(" | ".join(rows[-1]), flush=True)
    stem = "power_floor_sparse" if args.sparse else "power_floor"
    write_table(
        f"{stem}_optimised" if args.optimised else stem,
        "bench_power_floor.py — sum rate against a rate floor (shipped gnn, WMMSE"
        + (", and the optimised single power vector)" if args.optimised else ")"),
        ["suite", "method", "floor (bits/s/Hz)", *rate_front_header("share of unfloored sum rate"), "ms"],
        rows,
    )


if __name__ == "__main__":
    main()
