"""Fairness backprop modes on the edge family: same share-head model, steps, data and seed.

Modes: sum (mean of per-user losses), per-user MGDA (the shipped ``output`` Gram), and
FairnessLoss settings with the exact Gram over the parameters: per-instance sum / MGDA /
UPGrad / α-fair weighting (FairGrad, α = 2), the tilted mean of the per-instance regrets
(``softmin`` at temperature 0.05 and 0.2 per user: the training instances are solved exactly
once, and the instances furthest from their optimum weigh most), home-server groups (UPGrad), and the efficiency-fairness pair at trade-off 0.5.
Held-out: random instances (sampled like training, disjoint seeds) with the exact optimum as
reference; reported: mean and worst per-instance gap (utility shortfall per unit weight),
Jain, met-minimum share, training time per step.

Run: python benchmarks/bench_fairness_modes_edge.py [--steps 100] [--seed 0] [--topology random]
[--penalty 10] [--alpha 1] (training and held-out instances share the generator and utility)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, fairness_modes_edge_stem, machine  # noqa: E402

from gnnalloc.families.edge.metrics import batch_metrics  # noqa: E402
from gnnalloc.families.edge.training.data import InstanceDataModule  # noqa: E402
from gnnalloc.families.edge.training.module import AllocatorModule  # noqa: E402

MODES = {
    "sum": "sum",
    "user-mgda": "output",
    "instance-sum": {"objectives": "instance", "aggregator": "sum"},
    "instance-mgda": {"objectives": "instance", "aggregator": "mgda"},
    "instance-upgrad": {"objectives": "instance", "aggregator": "upgrad"},
    "instance-alpha_fair 2": {"objectives": "instance", "aggregator": "alpha_fair", "alpha": 2.0},
    # Value-weighted regrets (the training instances' exact optima are the baseline):
    "instance-softmin 0.05": {"objectives": "instance", "aggregator": "softmin", "temperature": 0.05},
    "instance-softmin 0.2": {"objectives": "instance", "aggregator": "softmin", "temperature": 0.2},
    "group-upgrad": {"objectives": "group", "aggregator": "upgrad"},
    "eff-fair 0.5": {"objectives": "efficiency_fairness", "aggregator": "sum", "tradeoff": 0.5},
}


class _StepTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--val", type=int, default=16)
    parser.add_argument("--modes", nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topology", choices=["random", "eua", "mixed"], default="random")
    parser.add_argument("--penalty", type=float, default=10.0)
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args()
    for name in ("steps", "val"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be at least 1, got {getattr(args, name)}")
    unknown = sorted(set(args.modes or ()) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {unknown[0]!r}, expected some of {', '.join(MODES)}")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    try:  # the instances check penalty and alpha and name them
        data = InstanceDataModule(
            topology=args.topology, penalty=args.penalty, alpha=args.alpha, train_instances=256,
            users_min=20, users_max=60, batch_size=8, val_loads=[], val_random_instances=args.val,
            seed=args.seed, train_reference=True,
        )
        data.setup("fit")
    except ValueError as exc:
        parser.error(str(exc))
    rows = []
    for mode, fairness in MODES.items():
        if args.modes and mode not in args.modes:
            continue
        pl.seed_everything(args.seed, verbose=False)
        module = AllocatorModule(hidden=32, heads=4, layers=2, fairness=fairness, decay_steps=args.steps,
                                 track_every_n_steps=0)
        timer = _StepTimer()
        trainer = pl.Trainer(max_steps=args.steps, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                             limit_val_batches=0, callbacks=[timer])
        trainer.fit(module, train_dataloaders=data.train_dataloader())
        module.eval()
        gaps, jain, met = [], [], []
        with torch.no_grad():
            for batch in data.val_dataloader():
                out = module.model(batch.graph, batch.problem)
                metrics = batch_metrics(batch.problem, out.compute, out.bandwidth, batch.reference_utility)
                gaps += metrics["gap"].tolist()
                jain += metrics["jain"].tolist()
                met += metrics["met_minimum"].tolist()
        row = {"mode": mode, "mean_gap": statistics.mean(gaps), "worst_gap": max(gaps),
               "jain": statistics.mean(jain), "met_min": statistics.mean(met),
               "step_seconds": statistics.median(timer.times)}
        rows.append(row)
        print(row, flush=True)
    OUT.mkdir(exist_ok=True)
    result = {"steps": args.steps, "val": args.val, "seed": args.seed, "topology": args.topology,
              "penalty": args.penalty, "alpha": args.alpha, "machine": machine(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    stem = fairness_modes_edge_stem(args.topology, args.penalty, args.alpha, args.steps) + str(args.seed)
    (OUT / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = ["| mode | mean gap | worst gap | Jain | met-min share | ms/step |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['mean_gap']:.4f} | {r['worst_gap']:.4f} | {r['jain']:.3f} | "
              f"{r['met_min']:.3f} | {r['step_seconds'] * 1000:.0f} |" for r in rows]
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
