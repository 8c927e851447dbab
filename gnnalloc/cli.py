"""The ``gnnalloc`` command line: a thin shell over the library's functions.

Every failure caused by user input (a bad file, a bad flag) prints one ``error: field: reason``
line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from gnnalloc.core import InputError

__all__ = ["main"]

_LIGHTNING_COMMANDS = ("fit", "validate", "test")


def _format_summary(
    title: str, score: Any, seconds: float, status: str, extra: dict[str, str] | None = None,
    gap_label: str | None = None, gap_missing: str | None = None,
) -> str:
    """The summary table; ``gap_label`` names what the gap was measured against (only a
    certified optimum is "the optimum") and ``gap_missing`` says why there is none."""
    body = list(score.rows())
    at = next((i for i, (k, _) in enumerate(body) if k.startswith("gap to")), None)
    if gap_label is not None or gap_missing is not None:
        value = f"{score.gap:.6g}" if score.gap is not None else (gap_missing or "n/a")
        row = (gap_label or _GAP_TO_OPTIMUM, value)
        if at is None:
            body.insert(1, row)
        else:
            body[at] = row
    rows = [("method", title), ("status", status), *body, ("time", f"{seconds * 1000:.1f} ms")]
    rows += list((extra or {}).items())
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _generators() -> dict[str, tuple[Any, Any]]:
    """Every family's generators, ``name -> (family, generator)``; a name two families share is
    qualified by the family (``power.gaussian``)."""
    from gnnalloc.core import families

    entries = [(name, family, gen) for family in families().values() for name, gen in family.generators.items()]
    counts: dict[str, int] = {}
    for name, _, _ in entries:
        counts[name] = counts.get(name, 0) + 1
    return {
        (name if counts[name] == 1 else f"{family.name}.{name}"): (family, gen)
        for name, family, gen in entries
    }


_TYPES = {"int": int, "float": float, "str": str, "bool": str}


def _generator_spec(generator: Any) -> tuple[str, str, list[tuple[str, type, Any, str]]]:
    """``(size name, description, [(setting, type, default, help)])`` of a generator: from its
    :class:`~gnnalloc.core.Generator` record, else from a plain callable's signature
    ``f(size, seed=0, *, setting=default, ...)`` (a setting without default becomes a required
    flag; ``seed`` a flag only if the callable takes it)."""
    settings = getattr(generator, "settings", None)
    if settings is not None and hasattr(generator, "size"):
        found = [(s.name, s.type, s.default, s.help) for s in settings]
        return generator.size, generator.description, [("seed", int, 0, ""), *found]
    params = [
        p for p in inspect.signature(generator).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    found = []
    for p in params[1:]:
        if p.default is not inspect.Parameter.empty and p.default is not None:
            kind = type(p.default)
        else:
            annotation = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            kind = _TYPES.get(annotation.split("|")[0].strip().strip("'\""), str)
        default = inspect.Parameter.empty if p.default is inspect.Parameter.empty else p.default
        found.append((p.name, kind, default, ""))
    doc = (inspect.getdoc(generator) or "").split("\n", 1)[0]
    return params[0].name, doc, found


def _cmd_generate(args: argparse.Namespace) -> int:
    family, generator = args.generator
    size_name, _, settings = _generator_spec(generator)
    values = {name: getattr(args, name) for name, *_ in settings}
    if hasattr(generator, "settings") and hasattr(generator, "size"):
        instance = generator(getattr(args, size_name), **values)
    else:  # a plain callable: every argument by name
        instance = generator(**{size_name: getattr(args, size_name)}, **values)
    document = family.dump_instance(instance)
    if args.out:
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {args.out}: {instance!r}", file=sys.stderr)
    else:
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    return 0


def _load_allocation(family: Any, instance: Any, path: str | Path) -> Any:
    from gnnalloc.core import AllocationError, read_document

    load = getattr(family, "load_allocation", None)
    if load is not None:
        return load(instance, path)
    return family.parse_allocation(instance, read_document(path, AllocationError))


_GAP_TO_OPTIMUM = "gap to optimum (per unit weight)"
_GAP_TO_FILE = "gap to reference allocation (per unit weight)"


def _reference(family: Any, instance: Any, spec: str | None) -> tuple[Any, str]:
    """The reference allocation of ``--reference`` (a method name or a file) and the label its
    gap is reported under: only a certified optimum is "the optimum"; an uncertified exact
    result, another method's answer or a file is named for what it is."""
    from gnnalloc.core import InstanceError, solve

    if spec is None:
        return None, _GAP_TO_OPTIMUM
    if spec in family.methods:
        result = solve(instance, spec)
        if result.certified_optimal:
            return result.allocation, _GAP_TO_OPTIMUM
        if spec == "exact":
            return result.allocation, "gap to UNCERTIFIED exact result (per unit weight)"
        return result.allocation, f"gap to {spec} (per unit weight)"
    if not Path(spec).exists():
        raise InputError(
            f"reference: {spec!r} is neither a method of the {family.name} family "
            f"({', '.join(family.methods)}) nor a file"
        )
    try:
        return _load_allocation(family, instance, spec), _GAP_TO_FILE
    except InstanceError as exc:  # two files were given: say which one is at fault
        raise type(exc)("reference", f"{spec!r}: {exc.field}: {exc.message}") from None


