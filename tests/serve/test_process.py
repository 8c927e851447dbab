"""A real ``gnnalloc serve`` process on a loopback port: serving, liveness under load, shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import torch

from gnnalloc import Allocation, Instance, eua_instance, random_instance
from gnnalloc.cli import main
from gnnalloc.families.edge.nn.allocator import Allocator
from gnnalloc.families.edge.problem import max_violation

STARTUP_SECONDS = 90  # imports alone take ~20 s on a busy 2-core machine
EXIT_SECONDS = 15


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m gnnalloc.cli serve`` on a free loopback port."""

    def __init__(self, checkpoint: Path | None, *extra: str, log_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (log_dir or checkpoint.parent) / f"serve-{self.port}.log"
        self._log_file = self.log.open("wb")
        model = [] if checkpoint is None else ["--checkpoint", str(checkpoint)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gnnalloc.cli", "serve", *model,
             "--host", "127.0.0.1", "--port", str(self.port), *extra],
            stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server not ready after {STARTUP_SECONDS} s:\n{self.output()}")

    def stop(self, sig: int) -> tuple[int, float]:
        """Send ``sig``; the exit code and how long the exit took."""
        start = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=EXIT_SECONDS + 30)
        return code, time.monotonic() - start

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("serve") / "m.ckpt"
    Allocator(hidden=16, heads=2, layers=1).save(path, training={"max_steps": 1})
    return path


@pytest.fixture(scope="module")
def server(checkpoint: Path) -> Iterator[Server]:
    proc = Server(checkpoint, "--exact-time-limit", "300")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.kill()


def assert_port_closed(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_allocate_over_http(server: Server, checkpoint: Path) -> None:
    doc = random_instance(15, 3, 1.0, 1).to_dict()
    response = httpx.post(f"{server.url}/v1/allocate", json=doc, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    instance = Instance.from_dict(doc)
    allocation = Allocation.from_dict(instance, body["allocation"])
    assert max_violation(instance, allocation) <= 1e-7
    info = httpx.get(f"{server.url}/v1/model", timeout=10).json()
    assert info["checkpoint"] == str(checkpoint)
    assert info["training"] == {"max_steps": 1}
    bad = httpx.post(f"{server.url}/v1/allocate", content=b"{", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "$"


def test_healthz_answers_during_long_exact_then_sigterm_exits_0(server: Server) -> None:
    # The largest instance exact accepts by default: ~5-10 s of solving on 2 cores.
    body = json.dumps(eua_instance(5000, 1.0, 0).to_dict())
    outcome: dict[str, Any] = {}

    def long_request() -> None:
        try:
            outcome["response"] = httpx.post(
                f"{server.url}/v1/allocate", params={"method": "exact"}, content=body, timeout=600
            )
        except httpx.HTTPError as exc:  # the server stops under it: expected
            outcome["error"] = exc

    thread = threading.Thread(target=long_request, daemon=True)
    thread.start()
    time.sleep(0.5)  # let the upload start
    latencies = []
    for _ in range(8):
        start = time.monotonic()
        assert httpx.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
        latencies.append(time.monotonic() - start)
        time.sleep(0.1)
    # Still in flight after all the health checks: they did not wait for it.
    assert thread.is_alive(), f"exact request finished too early to test liveness: {outcome}"
    assert max(latencies) < 2.0, latencies

    # SIGTERM with the exact solve still running: graceful stop, then the abandoned solve
    # (a daemon thread) must not hold the process.
    code, seconds = server.stop(signal.SIGTERM)
    assert code == 0, server.output()
    assert seconds < EXIT_SECONDS, seconds
    assert "Traceback" not in server.output()
    assert_port_closed(server.port)
    thread.join(timeout=10)


def test_sigint_stops_serve_cli_with_0(checkpoint: Path) -> None:
    """SIGINT, in-process (a second server process would double the test time): uvicorn's
    graceful stop runs and ``gnnalloc serve`` returns 0 instead of raising KeyboardInterrupt."""
    port = free_port()
    seen: dict[str, Any] = {}

    def interrupt_when_ready() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "ready" not in seen:
            try:
                seen["ready"] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.1)
        seen["signalled"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)  # also when not ready: the test must not hang

    thread = threading.Thread(target=interrupt_when_ready, daemon=True)
    thread.start()
    code = main(["serve", "--checkpoint", str(checkpoint), "--port", str(port)])
    stopped = time.monotonic()
    thread.join(timeout=5)
    assert seen.get("ready") == {"status": "ok"}
    assert code == 0
    assert stopped - seen["signalled"] < EXIT_SECONDS
    assert_port_closed(port)


# ------------------------------------------------------------ startup failures (in-process)
def test_missing_checkpoint_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: checkpoint")


def test_corrupt_checkpoint_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(b"definitely not a torch archive")
    assert main(["serve", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: checkpoint") and "Traceback" not in err



def test_workers_serve_from_separate_processes_and_stop_with_0(checkpoint: Path) -> None:
    proc = Server(checkpoint, "--workers", "2")
    try:
        proc.wait_ready()
        doc = random_instance(15, 3, 1.0, 1).to_dict()
        for method in ("gnn", "dual", "equal"):
            response = httpx.post(f"{proc.url}/v1/allocate?method={method}", json=doc, timeout=120)
            assert response.status_code == 200, response.text
        deadline = time.monotonic() + STARTUP_SECONDS
        while proc.output().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.5)
        code, _ = proc.stop(signal.SIGTERM)
        assert code == 0, proc.output()
        assert "Traceback" not in proc.output()
        assert_port_closed(proc.port)
    finally:
        proc.kill()


def test_without_checkpoint_the_families_shipped_models_serve(tmp_path: Path) -> None:
    from gnnalloc.families.edge import FAMILY

    server = Server(None, log_dir=tmp_path)
    try:
        server.wait_ready()
        info = httpx.get(f"{server.url}/v1/model", timeout=10).json()
        assert info["checkpoint"] == str(FAMILY.default_checkpoint)
        doc = random_instance(12, 3, 1.0, 2).to_dict()
        response = httpx.post(f"{server.url}/v1/allocate", json=doc, timeout=60)
        assert response.status_code == 200, response.text
    finally:
        server.kill()
