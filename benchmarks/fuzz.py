"""Fuzz of every family's bad-input paths: generated malformed instances and allocations through
the CLI (in-process ``gnnalloc.cli.main``: ``solve`` and ``score``) and malformed instances through
the server (FastAPI ``TestClient``, no sockets).

Each case starts from a valid small instance of the family (and, for ``score``, a valid allocation
of it, taking turns over the family's allocation formats: the power family's frames too) and
applies 1-4 random mutations (junk values of every JSON type, NaN/Infinity and huge,
negative-zero or subnormal literals, missing, unknown and duplicated keys, dangling ids, huge
arrays, truncated text, byte-order marks and other encodings). Counted failures:

- a traceback (an exception escaping ``main``, or "Traceback" in its output);
- a 5xx from the server;
- exit 0 / status 200 with a non-finite figure in the output.

Every family's methods run with the shipped models.

Run: python benchmarks/fuzz.py [--family edge power sfl] [--count 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import random
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from gnnalloc.cli import main as cli_main
from gnnalloc.core import allocation_formats, families, solve
from gnnalloc.serve import create_app, load_models

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

JUNK: list[Any] = [
    None, True, False, 0, -1, 1, 10**400, -(10**400), 1e308, -1e308, 5e-324, -5e-324, 1e-300,
    -0.0, 1e13, 1e101, "", "s0", "u0", "l0", "c0", "NaN", "\x00", "é", [], {}, [1, 2], {"a": 1},
    "x" * 5000,
]
LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "5e-324",
            "1e-320", "-0", "-0.0", "1e308", "-1e308"]
NON_FINITE = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)
#: Small instances: fast solves, so the run measures the input paths, not the solvers.
SIZES = {"edge": 6, "power": 4, "sfl": 4}


def _containers(node: Any) -> list[Any]:
    found = []
    if isinstance(node, (dict, list)):
        found.append(node)
        for child in (node.values() if isinstance(node, dict) else node):
            found += _containers(child)
    return found


def malformed(rng: random.Random, base: dict[str, Any]) -> bytes:
    """One malformed document (bytes as sent or written)."""
    doc = copy.deepcopy(base)
    literal = None
    for _ in range(rng.randint(1, 4)):
        node = rng.choice(_containers(doc))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        kind = rng.choice(["junk", "junk", "literal", "drop", "unknown", "copy", "id", "huge"])
        if not keys and kind != "unknown":
            continue
        key = rng.choice(keys) if keys else None
        if kind == "junk":
            node[key] = copy.deepcopy(rng.choice(JUNK))
        elif kind == "literal":
            literal = rng.choice(LITERALS)
            node[key] = "@@LITERAL@@"
        elif kind == "drop":
            del node[key]
        elif kind == "unknown" and isinstance(node, dict):
            node[rng.choice(["extra", "", "weight", "Compute", "format"])] = rng.choice(JUNK[:9])
        elif kind == "copy" and isinstance(node, list):
            node.append(copy.deepcopy(node[key]))
        elif kind == "id" and isinstance(node, dict):
            node[key] = rng.choice(["s999", "u0", "s0", "l0", "c9", ""])
        elif kind == "huge" and isinstance(node, list) and node:
            node.extend(copy.deepcopy(node[-1:]) * rng.choice([50, 2000]))
    text = json.dumps(doc)
    if literal is not None:
        text = text.replace('"@@LITERAL@@"', literal, 1)
    roll = rng.random()
    if roll < 0.05:
        text = text[: rng.randint(0, len(text))]  # truncated
    elif roll < 0.10:  # a duplicated key, the first one bad
        text = re.sub(r'"(\w+)": ', r'"\1": NaN, "\1": ', text, count=1)
    encoding = "utf-8"
    if rng.random() < 0.05:
        encoding = rng.choice(["utf-8-sig", "utf-16", "utf-32"])
    raw = text.encode(encoding, "surrogatepass")
    if rng.random() < 0.02:
        raw = raw[:10] + b"\xff\xfe\x00" + raw[10:]  # undecodable bytes
    return raw


def _run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, out.getvalue() + "\n" + err.getvalue()


def _one_allocation_per_format(family: Any, instance: Any, methods: list[str]) -> list[dict[str, Any]]:
    """A valid allocation document of ``instance`` in each of the family's allocation formats
    (e.g. the power family's frames): the reference method's, then the first other methods'
    answers that bring a format not yet covered."""
    wanted = allocation_formats(family)
    documents = {}
    for method in [family.reference_method, *methods]:
        if len(documents) == len(wanted):
            break
        if method in ("exact", "optimum") and method != family.reference_method:
            continue  # certified solvers: slow, and their format is the reference's
        document = family.dump_allocation(instance, solve(instance, method).allocation)
        documents.setdefault(document["format"], document)
    return [documents[f] for f in wanted if f in documents]


def run(family_name: str, count: int, seed: int = 0,
        log: Callable[[str], Any] = print) -> dict[str, Any]:
    """``count`` malformed instances through ``solve`` (CLI) and ``/v1/allocate``, and ``count``
    malformed allocations through ``score`` (CLI), of one family."""
    family = families()[family_name]
    rng = random.Random(seed)
    generator = next(iter(family.generators.values()))
    instance = generator(SIZES[family_name], 0)
    base = family.dump_instance(instance)
    methods = list(family.methods)
    allocations = _one_allocation_per_format(family, instance, methods)
    failures: list[str] = []
    codes: dict[str, dict[int, int]] = {"solve": {}, "score": {}}
    http_codes: dict[int, int] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, \
            TestClient(create_app(allocators=load_models()[0], max_users=40, exact_max_users=8)) as client:
        doc, alloc_doc, valid = Path(tmp) / "doc.json", Path(tmp) / "alloc.json", Path(tmp) / "ok.json"
        valid.write_text(json.dumps(base))

        def check_cli(command: str, i: int, argv: list[str]) -> None:
            try:
                code, output = _run_cli(argv)
            except BaseException as exc:  # noqa: BLE001 - this is what the fuzz counts
                failures.append(f"{command} #{i} {argv[3:]}: {type(exc).__name__}: {exc!s:.200}")
                code, output = -1, ""
            codes[command][code] = codes[command].get(code, 0) + 1
            if "Traceback" in output or "Warning" in output:
                failures.append(f"{command} #{i} {argv[3:]}: traceback or warning in output")
            if code == 0 and NON_FINITE.search(output):
                failures.append(f"{command} #{i} {argv[3:]}: exit 0 with a non-finite figure")
            if code not in (0, 2, 3, -1):
                failures.append(f"{command} #{i} {argv[3:]}: exit {code}")

        for i in range(count):
            raw = malformed(rng, base)
            method = methods[i % len(methods)]
            doc.write_bytes(raw)
            argv = ["solve", str(doc), "--method", method]
            check_cli("solve", i, argv)

            alloc_doc.write_bytes(malformed(rng, allocations[i % len(allocations)]))
            check_cli("score", i, ["score", str(valid), str(alloc_doc)])

            response = client.post(f"/v1/allocate?method={method}", content=raw)
            http_codes[response.status_code] = http_codes.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"http #{i} {method}: {response.status_code} {response.text:.200}")
            elif response.status_code == 200:
                def refuse(name: str) -> None:
                    raise ValueError(name)
                try:
                    json.loads(response.text, parse_constant=refuse)
                except ValueError:
                    failures.append(f"http #{i} {method}: 200 with a non-finite figure")
    seconds = time.perf_counter() - start
    report = {"family": family_name, "count": count, "failures": failures,
              "cli_exit_codes": codes, "http_statuses": http_codes, "seconds": seconds}
    log(f"{family_name}: {count} malformed instances (CLI solve + server) and {count} malformed "
        f"allocations (CLI score) in {seconds:.0f} s: {len(failures)} failures; "
        f"solve exits {dict(sorted(codes['solve'].items()))}; "
        f"score exits {dict(sorted(codes['score'].items()))}; "
        f"HTTP statuses {dict(sorted(http_codes.items()))}")
    for failure in failures[:20]:
        log("  " + failure)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=sorted(families()), choices=sorted(families()))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    failed = [run(name, args.count, args.seed)["failures"] for name in args.family]
    return 0 if not any(failed) else 1


if __name__ == "__main__":
    sys.exit(main())
