"""How good the proofs are: the Lagrangian bound behind ``solve_exact``'s certificate and
``solve_dual``'s gap bound (RESULTS.md, "bench_certificates.py").

Part 1, EUA (seed 1000): per instance, the exact solver's certified gap
``(upper_bound - objective) / sum(weight)`` (must be <= CERTIFIED_GAP) and the dual's proven gap
bound beside its true gap to the exact optimum.

Part 2, the corners of the server's value ranges (``VALUE_RANGES``: quantities 1e-12 / 1 / 1e12,
capacities also 0, weights 1e-6 / 1 / 1e6; 108 instances per alpha, the instance of
``bench_extremes.py``): how often Clarabel raises, is certified, or is not; and how often a
certified result is beaten by the dual solver's feasible allocation by more than the certificate
allows (must be 0), next to what the old rule (status "optimal" and the two objectives agree)
would have certified.

Run: python benchmarks/bench_certificates.py [--users 816 5000] [--loads 0.6 1.0 1.4]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import objective, write_table  # noqa: E402
from bench_extremes import instance  # noqa: E402

from gnnalloc import SolverError, eua_instance  # noqa: E402
from gnnalloc.families.edge import VALUE_RANGES  # noqa: E402
from gnnalloc.families.edge.solvers import CERTIFIED_GAP, solve_dual, solve_exact  # noqa: E402


def eua_rows(users: list[int], loads: list[float]) -> list[list[object]]:
    rows = []
    for n in users:
        for load in loads if n < 5000 else [1.0]:
            inst = eua_instance(n, load, 1000)
            weight = inst.weight.sum()
            exact = solve_exact(inst)
            dual = solve_dual(inst)
            dual_objective = objective(inst, dual.allocation)
            rows.append([
                n, f"{load:g}", "yes" if exact.certified else "NO",
                f"{(exact.upper_bound - exact.objective) / weight:.1e}",
                f"{(exact.objective - dual_objective) / weight:.4f}",
                f"{(dual.upper_bound - dual_objective) / weight:.4f}",
            ])
    return rows


def corner_rows() -> list[list[object]]:
    low, high = VALUE_RANGES["quantity"]
    light, heavy = VALUE_RANGES["weight"]
    rows = []
    for alpha in (VALUE_RANGES["alpha"][0], 1.0, VALUE_RANGES["alpha"][1]):
        raised = certified = old_certified = wrong = old_wrong = 0
        cases = 0
        for values in itertools.product((low, 1.0, high), (low, 1.0, high), (0.0, low, 1.0, high), (light, 1.0, heavy)):
            inst = instance(alpha, *values)
            cases += 1
            try:
                exact = solve_exact(inst, time_limit=10.0)
            except SolverError:
                raised += 1
                continue
            dual_objective = objective(inst, solve_dual(inst).allocation)
            beaten = dual_objective - exact.objective > CERTIFIED_GAP * inst.weight.sum()
            old = exact.status == "optimal" and abs(exact.objective - exact.solver_objective) <= 1e-6 * max(
                1.0, abs(exact.solver_objective)
            )
            certified += exact.certified
            old_certified += old
            wrong += exact.certified and beaten
            old_wrong += old and beaten
        rows.append([f"{alpha:g}", cases, raised, certified, wrong, old_certified, old_wrong])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[816, 5000])
    parser.add_argument("--loads", type=float, nargs="+", default=[0.6, 1.0, 1.4])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    write_table(
        "certificates_eua",
        "EUA, seed 1000: exact certificate and the dual's proven gap bound",
        ["users", "load", "exact certified", "exact: bound - objective (per weight)",
         "dual: true gap", "dual: proven gap bound"],
        eua_rows(args.users, args.loads),
    )
    write_table(
        "certificates_corners",
        "Corners of VALUE_RANGES: exact results, certified by the bound vs the old rule",
        ["alpha", "instances", "exact raised", "certified", "certified, yet beaten by dual",
         "old rule: certified", "old rule: certified, yet beaten by dual"],
        corner_rows(),
    )


if __name__ == "__main__":
    main()
