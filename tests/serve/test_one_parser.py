"""The CLI and the server read documents by one rule (``gnnalloc.core.parse_document``):
duplicate keys named, UTF-8 with a byte-order mark and UTF-16 accepted, echoed values cut."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Iterator

import pytest
import torch

from gnnalloc import random_instance
from gnnalloc.cli import main
from gnnalloc.families.edge import Allocator
from gnnalloc.serve import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TEXT = json.dumps(random_instance(6, 3, 1.0, 0).to_dict())
DUPLICATE_TOP = TEXT.replace('"penalty": 10.0', '"penalty": NaN, "penalty": 10.0')
DUPLICATE_USER = TEXT.replace('"compute_min": ', '"compute_min": NaN, "compute_min": ', 1)
HUGE = TEXT.replace('"alpha": 1.0', '"alpha": "' + "x" * 1_000_000 + '"')


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    torch.manual_seed(0)
    with TestClient(create_app(Allocator(hidden=16, heads=2, layers=1))) as c:
        yield c


def _cli(tmp_path: Path, raw: bytes, capsys) -> tuple[int, str]:
    path = tmp_path / "doc.json"
    path.write_bytes(raw)
    capsys.readouterr()
    code = main(["solve", str(path), "--method", "equal"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("text,field", [(DUPLICATE_TOP, "penalty"),
                                        (DUPLICATE_USER, "users[0].compute_min")])
def test_duplicate_keys_are_named_by_both(tmp_path, capsys, client, text, field) -> None:
    code, err = _cli(tmp_path, text.encode(), capsys)
    assert code == 2 and err == f"error: {field}: duplicate key\n", err
    response = client.post("/v1/allocate?method=equal", content=text.encode())
    assert response.status_code == 422
    assert response.json()["error"] == {"field": field, "message": "duplicate key"}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_bom_and_utf16_are_accepted_by_both(tmp_path, capsys, client, encoding) -> None:
    raw = TEXT.encode(encoding)
    code, err = _cli(tmp_path, raw, capsys)
    assert code == 0, err
    assert client.post("/v1/allocate?method=equal", content=raw).status_code == 200


def test_a_huge_bad_value_is_echoed_cut_by_both(tmp_path, capsys, client) -> None:
    code, err = _cli(tmp_path, HUGE.encode(), capsys)
    assert code == 2 and err.startswith("error: alpha: ") and err.endswith("...\n")
    response = client.post("/v1/allocate?method=equal", content=HUGE.encode())
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert err == f"error: alpha: {message}\n"


@pytest.mark.parametrize("family,size", [("power", 4), ("sfl", 4)])
@pytest.mark.parametrize("encoding", ["dup", "utf-8-sig", "utf-16"])
def test_other_families_get_the_same_verdict_from_both(tmp_path, capsys, client, family, size, encoding) -> None:
    """Duplicate keys named and BOM / UTF-16 accepted, for every family's instances."""
    from gnnalloc.core import get_family

    fam = get_family(family)
    document = fam.dump_instance(next(iter(fam.generators.values()))(size, 0))
    key = next(k for k in document if k != "format")
    text = json.dumps(document)
    if encoding == "dup":
        text = text.replace(f'"{key}": ', f'"{key}": NaN, "{key}": ', 1)
    raw = text.encode("utf-8" if encoding == "dup" else encoding)
    path = tmp_path / "doc.json"
    path.write_bytes(raw)
    capsys.readouterr()
    code = main(["solve", str(path), "--method", "equal" if family == "sfl" else "full_power"])
    err = capsys.readouterr().err
    method = "equal" if family == "sfl" else "full_power"
    response = client.post(f"/v1/allocate?method={method}", content=raw)
    if encoding == "dup":
        assert code == 2 and err == f"error: {key}: duplicate key\n", err
        assert response.status_code == 422
        assert response.json()["error"] == {"field": key, "message": "duplicate key"}
    else:
        assert code == 0, err
        assert response.status_code == 200, response.text
