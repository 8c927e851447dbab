"""Fairness backprop modes on the power family: same model, steps, data and seed per mode.

Two tasks:

* ``sum_rate``: training on the sum rate (D2D 20..50 links, 40 % Gaussian 10-link instances);
  modes: sum (mean over instances, the shipped loss), per-link MGDA, per-instance MGDA and
  UPGrad, link-strength-quartile groups (UPGrad), and the efficiency-fairness pair
  (mean rate, bottom-decile mean rate) at trade-off weights 0.25 / 0.5 / 0.75 / 0.9.
  The ``+ steps`` modes train the efficiency-fairness pair with trade-off weight ``t`` on a
  model whose refinement steps climb the α-fair utility of the rates with ``alpha = t / (1 - t)``
  (``step_utility``, minimum 1e-6 bits/s/Hz), so the trade-off weight reaches the steps too.
* ``pf``: training on the proportional-fair utility (alpha = 1, penalty 10 below 0.1 bits/s/Hz,
  the same instance mix); modes: sum, per-link MGDA, per-instance UPGrad, α-fair (alpha = 1)
  weighting of the per-instance objectives; the ``+ pf steps`` modes refine with
  ``step_utility = {"alpha": 1}`` (steps and candidate choice on the log-rate utility with a
  1e-6 bits/s/Hz minimum, which never switches a link off).

Held-out instances (seeds disjoint from training): D2D K = 50 and Gaussian K = 10, with the
task's utility. Each trained model is evaluated twice: ``map`` = its powers after the trained
number of unrolled WMMSE steps (what the loss trained), ``gnn`` = the shipped inference
(best of three refined candidates by the instance's utility). References: WMMSE and FP (both
re-weighted for the α-fair utility).

Run: python benchmarks/bench_fairness_modes.py --task sum_rate [--steps 120] [--batch 16]
[--modes "sum" "eff-fair 0.1 + steps" ...] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, machine  # noqa: E402

from gnnalloc.families.power import (  # noqa: E402
    METHODS, PowerAllocation, allocation_rates, allocation_utilities, d2d, gaussian,
)
from gnnalloc.families.power._graph import collate_link_graphs, instance_graph  # noqa: E402
from gnnalloc.families.power._training import PowerModule  # noqa: E402

PF = {"utility": "alpha_fair", "alpha": 1.0, "penalty": 10.0, "rate_min": 0.1}
#: The log-rate utility the ``+ pf steps`` models climb (minimum 1e-6): the references are also
#: run on it (rows "... log"), so that the comparison on the geometric mean is like for like.
PF_LOG = {"utility": "alpha_fair", "alpha": 1.0, "penalty": 1.0, "rate_min": 1e-6}
_SUM = {"objectives": "instance", "aggregator": "sum"}
MODES: dict[str, dict[str, dict]] = {
    "sum_rate": {
        "sum": {"objectives": "instance", "aggregator": "sum"},
        "link-mgda": {"objectives": "unit", "aggregator": "mgda"},
        "instance-mgda": {"objectives": "instance", "aggregator": "mgda"},
        "instance-upgrad": {"objectives": "instance", "aggregator": "upgrad"},
        "group-upgrad": {"objectives": "group", "aggregator": "upgrad"},
        **{f"eff-fair {t:g}": {"objectives": "efficiency_fairness", "aggregator": "sum", "tradeoff": t}
           for t in (0.25, 0.5, 0.75, 0.9)},
        **{f"eff-fair {t:g} + steps": {"objectives": "efficiency_fairness", "aggregator": "sum", "tradeoff": t,
                                       "model": {"step_utility": {"alpha": round(t / (1 - t), 3)}}}
           for t in (0.2, 0.333, 0.5, 0.667)},
    },
    "pf": {
        "sum": {"objectives": "instance", "aggregator": "sum"},
        "link-mgda": {"objectives": "unit", "aggregator": "mgda"},
        "instance-upgrad": {"objectives": "instance", "aggregator": "upgrad"},
        "instance-alpha_fair": {"objectives": "instance", "aggregator": "alpha_fair", "alpha": 1.0},
        "sum + pf steps": {**_SUM, "model": {"step_utility": {"alpha": 1.0}}},
        "instance-upgrad + pf steps": {"objectives": "instance", "aggregator": "upgrad", "model": {"step_utility": {"alpha": 1.0}}},
        "instance-alpha_fair + pf steps": {"objectives": "instance", "aggregator": "alpha_fair", "alpha": 1.0,
                                           "model": {"step_utility": {"alpha": 1.0}}},
    },
}
HELD_OUT = 7_000_000


def _instance(task: str, rng: np.random.Generator):
    settings = PF if task == "pf" else {}
    seed = int(rng.integers(1 << 31))
    if rng.random() < 0.4:
        return gaussian(10, seed, **settings)
    return d2d(int(rng.integers(20, 51)), seed, **settings)


def _suites(task: str, count: int):
    settings = {"pf": PF, "pf_log": PF_LOG}.get(task, {})
    return {
        "d2d K=50": [d2d(50, HELD_OUT + i, **settings) for i in range(count)],
        "gaussian K=10": [gaussian(10, HELD_OUT + i, **settings) for i in range(count)],
    }


def _summary(instance, allocation: PowerAllocation, wmmse_sum: float) -> dict:
    rates = allocation_rates(instance, allocation)
    util = allocation_utilities(instance, allocation)
    off = float((allocation.power < 1e-6 * instance.pmax).mean())
    return {
        "sum_rate": float(rates.sum()), "ratio": float(rates.sum() / wmmse_sum),
        "p5": float(np.percentile(rates, 5)), "median": float(np.median(rates)),
        "min": float(rates.min()), "geo": float(np.exp(np.mean(np.log(np.maximum(rates, 1e-300))))),
        "jain": float(rates.sum() ** 2 / (len(rates) * (rates ** 2).sum())), "off": off,
        "utility": float(util.sum()),
    }


def _aggregate(rows: list[dict]) -> dict:
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out["worst_ratio"] = float(min(r["ratio"] for r in rows))
    return out


def _train(task: str, fairness: dict, steps: int, batch: int, seed: int) -> tuple[PowerModule, float]:
    torch.manual_seed(seed)
    fairness = dict(fairness)
    model = fairness.pop("model", {})
    module = PowerModule(hidden=32, heads=4, layers=2, refine_steps=8, lr=1e-3, fairness=fairness, **model)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    times = []
    for step in range(steps):
        graph = collate_link_graphs([instance_graph(_instance(task, rng)) for _ in range(batch)])
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = module.training_step(graph, step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return module, statistics.median(times)


@torch.no_grad()
def _map_powers(module: PowerModule, instance) -> PowerAllocation:
    shares = module.model(instance_graph(instance))[-1].clamp(0.0, 1.0)
    return PowerAllocation(shares.numpy() * instance.pmax)


@torch.no_grad()
def _gnn_powers(module: PowerModule, instance) -> PowerAllocation:
    shares = module.model.shares(instance_graph(instance)).clamp(0.0, 1.0)
    return PowerAllocation(np.minimum(shares.numpy() * instance.pmax, instance.pmax))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=sorted(MODES), required=True)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="*", default=None)
    parser.add_argument("--tag", default="", help="suffix of the output files (runs of mode subsets)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    suites = _suites(args.task, args.instances)
    references = {}
    results = {"task": args.task, "steps": args.steps, "batch": args.batch, "seed": args.seed,
               "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "rows": []}
    wmmse_sums = {}
    for name, cases in suites.items():
        answers = {m: [METHODS[m].run(i).allocation for i in cases] for m in ("wmmse", "fp")}
        wmmse_sums[name] = [float(allocation_rates(i, a).sum()) for i, a in zip(cases, answers["wmmse"])]
        if args.task == "pf":  # the same channels with the log-rate utility; scored on the task's
            log_cases = _suites("pf_log", args.instances)[name]
            answers.update({f"{m} log": [METHODS[m].run(i).allocation for i in log_cases] for m in ("wmmse", "fp")})
        for method, allocs in answers.items():
            row = _aggregate([_summary(i, a, w) for i, a, w in zip(cases, allocs, wmmse_sums[name])])
            results["rows"].append({"suite": name, "mode": method, "eval": "reference", **row})
            references[(name, method)] = row
    for mode, fairness in MODES[args.task].items():
        if args.modes and mode not in args.modes:
            continue
        module, step_time = _train(args.task, fairness, args.steps, args.batch, args.seed)
        module.eval()
        for name, cases in suites.items():
            for kind, run in (("map", _map_powers), ("gnn", _gnn_powers)):
                row = _aggregate([_summary(i, run(module, i), w) for i, w in zip(cases, wmmse_sums[name])])
                results["rows"].append({"suite": name, "mode": mode, "eval": kind,
                                        "step_seconds": step_time, **row})
        print(f"{mode}: {step_time * 1000:.0f} ms/step", flush=True)
    OUT.mkdir(exist_ok=True)
    suffix = f"_{args.tag}" if args.tag else ""
    path = OUT / f"fairness_modes_{args.task}{suffix}.json"
    path.write_text(json.dumps(results, indent=1))
    header = "| suite | mode | eval | ratio | worst | sum rate | p5 | median | min | geo | Jain | off | utility | ms/step |"
    lines = [header, "|" + "---|" * 14]
    for r in results["rows"]:
        lines.append(
            f"| {r['suite']} | {r['mode']} | {r['eval']} | {r['ratio']:.3f} | {r['worst_ratio']:.3f} | "
            f"{r['sum_rate']:.2f} | {r['p5']:.3f} | {r['median']:.3f} | {r['min']:.3f} | {r['geo']:.3f} | "
            f"{r['jain']:.3f} | {r['off']:.2f} | {r['utility']:.2f} | "
            f"{r.get('step_seconds', float('nan')) * 1000:.0f} |")
    text = "\n".join(lines)
    (OUT / f"fairness_modes_{args.task}{suffix}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
