r"""Every source file of the package compiles without warnings, and no docstring holds a control
character.

An escape in a non-raw docstring either warns at each compile from source (``\l``: a
SyntaxWarning users see by default from Python 3.12) or silently changes the text (``\a`` is a
bell character, ``\t`` a tab, ``\b`` a backspace): the docstrings state math, so they must be raw
wherever they hold a backslash.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

import gnnalloc

ROOT = Path(gnnalloc.__file__).parent
SOURCES = sorted(ROOT.rglob("*.py"))
#: What an unintended escape in a docstring turns into (a newline is the one intended escape).
CONTROL = {"\a", "\b", "\t", "\v", "\f", "\r", "\x00"}


def test_the_package_has_sources():
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiles_without_warnings_and_docstrings_hold_no_control_character(path: Path):
    source = path.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = ast.parse(source, str(path))
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    for node in nodes:
        doc = ast.get_docstring(node, clean=False) or ""
        bad = sorted(repr(c) for c in CONTROL if c in doc)
        assert not bad, f"{path.name}: docstring of {getattr(node, 'name', 'the module')} holds {bad}"
