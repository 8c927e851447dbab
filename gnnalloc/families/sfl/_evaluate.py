"""``gnnalloc demo``'s and ``gnnalloc evaluate``'s split-federated-learning section: every method
against the certified exact round time on held-out instances."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

from gnnalloc.core import check_count
from gnnalloc.families.sfl._generators import MAX_CLIENTS, MIN_CLIENTS

__all__ = ["evaluate_cli", "sfl_demo", "sfl_table"]

#: Seeds of held-out instances (training uses other seeds).
HELD_OUT_SEED = 900_000
_METHODS = ("gnn", "exact", "equal", "proportional")


def sfl_table(allocator: Any, sizes: Sequence[int] = (10, 100, 1000), instances: int = 3) -> str:
    """Per size and method (medians over ``instances`` held-out instances of the default
    generator): max latency over the exact optimum, mean latency, energy over budget, violation
    and time; one untimed warm-up call per method first."""
    from gnnalloc.families.sfl._family import FAMILY
    from gnnalloc.families.sfl._generators import random_sfl

    runs = {
        "gnn": lambda instance: FAMILY.methods["gnn"].run(instance, allocator=allocator),
        **{name: FAMILY.methods[name].run for name in _METHODS if name != "gnn"},
    }
    head = (f"{'clients':>7} {'method':<13} {'max lat/opt':>11} {'mean lat (s)':>12} "
            f"{'energy/budget':>13} {'violation':>9} {'time':>10}")
    lines = [head, "-" * len(head)]
    for size in sizes:
        cases = [random_sfl(size, HELD_OUT_SEED + i) for i in range(instances)]
        for run in runs.values():
            run(random_sfl(size, HELD_OUT_SEED - 1))  # warm-up: compiled kernels, first forward
        answers = {name: [run(instance) for instance in cases] for name, run in runs.items()}
        for name, results in answers.items():
            scores = [FAMILY.score(i, r.allocation, a.allocation)
                      for i, r, a in zip(cases, results, answers["exact"])]
            ratio = statistics.median(s.max_latency / -FAMILY.score(i, a.allocation).objective
                                      for i, s, a in zip(cases, scores, answers["exact"]))
            lines.append(
                f"{size:>7} {name:<13} {ratio:>11.5f} "
                f"{statistics.median(s.mean_latency for s in scores):>12.2f} "
                f"{statistics.median(s.energy_use for s in scores):>13.3f} "
                f"{max(s.max_violation for s in scores):>9.1e} "
                f"{statistics.median(r.seconds for r in results) * 1000:>8.1f}ms"
            )
    return "\n".join(lines)


def _report(table: str, out_dir: Path, title: str) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"\n{title}\n{table}")
    (out_dir / "sfl_table.txt").write_text(table + "\n")
    print(f"wrote {out_dir / 'sfl_table.txt'}")
    return 0


def sfl_demo(out_dir: Path, checkpoint: Path | None) -> int:
    """The shipped model at 10 / 100 / 1,000 clients, 3 held-out instances each."""
    from gnnalloc.families.sfl._allocator import RoundTimePredictor

    if checkpoint is None or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint: no shipped sfl model at {str(checkpoint)!r}")
    model = RoundTimePredictor.from_checkpoint(checkpoint)
    return _report(sfl_table(model), Path(out_dir),
                   "Split federated learning: held-out rounds, 3 per size (medians; max latency over the certified optimum)")


def evaluate_cli(args: Any) -> int:
    """``gnnalloc evaluate --checkpoint sfl.ckpt [--links N ...] [--instances N]`` (``--links``
    gives the client counts)."""
    from gnnalloc.families.sfl._allocator import RoundTimePredictor

    model = RoundTimePredictor.from_checkpoint(args.checkpoint)
    sizes = getattr(args, "links", None) or (10, 100, 1000)
    for size in sizes:  # the flag's name, not the generator's ("clients")
        check_count("links", size, MIN_CLIENTS, MAX_CLIENTS)
    instances = getattr(args, "instances", None) or 3
    return _report(sfl_table(model, sizes, instances), Path(args.out),
                   f"Split federated learning: {instances} held-out rounds per size")
