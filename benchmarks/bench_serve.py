"""Loopback load test of ``gnnalloc serve``: latency and throughput of ``POST /v1/allocate``.

Starts ``gnnalloc serve`` on a free 127.0.0.1 port, sends ``--requests`` requests of the 816-user
EUA instance (``eua_instance(816, 1.0, 1000)``, ``--method``, default ``gnn``) from ``--clients`` concurrent
clients, reports errors, p50/p99 latency and throughput, writes ``benchmarks/out/serve.md`` and
stops the server with SIGTERM (its exit status is part of the report). Only loopback traffic.

Without ``--checkpoint`` the server runs every family's shipped model (the edge ``gnn`` is
``checkpoints/prices.ckpt``, anytime to its default proven gap).

Run: python benchmarks/bench_serve.py [--checkpoint PATH] [--requests 500]
    [--method gnn|dual|exact|equal|proportional]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, machine  # noqa: E402

from gnnalloc import Allocation, eua_instance  # noqa: E402
from gnnalloc.families.edge.problem import max_violation  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 500 samples is the 495th)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def resolve_checkpoint(path: Path | None, scratch: Path) -> tuple[Path | None, str]:
    """The checkpoint to serve (``None``: the shipped models) and how to describe it in the report."""
    if path is None:
        return None, "the shipped models"
    if path.is_file():
        return path, f"`{path}`"
    from gnnalloc.families.edge.nn.allocator import Allocator

    fallback = scratch / "untrained.ckpt"
    Allocator().save(fallback, note="untrained, written by bench_serve.py")
    print(f"note: {path} not found; serving an UNTRAINED Allocator() (default size) instead")
    return fallback, f"untrained `Allocator()` (default size; `{path}` was missing)"


async def wait_ready(url: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"error: server exited with {process.returncode} during startup")
            try:
                if (await client.get(f"{url}/healthz", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise SystemExit(f"error: server not ready after {seconds:g} s")


async def load(url: str, body: bytes, requests: int, clients: int, method: str) -> dict[str, object]:
    """``requests`` POSTs shared by ``clients`` workers; latency per request, errors by kind."""
    latencies: list[float] = []
    server_seconds: list[float] = []
    errors: dict[str, int] = {}
    next_index = 0
    last_response: dict | None = None

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index, last_response
        while next_index < requests:
            next_index += 1  # single-threaded event loop: no lock needed
            start = time.perf_counter()
            try:
                response = await client.post(
                    f"{url}/v1/allocate", content=body, params={"method": method},
                    headers={"content-type": "application/json"},
                )
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                errors[f"HTTP {response.status_code}"] = errors.get(
                    f"HTTP {response.status_code}", 0
                ) + 1
                continue
            payload = response.json()
            server_seconds.append(payload["timing"]["seconds"])
            last_response = payload

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - start
    return {
        "latencies": latencies, "server_seconds": server_seconds, "errors": errors,
        "wall": wall, "last": last_response,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: every family's shipped model")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first")
    parser.add_argument("--timeout", type=float, default=600.0, help="overall seconds")
    parser.add_argument("--method", default="gnn", choices=["gnn", "dual", "exact", "equal", "proportional"])
    parser.add_argument("--out", type=Path, help="default: benchmarks/out/serve[-METHOD].md")
    args = parser.parse_args()
    if args.out is None:
        args.out = OUT / ("serve.md" if args.method == "gnn" else f"serve-{args.method}.md")

    instance = eua_instance(816, 1.0, 1000)
    body = json.dumps(instance.to_dict()).encode()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()

    code: int | str = "not stopped"
    stop_seconds = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint, described = resolve_checkpoint(args.checkpoint, Path(scratch))
        log = Path(scratch) / "serve.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "gnnalloc.cli", "serve",
                 *(["--checkpoint", str(checkpoint)] if checkpoint is not None else []),
                 "--host", "127.0.0.1", "--port", str(port)],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
            )
            try:
                result = asyncio.run(asyncio.wait_for(
                    _session(url, process, body, args), timeout=args.timeout
                ))
            except (asyncio.TimeoutError, TimeoutError):
                process.kill()
                print(f"error: load test exceeded {args.timeout:g} s", file=sys.stderr)
                return 1
            finally:
                if process.poll() is None:
                    stop = time.monotonic()
                    process.send_signal(signal.SIGTERM)
                    try:
                        code = process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        code = "killed after 30 s"
                    stop_seconds = time.monotonic() - stop
        if process.returncode != 0:
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)

    # The last successful response must be a feasible allocation of every user.
    last = result["last"]
    violation = (
        max_violation(instance, Allocation.from_dict(instance, last["allocation"]))
        if last else float("nan")
    )
    latencies = result["latencies"]
    errors = result["errors"]
    ok = len(result["server_seconds"])
    wall = result["wall"]
    load_after = os.getloadavg()
    ms = lambda s: f"{1000 * s:.0f}"  # noqa: E731
    header = ["requests", "clients", "errors", "p50 latency (ms)", "p99 latency (ms)",
              "throughput (req/s)", "model time p50 (ms)", "max violation", "SIGTERM exit"]
    row = [
        args.requests, args.clients,
        f"{sum(errors.values())}" + (f" ({', '.join(f'{k}: {v}' for k, v in errors.items())})"
                                     if errors else ""),
        ms(percentile(latencies, 50)) if latencies else "n/a",
        ms(percentile(latencies, 99)) if latencies else "n/a",
        f"{ok / wall:.2f}",
        ms(statistics.median(result["server_seconds"])) if ok else "n/a",
        f"{violation:.1e}",
        f"{code} in {stop_seconds:.1f} s",
    ]
    lines = [
        "### `gnnalloc serve` loopback load test: `POST /v1/allocate`, EUA 816 users (load 1.0, "
        f"seed 1000), method `{args.method}`",
        "",
        f"Machine: {machine()}. Server: one uvicorn process on 127.0.0.1, model {described}, "
        f"{instance.num_pairs} pairs, {len(body) / 1024:.0f} KiB request body. "
        f"Clients: {args.clients} concurrent httpx.AsyncClient connections in one process on the "
        f"same machine, {args.warmup} warm-up requests untimed. Load average (1 min) "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (other jobs were running).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        "| " + " | ".join(str(c) for c in row) + " |",
        "",
        f"Latency is client-side wall time per request (queueing included: {args.clients} clients "
        "share the server's two request threads, on which learned solves run side by side, or its "
        "one solver thread for `exact` and `dual`); model time is the server's `timing.seconds`.",
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if not errors and code == 0 else 1


async def _session(
    url: str, process: subprocess.Popen, body: bytes, args: argparse.Namespace
) -> dict[str, object]:
    await wait_ready(url, process, 120)
    if args.warmup:
        await load(url, body, args.warmup, 1, args.method)
    return await load(url, body, args.requests, args.clients, args.method)


if __name__ == "__main__":
    sys.exit(main())
