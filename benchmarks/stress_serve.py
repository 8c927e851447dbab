"""Stress of ``gnnalloc serve --workers N`` on loopback: stalled uploads, disconnects, mixed load.

1. ``--stalled`` sockets each declare a full body and send 100 bytes of it, then stall; while they
   hang, ``/v1/allocate`` must still answer 200.
2. ``--disconnects`` clients send part of a body and close: each must be one quiet log line (no
   traceback, no 500).
3. Time per request alone: one client, the methods of the mix (gnn, dual, equal, proportional) on
   the 816-user EUA instance, median of ``--alone`` requests each; ideal throughput = cores / mean.
4. ``--clients`` concurrent clients x ``--per-client`` requests of the same mix: errors, p50/p99,
   requests/s against the ideal.

Everything is bounded (``--timeout`` overall, per-request timeouts) and only to 127.0.0.1. Writes
``benchmarks/out/stress_serve.md``.

The server runs every family's shipped model unless ``--checkpoint`` says otherwise.

Run: python benchmarks/stress_serve.py [--workers 2] [--clients 16] [--per-client 30] [--checkpoint PATH]
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
from bench_serve import free_port, percentile  # noqa: E402

from gnnalloc import eua_instance  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MIX = ("gnn", "dual", "equal", "proportional")


def _partial_upload(port: int, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (f"POST /v1/allocate?method=equal HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body[:100])
    return sock


async def _load(url: str, body: bytes, clients: int, per_client: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def client_loop(client: httpx.AsyncClient, index: int) -> None:
        for j in range(per_client):
            method = MIX[(index + j) % len(MIX)]
            start = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/allocate", content=body,
                                             params={"method": method},
                                             headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                key = f"HTTP {response.status_code}"
                errors[key] = errors.get(key, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client, i) for i in range(clients)))
        wall = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: every family's shipped model")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stalled", type=int, default=64)
    parser.add_argument("--disconnects", type=int, default=8)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=30)
    parser.add_argument("--alone", type=int, default=5, help="requests per method, one client")
    parser.add_argument("--users", type=int, default=816)
    parser.add_argument("--timeout", type=float, default=1800.0, help="overall seconds")
    args = parser.parse_args()

    body = json.dumps(eua_instance(args.users, 1.0, 1000).to_dict()).encode()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cores = os.cpu_count() or 1
    log = Path(tempfile.mkstemp(prefix="stress-serve-", suffix=".log")[1])
    load_before = os.getloadavg()
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "gnnalloc.cli", "serve",
             *(["--checkpoint", str(args.checkpoint)] if args.checkpoint is not None else []),
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
             "--body-timeout", "120"],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + args.timeout
    code: int | str = "killed"
    try:
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server not ready"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        # Every worker loads its model; warm them all up (and the dual kernels) before timing.
        for method in MIX * args.workers * 2:
            httpx.post(f"{url}/v1/allocate", content=body, params={"method": method}, timeout=600)

        # 1. stalled uploads
        stalled = [_partial_upload(port, body) for _ in range(args.stalled)]
        time.sleep(1.0)
        answers = [httpx.post(f"{url}/v1/allocate", content=body, params={"method": m},
                              timeout=600).status_code for m in MIX]
        for sock in stalled:
            sock.close()
        time.sleep(3.0)  # their own disconnect lines must land before phase 2 counts its own
        print(f"{args.stalled} stalled sockets: /v1/allocate answered {answers}", flush=True)

        # 2. disconnects mid-upload
        before = log.read_text(errors="replace")
        for _ in range(args.disconnects):
            _partial_upload(port, body).close()
        time.sleep(2.0)
        after = log.read_text(errors="replace")[len(before):]
        quiet = after.count("disconnected before its request body arrived")
        tracebacks = after.count("Traceback")
        errors_500 = after.count(" 500 ")
        print(f"{args.disconnects} disconnects: {quiet} log lines, {tracebacks} tracebacks, "
              f"{errors_500} 500s", flush=True)

        # 3. alone
        alone: dict[str, float] = {}
        for method in MIX:
            times = []
            for _ in range(args.alone):
                start = time.perf_counter()
                response = httpx.post(f"{url}/v1/allocate", content=body, params={"method": method},
                                      timeout=600)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
            alone[method] = statistics.median(times)
        mean_alone = statistics.fmean(alone.values())
        ideal = cores / mean_alone
        print("alone (ms): " + ", ".join(f"{m} {1000 * t:.0f}" for m, t in alone.items())
              + f"; ideal {ideal:.2f} req/s", flush=True)

        # 4. load
        result = asyncio.run(asyncio.wait_for(
            _load(url, body, args.clients, args.per_client), max(1.0, deadline - time.monotonic())
        ))
        total = args.clients * args.per_client
        throughput = total / result["wall"]
        lat = result["latencies"]
        print(f"load: {total} requests in {result['wall']:.1f} s = {throughput:.2f} req/s "
              f"({100 * throughput / ideal:.0f} % of ideal), errors {result['errors'] or 0}",
              flush=True)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    load_after = os.getloadavg()
    text = "\n".join([
        f"### Stress of `gnnalloc serve --workers {args.workers}` (loopback, {args.users}-user EUA)",
        "",
        f"Machine: {machine()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
        "after (shared machine: figures are noisy)",
        "",
        f"- {args.stalled} stalled uploads: `/v1/allocate` answered {answers} meanwhile",
        f"- {args.disconnects} disconnects mid-upload: {quiet} quiet log lines, {tracebacks} "
        f"tracebacks, {errors_500} responses 500",
        "- alone, one client (median ms): " + ", ".join(
            f"{m} {1000 * t:.0f}" for m, t in alone.items()),
        f"- ideal = {cores} cores / {1000 * mean_alone:.0f} ms = {ideal:.2f} requests/s",
        f"- {args.clients} clients x {args.per_client} mixed requests: {total} in "
        f"{result['wall']:.1f} s = **{throughput:.2f} requests/s, {100 * throughput / ideal:.0f} % "
        f"of ideal**; errors: {result['errors'] or 0}; latency p50 {percentile(lat, 50):.2f} s, "
        f"p99 {percentile(lat, 99):.2f} s",
        f"- SIGTERM: exit status {code}",
        "",
    ])
    OUT.mkdir(exist_ok=True)
    (OUT / "stress_serve.md").write_text(text)
    print(text)
    ok = (all(a == 200 for a in answers) and quiet == args.disconnects and not tracebacks
          and not result["errors"] and code == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
