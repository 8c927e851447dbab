"""Fuzz of the edge family's bad-input paths: generated malformed instances through the CLI
(in-process ``gnnalloc.cli.main``) and the server (FastAPI ``TestClient``, no sockets).

Each case starts from a valid small instance and applies 1-4 random mutations (junk values of
every JSON type, NaN/Infinity and huge or subnormal literals, missing, unknown and duplicated keys,
dangling ids, truncated text, byte-order marks and other encodings). Counted failures:

- a traceback (an exception escaping ``main``, or "Traceback" in its output);
- a 5xx from the server;
- exit 0 / status 200 with a non-finite figure in the output.

Run: python benchmarks/fuzz_edge.py [--count 2000] [--seed 0]
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

from gnnalloc import random_instance
from gnnalloc.cli import main as cli_main
from gnnalloc.families.edge import Allocator
from gnnalloc.serve import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

METHODS = ("equal", "proportional", "dual", "gnn", "exact")
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
        text = text.replace('"penalty": ', '"penalty": NaN, "penalty": ', 1)  # duplicate key
    encoding = "utf-8"
    roll = rng.random()
    if roll < 0.05:
        encoding = rng.choice(["utf-8-sig", "utf-16", "utf-32"])
    raw = text.encode(encoding, "surrogatepass")
    if rng.random() < 0.02:
        raw = raw[:10] + b"\xff\xfe\x00" + raw[10:]  # undecodable bytes
    return raw


def run(count: int, seed: int = 0, log=print) -> dict[str, Any]:
    rng = random.Random(seed)
    base = random_instance(6, 3, 1.0, 0).to_dict()
    torch.manual_seed(0)
    model = Allocator(hidden=16, heads=2, layers=1)
    failures: list[str] = []
    cli_codes: dict[int, int] = {}
    http_codes: dict[int, int] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, \
            TestClient(create_app(model, max_users=40, exact_max_users=8)) as client:
        checkpoint = Path(tmp) / "m.ckpt"
        model.save(checkpoint)
        path = Path(tmp) / "doc.json"
        for i in range(count):
            raw = malformed(rng, base)
            method = METHODS[i % len(METHODS)]
            path.write_bytes(raw)
            argv = ["solve", str(path), "--method", method]
            if method == "gnn":
                argv += ["--checkpoint", str(checkpoint)]
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = cli_main(argv)
            except BaseException as exc:  # noqa: BLE001 - this is what the fuzz counts
                failures.append(f"cli #{i} {method}: {type(exc).__name__}: {exc!s:.200}")
                code = -1
            cli_codes[code] = cli_codes.get(code, 0) + 1
            if "Traceback" in out.getvalue() + err.getvalue():
                failures.append(f"cli #{i} {method}: traceback in output")
            if code == 0 and NON_FINITE.search(out.getvalue()):
                failures.append(f"cli #{i} {method}: exit 0 with a non-finite figure")
            if code not in (0, 2, 3, -1):
                failures.append(f"cli #{i} {method}: exit {code}")

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
    report = {"count": count, "failures": failures, "cli_exit_codes": cli_codes,
              "http_statuses": http_codes, "seconds": seconds}
    log(f"{count} malformed instances through the CLI and the server in {seconds:.0f} s: "
        f"{len(failures)} failures; CLI exit codes {dict(sorted(cli_codes.items()))}; "
        f"HTTP statuses {dict(sorted(http_codes.items()))}")
    for failure in failures[:20]:
        log("  " + failure)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    return 0 if not run(args.count, args.seed)["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
