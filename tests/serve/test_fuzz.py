"""Property-based fuzzing of ``POST /v1/allocate``: malformed input is a named 4xx, never a 5xx."""

from __future__ import annotations

import copy
import json
import math
import warnings
from typing import Any, Iterator

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnnalloc import Allocation, Instance, InstanceError, random_instance
from gnnalloc.core import parse_instance
from gnnalloc.families.edge.nn.allocator import Allocator
from gnnalloc.families.edge.problem import max_violation
from gnnalloc.serve import METHODS, create_app

with warnings.catch_warnings():  # starlette's httpx deprecation notice is not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BASE = random_instance(6, 3, 1.0, 0).to_dict()
MAX_USERS = 40
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=False, print_blob=True,
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    torch.manual_seed(0)
    model = Allocator(hidden=16, heads=2, layers=1)
    app = create_app(model, max_users=MAX_USERS, exact_max_users=8)
    with TestClient(app) as c:
        yield c


# ------------------------------------------------------------------------------ strategies
JUNK_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 0, -1, 1e308, -1e308, 5e-324, 1e-300, 1e13]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "s0", "u0", "gnnalloc.instance/v1", "NaN", "\x00", "é" * 3]),
)
JUNK = st.recursive(
    JUNK_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every dict/list in ``node`` with its path."""
    if isinstance(node, (dict, list)):
        yield path, node
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            yield from _containers(child, (*path, key))


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid instance with 1-4 random mutations applied."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        containers = list(_containers(doc))
        if not containers:
            break
        _, node = draw(st.sampled_from(containers))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        kind = draw(st.sampled_from(
            ["drop", "junk", "negate", "scale", "dup_id", "unknown_ref", "add_key", "dup_item"]
        ))
        if kind == "add_key" and isinstance(node, dict):
            node[draw(st.text(max_size=8))] = draw(JUNK)
            continue
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        value = node[key]
        if kind == "drop":
            del node[key]
        elif kind == "junk":
            node[key] = draw(JUNK)
        elif kind == "negate" and isinstance(value, (int, float)) and not isinstance(value, bool):
            node[key] = -value if value else -1.0
        elif kind == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
            factor = draw(st.sampled_from([0, 1e-320, 1e-13, 1e6, 1e13, 1e300, 10**400]))
            try:
                node[key] = value * factor
            except OverflowError:  # a huge int times a float: send the huge int itself
                node[key] = factor
        elif kind == "dup_id":
            for group in ("servers", "users"):
                items = doc.get(group)
                if isinstance(items, list) and len(items) >= 2 and all(
                    isinstance(i, dict) for i in items[:2]
                ):
                    items[1]["id"] = items[0].get("id")
        elif kind == "unknown_ref":
            for entry in doc.get("users") or []:
                if isinstance(entry, dict) and draw(st.booleans()):
                    entry["server"] = draw(st.sampled_from(["nowhere", "", "S0", "s99"]))
            for entry in doc.get("links") or []:
                if isinstance(entry, dict) and draw(st.booleans()):
                    entry["a"] = "nowhere"
        elif kind == "dup_item" and isinstance(node, list):
            node.append(copy.deepcopy(value))
    return doc


def _encode(doc: Any) -> bytes:
    # allow_nan=True writes NaN/Infinity as the raw literals a careless client would send.
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated"] * 6 + ["truncated", "bytes", "junk", "spliced"]))
    if kind == "mutated":
        return _encode(draw(mutated_documents()))
    if kind == "truncated":
        text = _encode(BASE)
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "junk":
        return _encode(draw(JUNK))
    text = _encode(BASE)  # valid text with random bytes spliced in
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.binary(min_size=1, max_size=8)) + text[at:]


# ------------------------------------------------------------------------------ properties
def _expected_field(body: bytes) -> str | None:
    """The field the library itself names for this body, when it can parse it as Python JSON."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    try:
        parse_instance(doc)  # the library's entry point: the format chooses the family
    except InstanceError as exc:
        return exc.field
    except (OverflowError, TypeError):
        # parse_instance raises OverflowError on integers beyond float range; the server
        # parses those as inf first, so it names the field where the library cannot.
        return None
    return None


def _check(client: TestClient, body: bytes, method: str) -> None:
    response = client.post(
        "/v1/allocate", params={"method": method}, content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code < 500, (response.status_code, response.text, body[:500])
    payload = response.json()
    if response.status_code == 200:
        doc = json.loads(body)
        instance = Instance.from_dict(doc)
        allocation = Allocation.from_dict(instance, payload["allocation"])
        assert max_violation(instance, allocation) <= 1e-7
        assert all(
            math.isfinite(v) for v in payload["metrics"].values() if isinstance(v, (int, float))
        )
        return
    assert 400 <= response.status_code < 500
    error = payload["error"]
    assert isinstance(error["field"], str) and error["field"]
    assert isinstance(error["message"], str) and error["message"]
    expected = _expected_field(body)
    if expected is not None and response.status_code == 422:
        # NaN literals are named at their field by both; the library sees a float NaN there.
        assert error["field"] == expected, (error, expected)


@FUZZ
@given(body=bodies(), method=st.sampled_from(["equal", "proportional", "dual", "gnn", "exact"]))
def test_malformed_bodies_get_a_named_4xx(client: TestClient, body: bytes, method: str) -> None:
    _check(client, body, method)


@settings(max_examples=40, deadline=None)
@given(method=st.text(max_size=10).filter(lambda m: m not in METHODS))
def test_unknown_methods_are_400(client: TestClient, method: str) -> None:
    response = client.post("/v1/allocate", params={"method": method}, content=_encode(BASE))
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "method"


@pytest.mark.parametrize("family", ["edge", "power", "sfl"])
def test_malformed_instances_through_cli_and_server_never_crash(family: str) -> None:
    """A small run of ``benchmarks/fuzz.py`` per family (the 2,000-case runs are the benchmark):
    no traceback, no 5xx, no exit 0 / 200 with a non-finite figure, through both entry points and
    ``score``."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        from fuzz import run
    finally:
        sys.path.pop(0)
    report = run(family, 60, seed=1, log=lambda *_: None)
    assert report["failures"] == []
    assert sum(report["cli_exit_codes"]["solve"].values()) == 60


_OPTION_VALUES = st.one_of(
    st.sampled_from([0, 0.05, 0.5, 1, 2, 16]),  # valid for some options: their combinations matter too
    st.integers(-5, 200), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "x", "1e999", "0x10"]),
)


@FUZZ
@given(
    method=st.sampled_from(["gnn_frame", "wmmse_frame", "wmmse", "gnn"]),
    options=st.dictionaries(st.sampled_from(["slots", "fair_time", "alpha", "p5_rate", "gap_tol"]), _OPTION_VALUES,
                            max_size=3),
)
def test_frame_options_are_a_named_4xx_or_an_answer(client: TestClient, method: str, options: dict[str, Any]) -> None:
    """Any mix of the time-sharing query options on a power instance: 200 with a finite figure,
    or a 4xx naming a field; never a 5xx."""
    from gnnalloc.families.power import gaussian

    response = client.post("/v1/allocate", params={"method": method, **options}, json=gaussian(3, 1).to_dict())
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        assert all(math.isfinite(v) for v in body["metrics"].values() if isinstance(v, float))
    else:
        assert body["error"]["field"] in {*options, "method"}, body
