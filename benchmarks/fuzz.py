"""Fuzz of every family's bad-input paths: generated malformed instances through the CLI
(in-process ``gnnalloc.cli.main``) and the server (FastAPI ``TestClient``, no sockets), and
malformed allocations through ``gnnalloc score``.

Each case starts from a valid small instance of the family (its first generator) and applies 1-4
random mutations (junk values of every JSON type, NaN/Infinity and huge or subnormal literals,
missing, unknown and duplicated keys, dangling ids, truncated text, byte-order marks and other
encodings); every third case mutates a valid allocation of the instance instead and scores it.
Methods rotate over the family's registered methods (``gnn`` with the shipped checkpoint).
Counted failures:

- a traceback (an exception escaping ``main``, or "Traceback" in its output);
- a 5xx from the server;
- exit 0 / status 200 with a non-finite figure in the output.

Run: python benchmarks/fuzz.py [--family edge|power|sfl|all] [--count 2000] [--seed 0]
(``--count`` per family).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import random
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from gnnalloc.cli import main as cli_main
from gnnalloc.core import families, get_family
from gnnalloc.serve import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

#: A small valid instance per family: (generator, size). Small enough for every method, the
#: global optimum of power control (K <= 4) included.
BASE = {"edge": ("random", 6), "power": ("gaussian", 4), "sfl": ("sfl", 4)}
JUNK: list[Any] = [
    None, True, False, 0, -1, 1, 10**400, -(10**400), 1e308, -1e308, 5e-324, -5e-324, 1e-300,
    1e13, 1e101, "", "s0", "u0", "NaN", "\x00", "é", [], {}, [1, 2], {"a": 1}, "x" * 5000,
]
LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "5e-324", "1e-320"]
NON_FINITE = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _containers(node: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    found = []
    if isinstance(node, (dict, list)):
        found.append((path, node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            found += _containers(child, (*path, key))
    return found


def malformed(rng: random.Random, base: dict[str, Any]) -> bytes:
    """One malformed document (bytes as sent or written)."""
    doc = copy.deepcopy(base)
    literal = None
    for _ in range(rng.randint(1, 4)):
        _, node = rng.choice(_containers(doc))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        kind = rng.choice(["junk", "junk", "literal", "drop", "unknown", "copy", "id"])
        if not keys and kind not in ("unknown",):
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
            node[rng.choice(["extra", "", "weight", "Compute"])] = rng.choice(JUNK[:8])
        elif kind == "copy" and isinstance(node, list):
            node.append(copy.deepcopy(node[key]))
        elif kind == "id" and isinstance(node, dict):
            node[key] = rng.choice(["s999", "u0", "s0", ""])
    text = json.dumps(doc)
    if literal is not None:
        text = text.replace('"@@LITERAL@@"', literal, 1)
    roll = rng.random()
    if roll < 0.05:
        text = text[: rng.randint(0, len(text))]  # truncated
    elif roll < 0.10:
        key = rng.choice(list(base)) if base else "format"
        text = text.replace(f'"{key}": ', f'"{key}": NaN, "{key}": ', 1)  # duplicate key
    encoding = "utf-8"
    roll = rng.random()
    if roll < 0.05:
        encoding = rng.choice(["utf-8-sig", "utf-16", "utf-32"])
    raw = text.encode(encoding, "surrogatepass")
    if rng.random() < 0.02:
        raw = raw[:10] + b"\xff\xfe\x00" + raw[10:]  # undecodable bytes
    return raw


def _cli(argv: list[str]) -> tuple[int, str]:
    """Exit code and output of ``gnnalloc argv`` in-process (-1 when an exception escapes)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(argv)
    except BaseException as exc:  # noqa: BLE001 - this is what the fuzz counts
        return -1, f"{type(exc).__name__}: {exc!s:.200}"
    return code, out.getvalue() + err.getvalue()


def _check_cli(label: str, code: int, output: str, failures: list[str]) -> None:
    if code == -1:
        failures.append(f"{label}: {output}")
    if "Traceback" in output:
        failures.append(f"{label}: traceback in output")
    if code == 0 and NON_FINITE.search(output):
        failures.append(f"{label}: exit 0 with a non-finite figure")
    if code not in (0, 2, 3, -1):
        failures.append(f"{label}: exit {code}")


def run(count: int, seed: int = 0, family_name: str = "edge", log=print) -> dict[str, Any]:
    """``count`` malformed cases of one family (see the module docstring)."""
    rng = random.Random(seed)
    family = get_family(family_name)
    generator, size = BASE[family_name]
    instance = family.generators[generator](size, 0)
    base = family.dump_instance(instance)
    allocation = family.dump_allocation(instance, family.methods[sorted(family.methods)[0]].run(instance).allocation)
    methods = sorted(family.methods)
    torch.manual_seed(0)
    failures: list[str] = []
    cli_codes: dict[int, int] = {}
    http_codes: dict[int, int] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, \
            TestClient(create_app(max_users=40, exact_max_users=8)) as client:
        path = Path(tmp) / "doc.json"
        instance_path = Path(tmp) / "instance.json"
        instance_path.write_text(json.dumps(base))
        for i in range(count):
            if i % 3 == 2:  # a malformed allocation of a valid instance
                path.write_bytes(malformed(rng, allocation))
                code, output = _cli(["score", str(instance_path), str(path)])
                cli_codes[code] = cli_codes.get(code, 0) + 1
                _check_cli(f"score #{i}", code, output, failures)
                continue
            raw = malformed(rng, base)
            method = methods[i % len(methods)]
            path.write_bytes(raw)
            code, output = _cli(["solve", str(path), "--method", method])
            cli_codes[code] = cli_codes.get(code, 0) + 1
            _check_cli(f"cli #{i} {method}", code, output, failures)

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
    report = {"family": family_name, "count": count, "failures": failures, "cli_exit_codes": cli_codes,
              "http_statuses": http_codes, "seconds": seconds}
    log(f"{family_name}: {count} malformed cases through the CLI and the server in {seconds:.0f} s: "
        f"{len(failures)} failures; CLI exit codes {dict(sorted(cli_codes.items()))}; "
        f"HTTP statuses {dict(sorted(http_codes.items()))}")
    for failure in failures[:20]:
        log("  " + failure)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="all", choices=["all", *families()])
    parser.add_argument("--count", type=int, default=2000, help="cases per family")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = list(families()) if args.family == "all" else [args.family]
    reports = [run(args.count, args.seed, name) for name in names]
    return 0 if not any(r["failures"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