#: Options with flags of their own (or that are objects): not given through --option.
_FLAGGED_OPTIONS = {"checkpoint": "--checkpoint", "time_limit": "--time-limit", "gap_tol": "--gap-tol",
                    "allocator": "--checkpoint"}


def _numeric_options(pairs: Sequence[str]) -> dict[str, int | float]:
    """``--option NAME=NUMBER`` pairs as solve options (a JSON number: ``16`` is an integer,
    ``0.2`` or ``1e-3`` a float); which names a method takes, :func:`gnnalloc.solve` checks."""
    options: dict[str, int | float] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise InputError(f"option: expected NAME=NUMBER (e.g. fair_time=0.2), got {pair!r}")
        if name in _FLAGGED_OPTIONS:
            raise InputError(f"option: give {name} with {_FLAGGED_OPTIONS[name]}, not --option")
        if name in options:
            raise InputError(f"{name}: given twice")
        try:
            value = json.loads(text, parse_constant=lambda c: c)  # NaN / Infinity stay text: refused below
            finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        except (ValueError, OverflowError):  # not JSON, or more digits than Python or a float holds
            finite = False
        if not finite:
            raise InputError(f"{name}: expected a finite number, got {text!r}")
        options[name] = value
    return options


def _cmd_solve(args: argparse.Namespace) -> int:
    from gnnalloc.core import check_method, family_of, load_instance, solve

    instance = load_instance(args.instance)
    family = family_of(instance)
    if args.method is None:
        args.method = family.reference_method
    check_method(family, args.method)
    options = {
        k: v for k, v in (
            ("checkpoint", args.checkpoint), ("time_limit", args.time_limit), ("gap_tol", args.gap_tol),
        )
        if v is not None
    }
    options.update(_numeric_options(args.option or ()))
    result = solve(instance, args.method, **options)
    missing = "n/a (pass --reference " + family.reference_method + ")"
    if args.method == family.reference_method and args.reference in (None, args.method):
        # Its own yardstick only when certified: an uncertified answer cannot grade itself.
        reference, label = None, _GAP_TO_OPTIMUM
        missing = "0 (certified)" if result.certified_optimal else "n/a (this is the reference, NOT certified)"
    else:
        reference, label = _reference(family, instance, args.reference)
    report = family.score(instance, result.allocation, reference, result.upper_bound)
    uncertified = (
        args.method == family.reference_method and result.status != "ok"
        and not result.certified_optimal
    )
    status = result.status + (" (NOT certified)" if uncertified else "")
    print(_format_summary(args.method, report, result.seconds, status, {"instance": repr(instance)},
                          gap_label=label, gap_missing=missing))
    if args.out:
        document = family.dump_allocation(instance, result.allocation)
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from gnnalloc.core import family_of, load_instance

    instance = load_instance(args.instance)
    family = family_of(instance)
    allocation = _load_allocation(family, instance, args.allocation)
    reference, label = _reference(family, instance, args.reference)
    report = family.score(instance, allocation, reference)
    print(_format_summary(str(args.allocation), report, 0.0, "scored", gap_label=label,
                          gap_missing="n/a (pass --reference " + family.reference_method + ")"))
    return 0


