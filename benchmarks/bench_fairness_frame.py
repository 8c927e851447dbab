"""Power control: fairness backprop through a time-sharing frame, the efficiency-fairness front of
trained configurations.

One power vector that maximises the sum rate switches about half of the links of a dense layout
off, and no single power vector measured keeps 90 % of that sum rate with a 5th-percentile rate
of a tenth of the median (``bench_fairness_modes.py``, ``bench_power_floor.py``). Here every
configuration fine-tunes the shipped sum-rate model, with the same steps, batch, learning rate and
seed, *through* the proportional-fair frame of ``--slots`` slots that ``gnn_frame`` serves
(``PowerModule(frame_training={"slots": T}, time_sharing=True)``): the model's time head predicts
each instance's ``fair_time`` (its share of the frame's time spread over all slots), and the loss
is the efficiency-fairness pair of the frame's average rates, the mean rate and a fairness term
(``--term``: ``log``, the mean log rate; ``bottom``, the bottom-decile mean rate) with trade-off
weight ``t`` (``--tradeoffs``; ``aggregator: sum``, i.e. the preference ``(1 - t, t)``).

Held-out suites (``power_suites``, seeds 7,000,000+; training draws its own seeds), per
configuration: the frame ``gnn_frame`` serves with the fine-tuned model (its own ``fair_time``
per instance), scored on each link's average rate: sum rate as a share of the shipped model's
single power vector (summed over instances; worst instance) and of WMMSE's, 5th-percentile and
median rates, their ratio, instances keeping >= 90 % of the shipped model's sum rate with a 5th
percentile >= 10 % of their median (fairness backprop's power target (ii)), links off, the
median predicted ``fair_time``, training time per step and frame time (one intra-op thread).
For comparison, the shipped model's own frame at the fixed ``fair_time`` 0.1 (``gnn_frame``'s
default, no training).

Run: python benchmarks/bench_fairness_frame.py [--tradeoffs 0.03 0.1 0.3 0.6] [--term log]
     [--steps 120] [--batch 16] [--lr 1e-3] [--instances 20] [--seed 0] [--sparse 25 50 100] [--save-dir DIR]
Writes fairness_frame_{term}[_sparse]_seed{SEED}.md; with --save-dir, each configuration's checkpoint.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import number, power_suites, rate_front_cells, rate_front_header, write_table  # noqa: E402

from gnnalloc import solve  # noqa: E402
from gnnalloc.core import configure_threads  # noqa: E402
from gnnalloc.fairness import FAIRNESS_TERMS  # noqa: E402
from gnnalloc.families.power import DEFAULT_FAIR_TIME, allocation_rates, frame_rates  # noqa: E402
from gnnalloc.families.power._graph import collate_link_graphs, instance_graph  # noqa: E402
from gnnalloc.families.power._learned import shipped_power_allocator  # noqa: E402
from gnnalloc.families.power._model import PowerAllocator  # noqa: E402
from gnnalloc.families.power._training import PowerModule, sample_power_instance  # noqa: E402


def _fine_tune(tradeoff: float, term: str, slots: int, steps: int, batch: int, lr: float,
               seed: int) -> tuple[PowerAllocator, float]:
    """The shipped model with a time head, fine-tuned through the frame; median step time."""
    shipped = shipped_power_allocator()
    torch.manual_seed(seed)
    module = PowerModule(
        **{k: shipped.hparams[k] for k in ("hidden", "heads", "layers", "refine_steps", "dropout")}, lr=lr,
        fairness={"objectives": "efficiency_fairness", "aggregator": "sum", "tradeoff": tradeoff,
                  "fairness_term": term},
        frame_training={"slots": slots, "alpha": 1.0}, time_sharing=True,
    )
    # Everything but the new time head starts from the shipped model.
    missing, unexpected = module.model.load_state_dict(shipped.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("time_head.") for name in missing)
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    times = []
    for step in range(steps):
        # The shipped model's training mix: D2D 20..50 links, 40 % Gaussian 10-link, sum rate.
        graph = collate_link_graphs([instance_graph(sample_power_instance(rng, 20, 50, 0.4, 0.0))
                                     for _ in range(batch)])
        start = time.perf_counter()
        optimizer.zero_grad()
        module.training_step(graph, step).backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return module.model.eval(), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tradeoffs", type=number(float, 0.0, 1.0), nargs="+", default=[0.03, 0.1, 0.3, 0.6])
    parser.add_argument("--term", choices=FAIRNESS_TERMS, default="log")
    parser.add_argument("--slots", type=number(int, 1, 64), default=16)
    parser.add_argument("--steps", type=number(int, 1), default=120)
    parser.add_argument("--batch", type=number(int, 1), default=16)
    parser.add_argument("--lr", type=number(float, 0.0, above=True), default=1e-3)
    parser.add_argument("--instances", type=number(int, 1), default=20, help="instances per suite (a quarter at K = 200)")
    parser.add_argument("--seed", type=number(int, 0), default=0, help="training seed (model init and instance stream)")
    parser.add_argument("--sparse", type=number(float, 0.0, above=True), nargs="*", default=[], metavar="LINKS_PER_KM2",
                        help="instead of the default suites, D2D K = 50 at these densities (never trained on)")
    parser.add_argument("--save-dir", type=Path, default=None, help="write each configuration's checkpoint here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # Lightning's "self.log outside a Trainer"
    configure_threads(1)
    suites = power_suites(args.instances, args.sparse)
    base = {name: np.array([allocation_rates(i, solve(i, "gnn").allocation).sum() for i in cases])
            for name, cases in suites.items()}
    wmmse = {name: np.array([allocation_rates(i, solve(i, "wmmse").allocation).sum() for i in cases])
             for name, cases in suites.items()}
    configurations: list[tuple[str, PowerAllocator, float]] = [
        (f"shipped, fair_time {DEFAULT_FAIR_TIME:g}", shipped_power_allocator(), 0.0),
    ]
    for tradeoff in args.tradeoffs:
        model, step_seconds = _fine_tune(tradeoff, args.term, args.slots, args.steps, args.batch, args.lr, args.seed)
        label = f"{args.term} t={tradeoff:g}"
        configurations.append((label, model, step_seconds))
        print(f"{label}: {step_seconds * 1000:.0f} ms/step", flush=True)
        if args.save_dir is not None:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            model.save(args.save_dir / f"power-frame-{args.term}-t{tradeoff:g}-seed{args.seed}.ckpt",
                       note=f"bench_fairness_frame.py {label}, {args.steps} steps, seed {args.seed}")
    rows = []
    for suite, cases in suites.items():
        for label, model, step_seconds in configurations:
            rates, seconds, fair_times = [], [], []
            for instance in cases:
                result = solve(instance, "gnn_frame", allocator=model, slots=args.slots)
                seconds.append(result.seconds)
                rates.append(frame_rates(instance, result.allocation))
                # The fair_time served, from the frame's own time shares (slot 1: 1 - f + f / T).
                first_share = float(result.allocation.time_share[0])
                fair_times.append((1.0 - first_share) * args.slots / (args.slots - 1) if args.slots > 1 else 0.0)
            rows.append([
                suite, label, f"{statistics.median(fair_times):.3f}", *rate_front_cells(rates, base[suite], wmmse[suite]),
                f"{step_seconds * 1000:.0f}" if step_seconds else "-", f"{statistics.median(seconds) * 1000:.0f}",
            ])
            print(" | ".join(rows[-1]), flush=True)
    write_table(
        f"fairness_frame_{args.term}{'_sparse' if args.sparse else ''}_seed{args.seed}",
        f"bench_fairness_frame.py — fine-tuned through a {args.slots}-slot frame with a time head, {args.term} "
        f"fairness term, {args.steps} steps x {args.batch}, lr {args.lr:g}, seed {args.seed}; held-out seeds 7000000+",
        ["suite", "configuration", "fair_time (median)", *rate_front_header("share of the sum-rate model's sum rate"),
         "ms / training step", "frame ms"],
        rows,
    )


if __name__ == "__main__":
    main()
