"""The README's examples are real: its format examples are documents of the library, and the
blocks marked ``<!-- doctest -->`` (the CLI tour and the Python API) run as written, in a
temporary directory holding links to the shipped checkpoint and the training configs."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from gnnalloc.families.edge.problem import Allocation, Instance

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _json_blocks() -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", README, flags=re.S)]


def test_the_instance_and_allocation_examples_load():
    documents = {doc["format"]: doc for doc in _json_blocks()}
    instance = Instance.from_dict(documents["gnnalloc.instance/v1"])
    allocation = Allocation.from_dict(instance, documents["gnnalloc.allocation/v1"])
    assert allocation.compute.shape == (instance.num_pairs,)
    # Every family's instance example in the README loads through the engine's dispatch.
    from gnnalloc.core import families, parse_instance

    formats = {family.instance_format for family in families().values()}
    shown = [doc for doc in documents.values() if doc["format"] in formats]
    assert {"gnnalloc.instance/v1", "gnnalloc.power/v1"} <= {doc["format"] for doc in shown}
    for doc in shown:
        parse_instance(doc)


ROOT = Path(__file__).resolve().parents[1]
DOCTEST = "<!-- doctest -->"
SERVER_STARTUP_SECONDS = 120  # a new process's imports are slow on a busy 2-core machine


def _marked_blocks(language: str) -> list[str]:
    blocks = re.findall(rf"{DOCTEST}\n```(\w+)\n(.*?)```", README, flags=re.S)
    return [code for lang, code in blocks if lang == language]


def _commands(block: str) -> list[list[str]]:
    """A bash block's commands: continuation lines joined, comments dropped."""
    lines = block.replace("\\\n", " ").splitlines()
    return [argv for argv in (shlex.split(line, comments=True) for line in lines) if argv]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh directory laid out like the repository root for what the examples read."""
    directory = tmp_path_factory.mktemp("readme")
    (directory / "checkpoints").mkdir()
    for name in ("default.ckpt", "prices.ckpt"):
        (directory / "checkpoints" / name).symlink_to(ROOT / "checkpoints" / name)
    (directory / "training").symlink_to(ROOT / "training")
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield directory
    finally:
        os.chdir(before)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Shell:
    """Runs the README's commands: ``gnnalloc`` in-process (``gnnalloc serve ... &`` as a
    process on a free loopback port that replaces 8000), ``curl`` against it, ``kill %1``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.server: subprocess.Popen | None = None
        self.log = directory / "serve.log"

    def run(self, argv: list[str]) -> None:
        from gnnalloc.cli import main

        argv = [word.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}") for word in argv]
        if argv[0] == "gnnalloc" and argv[-1] == "&":
            assert argv[1] == "serve", f"only serve runs in the background: {argv}"
            self._start_server(argv[1:-1])
        elif argv[0] == "gnnalloc":
            assert main(argv[1:]) == 0, f"failed: {shlex.join(argv)}"
        elif argv[0] == "curl":
            self._curl(argv)
        elif argv == ["kill", "%1"]:
            assert self.server is not None, "kill %1 without a background server"
            self.server.send_signal(signal.SIGTERM)
            assert self.server.wait(timeout=60) == 0, self.log.read_text(errors="replace")
            self.server = None
        else:
            raise AssertionError(f"the README test does not know how to run: {shlex.join(argv)}")

    def _start_server(self, args: list[str]) -> None:
        args = [str(self.port) if previous == "--port" else word
                for previous, word in zip([""] + args, args)]
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "gnnalloc.cli", *args], cwd=self.directory, stdout=log,
                stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + SERVER_STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.server.poll() is None, self.log.read_text(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError(f"server not ready:\n{self.log.read_text(errors='replace')}")

    def _curl(self, argv: list[str]) -> None:
        done = subprocess.run(argv, cwd=self.directory, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{shlex.join(argv)}: {done.stderr}"
        body = json.loads(done.stdout)
        assert "error" not in body, f"{shlex.join(argv)}: {body}"

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()


def test_the_readme_marks_a_tour_and_a_python_example():
    commands = [argv[:2] for block in _marked_blocks("bash") for argv in _commands(block)]
    for step in ("generate", "solve", "score", "fit", "export", "evaluate", "serve"):
        assert ["gnnalloc", step] in commands, step
    assert _marked_blocks("python")


def test_the_cli_tour_runs_as_written(workspace, capsys, monkeypatch):
    if shutil.which("curl") is None:
        pytest.skip("the serving example needs curl")
    monkeypatch.setattr(sys, "argv", ["gnnalloc"])  # as from a shell: LightningCLI reads sys.argv
    shell = _Shell(workspace)
    try:
        for block in _marked_blocks("bash"):
            for argv in _commands(block):
                shell.run(argv)
    finally:
        shell.close()
    assert (workspace / "opt.json").is_file()
    assert (workspace / "checkpoints" / "mine.ckpt").is_file()
    out = capsys.readouterr().out
    assert "proven gap bound" in out and "NOT certified" not in out


def test_the_python_api_runs_as_written(workspace, capsys):
    for number, code in enumerate(_marked_blocks("python")):
        exec(compile(code, f"README.md python block {number}", "exec"), {"__name__": "__readme__"})
    assert "users[0].server - missing" in capsys.readouterr().out