#: ``gnnalloc evaluate``'s family options with their defaults (a family's ``evaluate_flags``
#: says which of them its suite reads; the others are refused when set).
_EVALUATE_FLAGS: dict[str, Any] = {
    "suite": "eua", "users": [816], "loads": [0.6, 1.0, 1.4], "seeds": [1000], "servers": 50,
    "exact_max_users": 20000, "search_rounds": 0, "dual_iterations": None, "links": None, "instances": None,
}

#: The most held-out instances per size ``gnnalloc evaluate`` runs (each is solved exactly).
_MAX_EVALUATE_INSTANCES = 10_000


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gnnalloc.core import check_count, get_family
    from gnnalloc.nn import checkpoint_family, load_checkpoint_data

    family = get_family(checkpoint_family(load_checkpoint_data(args.checkpoint), args.checkpoint))
    if getattr(family, "evaluate", None) is None:
        raise InputError(f"checkpoint: the {family.name} family has no evaluation suite")
    # A flag the family's suite does not read would be ignored (a bad value too): named instead.
    reads = getattr(family, "evaluate_flags", None)
    if reads is not None:
        for dest, default in _EVALUATE_FLAGS.items():
            if dest not in reads and getattr(args, dest) != default:
                flag = "--" + dest.replace("_", "-")
                takes = ", ".join("--" + d.replace("_", "-") for d in reads) or "no options"
                raise InputError(f"{dest}: the {family.name} family's evaluation takes {takes}, not {flag}")
    # Sizes and counts are the user's: named here, before the family reads them.
    if args.instances is not None:
        check_count("instances", args.instances, 1, _MAX_EVALUATE_INSTANCES)
    for size in args.links or ():
        check_count("links", size, minimum=1)
    return family.evaluate(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gnnalloc.core import families

    # Each family contributes its section (its tables and plots under out/<family>).
    for family in families().values():
        demo = getattr(family, "demo", None)
        if demo is not None:
            status = demo(Path(args.out) / family.name)
            if status:
                return status
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gnnalloc.training.export import export_checkpoint

    metadata = export_checkpoint(args.checkpoint, args.out)
    size = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({size:.0f} KiB) from {metadata['source']}, step {metadata['global_step']}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from gnnalloc.serve import serve_cli
    except ImportError as exc:  # the optional [serve] extra
        raise InputError(f"serve: {exc}") from None

    return serve_cli(args)


def _method_names() -> list[str]:
    from gnnalloc.core import families

    return list(dict.fromkeys(m for f in families().values() for m in f.methods))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gnnalloc",
        description="Learned fair resource allocation, checked against exact and classical solvers: "
        "edge computing, wireless power control and split federated learning.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate an instance JSON (any family's generator)")
    kinds = gen.add_subparsers(dest="generator_name", required=True, metavar="NAME")
    for name, (family, generator) in _generators().items():
        size_name, description, settings = _generator_spec(generator)
        one = kinds.add_parser(name, help=f"{family.name}: {description}")
        one.add_argument(f"--{size_name}", dest=size_name, type=int, required=True)
        for setting, kind, default, text in settings:
            if default is inspect.Parameter.empty:
                one.add_argument(f"--{setting}", type=kind, required=True, help=text or None)
            else:
                one.add_argument(f"--{setting}", type=kind, default=default, help=text or None)
        one.add_argument("--out", type=Path, help="file to write (default: stdout)")
        one.set_defaults(run=_cmd_generate, generator=(family, generator))

    sol = sub.add_parser("solve", help="allocate an instance and print a summary")
    sol.add_argument("instance", type=Path)
    sol.add_argument(
        "--method", choices=_method_names(),
        help="a method of the instance's family (default: its reference, edge: exact)",
    )
    sol.add_argument("--checkpoint", type=Path,
                     help="model checkpoint for --method gnn (default: the family's shipped one)")
    sol.add_argument("--reference", help="a method of the instance's family (e.g. exact, wmmse) or an "
                     "allocation file, to report the gap")
    sol.add_argument("--time-limit", type=float,
                     help="seconds the solve may take (edge: exact, dual and gnn; dual then refines anytime "
                     "until the limit, gnn to its --gap-tol, default 0.005, 0.02 above penalty 10; power: optimum)")
    sol.add_argument("--gap-tol", type=float,
                     help="edge methods dual and gnn: refine until the proven per-weight gap is at most this "
                     "(gnn's default 0.005, 0.02 above penalty 10; 0 refines until --time-limit)")
    sol.add_argument("--option", action="append", metavar="NAME=NUMBER",
                     help="a numeric option of the method, repeatable (e.g. power gnn_frame: "
                     "--option fair_time=0.2 --option slots=8; wmmse: --option max_iter=200)")
    sol.add_argument("--out", type=Path, help="write the allocation JSON here")
    sol.set_defaults(run=_cmd_solve)

    sco = sub.add_parser("score", help="score an allocation file")
    sco.add_argument("instance", type=Path)
    sco.add_argument("allocation", type=Path)
    sco.add_argument("--reference", help="a method of the instance's family (e.g. exact, wmmse) or an "
                     "allocation file, to report the gap")
    sco.set_defaults(run=_cmd_score)

    ev = sub.add_parser(
        "evaluate", help="evaluate a checkpoint against its family's reference solver "
        "(--suite ... --dual-iterations: edge; --links, --instances: power and sfl)",
    )
    ev.add_argument("--checkpoint", type=Path, required=True)
    d = _EVALUATE_FLAGS
    ev.add_argument("--suite", choices=("eua", "random"), default=d["suite"])
    ev.add_argument("--users", type=int, nargs="+", default=list(d["users"]))
    ev.add_argument("--loads", type=float, nargs="+", default=list(d["loads"]))
    ev.add_argument("--seeds", type=int, nargs="+", default=list(d["seeds"]))
    ev.add_argument("--servers", type=int, default=d["servers"], help="random suite only")
    ev.add_argument("--exact-max-users", type=int, default=d["exact_max_users"],
                    help="skip the exact solver above this size")
    ev.add_argument("--search-rounds", type=int, default=d["search_rounds"],
                    help="also run the model with this many migration-search rounds (gnn+search)")
    ev.add_argument("--dual-iterations", type=int, default=d["dual_iterations"],
                    help="L-BFGS iterations of the smoothed-dual reference (method dual; 0 = skip; "
                    "default: 300 to 3,000 by instance size, see solvers.default_iterations)")
    ev.add_argument("--links", type=int, nargs="+", default=d["links"],
                    help="power: D2D link counts (default: the demo's suites); sfl: client counts "
                    "(default: 10 100 1000)")
    ev.add_argument("--instances", type=int, default=d["instances"],
                    help=f"power and sfl: held-out instances per size, at most {_MAX_EVALUATE_INSTANCES} "
                    "(default: power 5, sfl 3)")
    ev.add_argument("--out", type=Path, default=Path("out/evaluate"))
    ev.set_defaults(run=_cmd_evaluate)

    demo = sub.add_parser("demo", help="the README's main job: every family's shipped model "
                          "against its reference (edge: EUA Melbourne)")
    demo.add_argument("--out", default="out/demo")
    demo.set_defaults(run=_cmd_demo)

    exp = sub.add_parser("export", help="write the small inference checkpoint from a training one")
    exp.add_argument("checkpoint", type=Path, help="Lightning checkpoint, e.g. checkpoints/last.ckpt")
    exp.add_argument("--out", type=Path, default=Path("checkpoints/default.ckpt"))
    exp.set_defaults(run=_cmd_export)

    srv = sub.add_parser("serve", help="serve the allocator over HTTP")
    srv.add_argument("--checkpoint", type=Path,
                     help="model for its family's method gnn (default: each family's shipped one)")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--max-users", type=int, default=20000)
    srv.add_argument("--max-pairs", type=int, default=400_000,
                     help="most candidate (user, server) pairs per instance (cost grows with them)")
    srv.add_argument("--exact-time-limit", type=float, default=30.0,
                     help="seconds a method that takes time_limit may spend on a request (edge exact and gnn, "
                     "power optimum); a request's own time_limit is capped at it")
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
    from gnnalloc.core import InstanceError, SolverError, configure_threads, cut_message

    try:
        configure_threads()  # one intra-op thread per solve unless GNNALLOC_THREADS says otherwise
        return int(args.run(args) or 0)
    except InstanceError as exc:  # values are echoed: cut as the server cuts them
        print(f"error: {exc.field}: {cut_message(exc.message)}", file=sys.stderr)
        return 2
    except SolverError as exc:
        print(f"error: solver: {cut_message(str(exc))}", file=sys.stderr)
        return 3
    except InputError as exc:  # any other ValueError is a library bug: its traceback, exit 1
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
