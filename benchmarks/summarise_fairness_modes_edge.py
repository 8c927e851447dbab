"""Paired summary over seeds of ``bench_fairness_modes_edge.py`` runs: every mode against ``sum``.

Reads ``benchmarks/out/fairness_modes_edge_{topology}_k{penalty}_a{alpha}_steps{steps}_seed*.json``
and prints, per mode, the mean over seeds of the mean and worst validation gaps, the paired
difference to ``sum`` on the same seed (mean ± standard error), how many seeds have a lower worst
gap (and of those, a no-worse mean gap), and the two-sided p-values of the worst-gap comparison
by the paired t-test and by the sign test (ties dropped).

Run: python benchmarks/summarise_fairness_modes_edge.py [--topology random] [--penalty 10]
[--alpha 1] [--steps 400] [--seeds FIRST LAST]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from scipy.stats import binomtest, ttest_1samp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, fairness_modes_edge_stem  # noqa: E402


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of ``wins`` against ``losses`` under p = 1/2."""
    n = wins + losses
    return float(binomtest(wins, n, 0.5).pvalue) if n else 1.0


def paired(values: list[float]) -> str:
    """``mean ± standard error`` of paired differences."""
    if len(values) < 2:
        return f"{values[0]:+.4f}" if values else "-"
    return f"{statistics.mean(values):+.4f} ± {statistics.stdev(values) / math.sqrt(len(values)):.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", default="random")
    parser.add_argument("--penalty", type=float, default=10.0)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs=2, default=None, metavar=("FIRST", "LAST"),
                        help="only the seeds in this inclusive range")
    args = parser.parse_args()
    stem = fairness_modes_edge_stem(args.topology, args.penalty, args.alpha, args.steps)
    runs = {}
    for path in OUT.glob(f"{stem}*.json"):
        data = json.loads(path.read_text())
        if args.seeds and not args.seeds[0] <= data["seed"] <= args.seeds[1]:
            continue
        runs[data["seed"]] = {row["mode"]: row for row in data["rows"]}
    if not runs:
        print(f"no runs match {OUT / stem}*.json", file=sys.stderr)
        return 2
    seeds = sorted(runs)
    print(f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}): {stem}*.json")
    print("| mode | seeds | mean gap | worst gap | Δ mean gap vs sum | Δ worst gap vs sum "
          "| lower worst / and no worse mean | worst gap: t-test p | sign test p |")
    print("|---|---|---|---|---|---|---|---|---|")
    modes = list(dict.fromkeys(mode for seed in seeds for mode in runs[seed]))
    for mode in modes:
        both = [s for s in seeds if mode in runs[s] and "sum" in runs[s]]
        rows = [runs[s][mode] for s in both]
        if not rows:
            continue
        mean = statistics.mean(r["mean_gap"] for r in rows)
        worst = statistics.mean(r["worst_gap"] for r in rows)
        if mode == "sum":
            print(f"| sum | {len(rows)} | {mean:.4f} | {worst:.4f} | | | | | |")
            continue
        d_mean = [runs[s][mode]["mean_gap"] - runs[s]["sum"]["mean_gap"] for s in both]
        d_worst = [runs[s][mode]["worst_gap"] - runs[s]["sum"]["worst_gap"] for s in both]
        lower = [i for i, d in enumerate(d_worst) if d < 0]
        no_worse = sum(1 for i in lower if d_mean[i] <= 0)
        p = sign_test(len(lower), sum(1 for d in d_worst if d > 0))
        t = float(ttest_1samp(d_worst, 0.0).pvalue) if len(d_worst) > 1 else math.nan
        print(f"| {mode} | {len(rows)} | {mean:.4f} | {worst:.4f} | {paired(d_mean)} | {paired(d_worst)} "
              f"| {len(lower)} / {no_worse} of {len(rows)} | {t:.3f} | {p:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
