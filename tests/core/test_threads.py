"""The entry points choose one intra-op thread per solve (GNNALLOC_THREADS to change it)."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch

from gnnalloc.cli import main
from gnnalloc.core import THREADS_ENV, configure_threads


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_importing_the_library_leaves_threads_alone() -> None:
    torch.set_num_threads(2)
    import gnnalloc  # noqa: F401  (already imported: re-import must not reset anything)

    assert torch.get_num_threads() == 2


def test_the_cli_uses_one_thread_by_default(monkeypatch, capsys) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    torch.set_num_threads(2)
    assert main(["generate", "random", "--users", "3", "--servers", "2"]) == 0
    assert torch.get_num_threads() == 1


def test_the_setting_is_documented_and_honoured(monkeypatch, capsys) -> None:
    monkeypatch.setenv(THREADS_ENV, "2")
    torch.set_num_threads(1)
    assert main(["generate", "random", "--users", "3", "--servers", "2"]) == 0
    assert torch.get_num_threads() == 2


def test_a_bad_setting_is_one_named_error_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv(THREADS_ENV, "many")
    assert main(["generate", "random", "--users", "3", "--servers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {THREADS_ENV}: expected a positive integer, got 'many'"]
    with pytest.raises(ValueError, match="threads"):
        configure_threads(0)
