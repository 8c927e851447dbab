"""Every source file of the package compiles without warnings.

An invalid escape in a docstring (``"\\alpha"`` in a non-raw string) is a warning each time the
module is compiled from source (a SyntaxWarning users see by default from Python 3.12), and it
silently changes the text (``\\a`` is a bell character): the docstrings state math, so they
must be raw wherever they hold a backslash.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import gnnalloc

SOURCES = sorted(Path(gnnalloc.__file__).parent.rglob("*.py"))


def test_the_package_has_sources():
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(Path(gnnalloc.__file__).parent)))
def test_compiles_without_warnings(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
