"""The ``gnnalloc`` command line: a thin shell over the library's functions.

Every failure caused by user input (a bad file, a bad flag) prints one ``error: field: reason``
line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

_LIGHTNING_COMMANDS = ("fit", "validate", "test")


def _format_summary(
    title: str, score, seconds: float, status: str, extra: dict[str, str] | None = None,
    gap_label: str = "gap to optimum (per unit weight)", gap_missing: str = "n/a (pass --reference exact)",
) -> str:
    gap = gap_missing if score.gap is None else f"{score.gap:.6f}"
    rows = [
        ("method", title),
        ("status", status),
        ("objective", f"{score.objective:.6f}"),
        (gap_label, gap),
    ]
    if score.gap_bound is not None:
        rows.append(("proven gap bound (per unit weight)", f"{score.gap_bound:.6f}"))
    rows += [
        ("Jain index (satisfaction)", f"{score.jain:.4f}"),
        ("met-minimum share", f"{score.met_minimum:.4f}"),
        ("min utility", f"{score.min_utility:.4f}"),
        ("utility variance per weight", f"{score.utility_variance:.4f}"),
        ("max relative violation", f"{score.max_violation:.2e}"),
        ("users without candidate", str(score.users_without_candidate)),
        ("time", f"{seconds * 1000:.1f} ms"),
    ]
    rows += list((extra or {}).items())
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _cmd_generate(args: argparse.Namespace) -> int:
    from gnnalloc.generators import eua_instance, random_instance
    from gnnalloc.problem import save_instance

    if args.topology == "random":
        instance = random_instance(
            args.users, args.servers, args.load, args.seed, penalty=args.penalty, alpha=args.alpha
        )
    else:
        instance = eua_instance(args.users, args.load, args.seed, penalty=args.penalty, alpha=args.alpha)
    if args.out:
        save_instance(instance, args.out)
        print(f"wrote {args.out}: {instance!r}", file=sys.stderr)
    else:
        json.dump(instance.to_dict(), sys.stdout)
        sys.stdout.write("\n")
    return 0


_GAP_TO_OPTIMUM = "gap to optimum (per unit weight)"
_GAP_TO_UNCERTIFIED = "gap to UNCERTIFIED exact result (per unit weight)"
_GAP_TO_FILE = "gap to reference allocation (per unit weight)"


def _reference(instance, spec: str | None):
    """The reference allocation and the label its gap is reported under: only a certified exact
    solve is "the optimum"; an uncertified one, or a file, is named for what it is."""
    from gnnalloc.problem import load_allocation
    from gnnalloc.solvers import solve

    if spec is None:
        return None, _GAP_TO_OPTIMUM
    if spec == "exact":
        # Through the dispatch: an uncertified result beaten by a baseline is replaced by it.
        result = solve(instance, "exact")
        return result.allocation, _GAP_TO_OPTIMUM if result.certified_optimal else _GAP_TO_UNCERTIFIED
    return load_allocation(instance, spec), _GAP_TO_FILE


def _cmd_solve(args: argparse.Namespace) -> int:
    from gnnalloc.metrics import score
    from gnnalloc.problem import load_instance, save_allocation
    from gnnalloc.solvers import solve

    instance = load_instance(args.instance)
    result = solve(
        instance, args.method, checkpoint=args.checkpoint, time_limit=args.time_limit
    )
    missing = "n/a (pass --reference exact)"
    if args.method == "exact":
        # Its own reference only when certified; an uncertified answer is no yardstick for itself.
        reference, label = None, _GAP_TO_OPTIMUM
        missing = "0 (certified)" if result.certified_optimal else "n/a (exact result NOT certified)"
    else:
        reference, label = _reference(instance, args.reference)
    report = score(instance, result.allocation, reference, result.upper_bound)
    status = result.status + ("" if args.method != "exact" or result.certified_optimal else " (NOT certified)")
    print(_format_summary(args.method, report, result.seconds, status, {"instance": repr(instance)},
                          gap_label=label, gap_missing=missing))
    if args.out:
        save_allocation(instance, result.allocation, args.out)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from gnnalloc.metrics import score
    from gnnalloc.problem import load_allocation, load_instance

    instance = load_instance(args.instance)
    allocation = load_allocation(instance, args.allocation)
    reference, label = _reference(instance, args.reference)
    report = score(instance, allocation, reference)
    print(_format_summary(str(args.allocation), report, 0.0, "scored", gap_label=label))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gnnalloc.training.evaluate import evaluate_cli

    return evaluate_cli(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gnnalloc.training.evaluate import demo

    return demo(out_dir=Path(args.out))


def _cmd_export(args: argparse.Namespace) -> int:
    from gnnalloc.training.export import export_checkpoint

    metadata = export_checkpoint(args.checkpoint, args.out)
    size = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({size:.0f} KiB) from {metadata['source']}, step {metadata['global_step']}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from gnnalloc.serve.app import serve_cli

    return serve_cli(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gnnalloc",
        description="Learned fair resource allocation for edge networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate an instance JSON")
    gen.add_argument("topology", choices=("random", "eua"))
    gen.add_argument("--users", type=int, required=True)
    gen.add_argument("--servers", type=int, default=20, help="random topology only")
    gen.add_argument("--load", type=float, default=1.0, help="total minimum demand / capacity")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--penalty", type=float, default=10.0)
    gen.add_argument("--alpha", type=float, default=1.0)
    gen.add_argument("--out", type=Path, help="file to write (default: stdout)")
    gen.set_defaults(run=_cmd_generate)

    sol = sub.add_parser("solve", help="allocate an instance and print a summary")
    sol.add_argument("instance", type=Path)
    sol.add_argument("--method", default="exact", choices=("exact", "dual", "equal", "proportional", "gnn"))
    sol.add_argument("--checkpoint", type=Path, help="model checkpoint for --method gnn")
    sol.add_argument("--reference", help="'exact' or an allocation file, to report the gap")
    sol.add_argument("--time-limit", type=float, help="seconds for the exact solver")
    sol.add_argument("--out", type=Path, help="write the allocation JSON here")
    sol.set_defaults(run=_cmd_solve)

    sco = sub.add_parser("score", help="score an allocation file")
    sco.add_argument("instance", type=Path)
    sco.add_argument("allocation", type=Path)
    sco.add_argument("--reference", help="'exact' or an allocation file, to report the gap")
    sco.set_defaults(run=_cmd_score)

    ev = sub.add_parser("evaluate", help="evaluate a checkpoint against the exact solver")
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--suite", choices=("eua", "random"), default="eua")
    ev.add_argument("--users", type=int, nargs="+", default=[816])
    ev.add_argument("--loads", type=float, nargs="+", default=[0.6, 1.0, 1.4])
    ev.add_argument("--seeds", type=int, nargs="+", default=[1000])
    ev.add_argument("--servers", type=int, default=50, help="random suite only")
    ev.add_argument("--exact-max-users", type=int, default=20000,
                    help="skip the exact solver above this size")
    ev.add_argument("--search-rounds", type=int, default=0,
                    help="also run the model with this many migration-search rounds (gnn+search)")
    ev.add_argument("--dual-iterations", type=int,
                    help="L-BFGS iterations of the smoothed-dual reference (method dual; 0 = skip; "
                    "default: 300 to 3,000 by instance size, see solvers.default_iterations)")
    ev.add_argument("--out", type=Path, default=Path("out/evaluate"))
    ev.set_defaults(run=_cmd_evaluate)

    demo = sub.add_parser("demo", help="the README's main job: evaluate the shipped model on EUA")
    demo.add_argument("--out", default="out/demo")
    demo.set_defaults(run=_cmd_demo)

    exp = sub.add_parser("export", help="write the small inference checkpoint from a training one")
    exp.add_argument("checkpoint", type=Path, help="Lightning checkpoint, e.g. checkpoints/last.ckpt")
    exp.add_argument("--out", type=Path, default=Path("checkpoints/default.ckpt"))
    exp.set_defaults(run=_cmd_export)

    srv = sub.add_parser("serve", help="serve the allocator over HTTP")
    srv.add_argument("--checkpoint", type=Path, default=Path("checkpoints/default.ckpt"))
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--max-users", type=int, default=20000)
    srv.add_argument("--max-pairs", type=int, default=400_000,
                     help="most candidate (user, server) pairs per instance (cost grows with them)")
    srv.add_argument("--exact-time-limit", type=float, default=30.0)
    srv.add_argument("--exact-max-users", type=int, default=5000)
    srv.add_argument("--workers", type=int, default=1,
                     help="worker processes, each with its own model (about one per core)")
    srv.add_argument("--body-timeout", type=float, default=30.0,
                     help="seconds a request body may take to arrive (then 408)")
    srv.set_defaults(run=_cmd_serve)

    for name in _LIGHTNING_COMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} (see `gnnalloc {name} --help`)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gnnalloc`` console script."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _LIGHTNING_COMMANDS:
        from gnnalloc.training.cli import lightning_main

        # LightningCLI warns when handed arguments that are also the process's command line.
        return lightning_main(None if from_command_line else argv)
    args = _parser().parse_args(argv)
    from gnnalloc.core import configure_threads, cut_message
    from gnnalloc.problem import InstanceError, SolverError

    try:
        configure_threads()  # one intra-op thread per solve unless GNNALLOC_THREADS says otherwise
        return int(args.run(args) or 0)
    except InstanceError as exc:  # values are echoed: cut as the server cuts them
        print(f"error: {exc.field}: {cut_message(exc.message)}", file=sys.stderr)
        return 2
    except SolverError as exc:
        print(f"error: solver: {cut_message(str(exc))}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"error: {cut_message(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # the library's own, e.g. "checkpoint: no file at ..."
            print(f"error: {exc}", file=sys.stderr)
        else:  # name the argument that held the path (--out as "out")
            field = next(
                (name for name, value in vars(args).items()
                 if isinstance(value, (str, Path)) and str(value) == str(exc.filename)),
                "file",
            )
            print(f"error: {field}: {exc.strerror or exc}: {str(exc.filename)!r}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
