"""Endpoint tests of the FastAPI app through TestClient (no network, no checkpoint file)."""

from __future__ import annotations

import copy
import json
import time
import warnings
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from gnnalloc import Allocation, Instance, SolverError, random_instance
from gnnalloc.families.edge.nn.allocator import Allocator
from gnnalloc.families.edge.problem import max_violation
from gnnalloc.core import InputError, InstanceError, families
from gnnalloc.serve import create_app, max_body_bytes

with warnings.catch_warnings():  # starlette's httpx deprecation notice is not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MAX_USERS = 30
MAX_PAIRS = 150
EXACT_MAX_USERS = 12


def small_model() -> Allocator:
    torch.manual_seed(0)
    return Allocator(hidden=16, heads=2, layers=1)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(
        small_model(), max_users=MAX_USERS, max_pairs=MAX_PAIRS, exact_max_users=EXACT_MAX_USERS
    )
    with TestClient(app) as c:
        yield c


@pytest.fixture
def doc() -> dict[str, Any]:
    return random_instance(10, 3, 1.0, 0).to_dict()


def assert_feasible(doc: dict[str, Any], body: dict[str, Any]) -> None:
    instance = Instance.from_dict(doc)
    allocation = Allocation.from_dict(instance, body["allocation"])  # every user, once
    assert [u["id"] for u in body["allocation"]["users"]] == list(instance.user_ids)
    assert max_violation(instance, allocation) <= 1e-7
    assert body["metrics"]["max_violation"] <= 1e-7


def error_of(response: Any) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"field", "message"}
    assert body["error"]["field"] and body["error"]["message"]
    return body["error"]


# ------------------------------------------------------------------------- happy paths
def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("method", ["gnn", "exact", "dual", "equal", "proportional"])
def test_each_method_returns_a_feasible_allocation(
    client: TestClient, doc: dict[str, Any], method: str
) -> None:
    response = client.post("/v1/allocate", params={"method": method}, json=doc)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"allocation", "metrics", "timing", "status", "certified_optimal"}
    assert body["allocation"]["format"] == "gnnalloc.allocation/v1"
    assert_feasible(doc, body)
    assert body["timing"]["method"] == method and body["timing"]["seconds"] >= 0
    assert body["metrics"]["gap"] is None
    if method == "exact":
        assert body["status"] == "optimal" and body["certified_optimal"] is True
    else:
        assert body["status"] == "ok" and body["certified_optimal"] is False
    # The proof of quality comes with the methods that have prices.
    if method == "exact":
        assert 0 <= body["metrics"]["gap_bound"] <= 1e-6
    elif method == "dual":
        assert 0 <= body["metrics"]["gap_bound"] < 0.1
    else:
        assert body["metrics"]["gap_bound"] is None


def test_default_method_is_gnn(client: TestClient, doc: dict[str, Any]) -> None:
    response = client.post("/v1/allocate", json=doc)
    assert response.status_code == 200
    assert response.json()["timing"]["method"] == "gnn"


def test_edge_cases_are_served(client: TestClient, doc: dict[str, Any]) -> None:
    no_users = dict(doc, users=[])
    assert client.post("/v1/allocate", params={"method": "exact"}, json=no_users).status_code == 200
    zero = copy.deepcopy(doc)
    for server in zero["servers"]:
        server.update(compute=0.0, bandwidth=0.0)
    response = client.post("/v1/allocate", params={"method": "proportional"}, json=zero)
    assert response.status_code == 200
    assert_feasible(zero, response.json())


def test_model_info(client: TestClient) -> None:
    body = client.get("/v1/model").json()
    assert body["checkpoint"] is None
    assert body["hyperparameters"]["hidden"] == 16 and body["hyperparameters"]["layers"] == 1
    assert body["parameters"] == sum(p.numel() for p in small_model().parameters())
    assert body["limits"]["max_users"] == MAX_USERS
    assert body["limits"]["max_pairs"] == MAX_PAIRS
    assert body["limits"]["exact_max_users"] == EXACT_MAX_USERS


def test_model_info_from_checkpoint(tmp_path) -> None:
    path = tmp_path / "m.ckpt"
    small_model().save(
        path, training={"max_steps": 10, "lr": 1e-3}, note="test", blob=torch.ones(2)
    )
    app = create_app(Allocator.from_checkpoint(path), checkpoint=str(path))
    body = TestClient(app).get("/v1/model").json()
    assert body["checkpoint"] == str(path)
    assert body["training"] == {"max_steps": 10, "lr": 1e-3}
    assert body["metadata"]["note"] == "test"
    assert isinstance(body["metadata"]["blob"], str)  # tensors are summarised, not dumped


def test_openapi_schema_mirrors_the_v1_format(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("InstanceV1", "Server", "Link", "User", "AllocationV1", "AllocateResponse",
                 "ErrorResponse"):
        assert name in components
    body = schema["paths"]["/v1/allocate"]["post"]["requestBody"]
    # One instance model per family: the body is any of them.
    refs = [ref["$ref"] for ref in body["content"]["application/json"]["schema"]["oneOf"]]
    assert any(ref.endswith("/InstanceV1") for ref in refs) and len(refs) == len(families())
    assert set(components["User"]["properties"]) == {
        "id", "server", "service", "compute_min", "bandwidth_min", "data_rate", "weight",
    }
    assert client.get("/docs").status_code == 200


# -------------------------------------------------------------------------- bad inputs
def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _raw(doc: dict[str, Any], path: tuple[Any, ...], literal: str) -> bytes:
    """The JSON text of ``doc`` with the value at ``path`` replaced by a raw literal."""
    marker = "__RAW_LITERAL__"
    return json.dumps(_set(doc, path, marker)).replace(f'"{marker}"', literal).encode()


def _drop(doc: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return doc


BASE = random_instance(10, 3, 1.0, 0).to_dict()
BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("truncated JSON", json.dumps(BASE).encode()[:-20], 400, "$"),
    ("empty body", b"", 400, "$"),
    ("not UTF-8", b"\xff\xfe\xfa{", 400, "$"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 400, "$"),
    ("not an object", b"[1, 2, 3]", 422, "$"),
    ("wrong format", json.dumps(_set(BASE, ("format",), "v2")).encode(), 422, "format"),
    ("string number", json.dumps(_set(BASE, ("users", 3, "compute_min"), "ten")).encode(), 422,
     "users[3].compute_min"),
    ("bool number", json.dumps(_set(BASE, ("servers", 1, "bandwidth"), True)).encode(), 422,
     "servers[1].bandwidth"),
    ("list users", json.dumps(_set(BASE, ("users",), {"u": 1})).encode(), 422, "users"),
    ("number id", json.dumps(_set(BASE, ("servers", 0, "id"), 7)).encode(), 422, "servers[0].id"),
    ("NaN", _raw(BASE, ("users", 3, "compute_min"), "NaN"), 422, "users[3].compute_min"),
    ("Infinity", _raw(BASE, ("servers", 1, "compute"), "Infinity"), 422, "servers[1].compute"),
    ("-Infinity", _raw(BASE, ("penalty",), "-Infinity"), 422, "penalty"),
    ("float overflow", _raw(BASE, ("users", 0, "weight"), "1e400"), 422, "users[0].weight"),
    ("int overflow", _raw(BASE, ("users", 0, "weight"), "9" * 400), 422, "users[0].weight"),
    ("negative capacity", json.dumps(_set(BASE, ("servers", 2, "compute"), -1.0)).encode(), 422,
     "servers[2].compute"),
    ("negative link", json.dumps(_set(BASE, ("links", 0, "capacity"), -5)).encode(), 422,
     "links[0].capacity"),
    ("zero minimum", json.dumps(_set(BASE, ("users", 4, "bandwidth_min"), 0)).encode(), 422,
     "users[4].bandwidth_min"),
    ("unknown home", json.dumps(_set(BASE, ("users", 2, "server"), "nowhere")).encode(), 422,
     "users[2].server"),
    ("unknown link end", json.dumps(_set(BASE, ("links", 0, "b"), "nowhere")).encode(), 422,
     "links[0].b"),
    ("duplicate server", json.dumps(_set(BASE, ("servers", 1, "id"), BASE["servers"][0]["id"]))
     .encode(), 422, "servers[1].id"),
    ("duplicate user", json.dumps(_set(BASE, ("users", 5, "id"), BASE["users"][0]["id"]))
     .encode(), 422, "users[5].id"),
    ("missing field", json.dumps(_drop(BASE, ("users", 1, "compute_min"))).encode(), 422,
     "users[1].compute_min"),
    ("missing users", json.dumps(_drop(BASE, ("users",))).encode(), 422, "users"),
    ("unknown field", json.dumps(_set(BASE, ("users", 0, "colour"), "red")).encode(), 422,
     "users[0].colour"),
    ("huge capacity", json.dumps(_set(BASE, ("servers", 0, "compute"), 1e300)).encode(), 422,
     "servers[0].compute"),
    ("huge penalty", json.dumps(_set(BASE, ("penalty",), 1e300)).encode(), 422, "penalty"),
    ("huge alpha", json.dumps(_set(BASE, ("alpha",), 1e4)).encode(), 422, "alpha"),
]


@pytest.mark.parametrize(
    "body,status,field", [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES]
)
def test_bad_input_names_the_field(
    client: TestClient, body: bytes, status: int, field: str
) -> None:
    response = client.post(
        "/v1/allocate", params={"method": "equal"}, content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert error_of(response)["field"] == field


def test_library_and_server_name_the_same_field() -> None:
    doc = _set(BASE, ("users", 7, "data_rate"), -0.5)
    with pytest.raises(Exception) as info:
        Instance.from_dict(doc)
    app = create_app(small_model())
    response = TestClient(app).post("/v1/allocate", json=doc)
    assert error_of(response) == {"field": info.value.field, "message": info.value.message}


def test_over_max_users_is_413(client: TestClient) -> None:
    doc = random_instance(MAX_USERS + 1, 3, 1.0, 0).to_dict()
    response = client.post("/v1/allocate", params={"method": "equal"}, json=doc)
    assert response.status_code == 413
    assert error_of(response)["field"] == "users"
    # Counted before the document is parsed: a bad field further in is never read.
    doc["users"][-1]["weight"] = "heavy"
    response = client.post("/v1/allocate", params={"method": "equal"}, json=doc)
    assert response.status_code == 413 and error_of(response)["field"] == "users"


def test_over_max_pairs_is_413(client: TestClient) -> None:
    # Few users, each a candidate of every server: the cost is in the pairs.
    servers = [{"id": f"s{i}", "compute": 10.0, "bandwidth": 10.0} for i in range(20)]
    links = [{"a": "s0", "b": f"s{i}", "capacity": 5.0} for i in range(1, 20)]
    users = [
        {"id": f"u{i}", "server": "s0", "compute_min": 1.0, "bandwidth_min": 1.0} for i in range(MAX_USERS)
    ]
    doc = {"format": "gnnalloc.instance/v1", "servers": servers, "links": links, "users": users}
    assert Instance.from_dict(doc).num_pairs > MAX_PAIRS
    response = client.post("/v1/allocate", params={"method": "equal"}, json=doc)
    assert response.status_code == 413
    error = error_of(response)
    assert error["field"] == "users" and "--max-pairs" in error["message"]


def test_error_echoing_a_lone_surrogate_is_still_a_422(client: TestClient, doc: dict[str, Any]) -> None:
    body = json.dumps(doc)[:-1] + ', "\\ud800": 1}'
    response = client.post("/v1/allocate", content=body.encode())
    assert response.status_code == 422
    assert "ud800" in error_of(response)["field"] + error_of(response)["message"]


def test_body_over_byte_limit_is_413_before_parsing(client: TestClient) -> None:
    body = b" " * (max_body_bytes(MAX_USERS) + 1) + b"{"  # would be malformed JSON if parsed
    response = client.post("/v1/allocate", content=body)
    assert response.status_code == 413
    assert error_of(response)["field"] == "$"


def test_chunked_body_over_byte_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(max_body_bytes(MAX_USERS) // (1 << 20) + 2):
            yield b" " * (1 << 20)

    response = client.post("/v1/allocate", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize("method", ["GNN", "", "simplex", "exact;drop"])
def test_unknown_method_is_400(client: TestClient, doc: dict[str, Any], method: str) -> None:
    response = client.post("/v1/allocate", params={"method": method}, json=doc)
    assert response.status_code == 400
    error = error_of(response)
    assert error["field"] == "method" and "gnn" in error["message"]


def test_exact_over_exact_max_users_is_413(client: TestClient) -> None:
    doc = random_instance(EXACT_MAX_USERS + 1, 3, 1.0, 0).to_dict()
    response = client.post("/v1/allocate", params={"method": "exact"}, json=doc)
    assert response.status_code == 413
    error = error_of(response)
    assert error["field"] == "users" and "exact" in error["message"]
    # The same instance is fine for the other methods.
    assert client.post("/v1/allocate", params={"method": "equal"}, json=doc).status_code == 200


def test_unknown_route_and_verb_use_the_error_format(client: TestClient) -> None:
    assert error_of(client.get("/v2/allocate"))["field"] == "$"
    response = client.get("/v1/allocate")
    assert response.status_code == 405
    assert error_of(response)["field"] == "$"
    assert response.headers["allow"] == "POST"  # RFC 9110: a 405 lists the allowed methods


# ------------------------------------------------------------------ solver-side failures
def _nothing_within_the_limit(monkeypatch) -> None:
    """Every exact attempt spends its time limit and finds nothing (Clarabel stopped before any
    usable iterate)."""
    from gnnalloc.families.edge.solvers import _exact

    def attempt(instance: Any, live: Any, formulation: str, tolerance: float, time_limit: Any, *rest: Any) -> None:
        time.sleep(time_limit or 0.0)

    monkeypatch.setattr(_exact, "_attempt", attempt)


def test_exact_stopped_by_the_time_limit_returns_its_iterate_uncertified(doc: dict[str, Any]) -> None:
    app = create_app(small_model(), exact_time_limit=1e-6)
    response = TestClient(app).post("/v1/allocate", params={"method": "exact"}, json=doc)
    assert response.status_code == 200, response.text
    assert_feasible(doc, response.json())
    body = response.json()
    assert body["status"].startswith("time limit reached") and body["certified_optimal"] is False


@pytest.mark.parametrize(("query", "says"), [
    ({}, "this server's time limit of 0.05 s (--exact-time-limit)"),
    ({"time_limit": 0.02}, "time_limit 0.02 s"),
])
def test_exact_that_finds_nothing_within_the_limit_says_whose(monkeypatch, doc: dict[str, Any], query, says) -> None:
    """422 on ``method``, naming the limit in force: the server's, or the request's own (not
    "failed in every formulation": one attempt runs under a limit)."""
    _nothing_within_the_limit(monkeypatch)
    response = TestClient(create_app(small_model(), exact_time_limit=0.05)).post(
        "/v1/allocate", params={"method": "exact", **query}, json=doc
    )
    error = error_of(response)
    assert response.status_code == 422 and error["field"] == "method"
    assert error["message"].startswith(f"exact: no solution within {says}")


def test_solver_error_names_method(monkeypatch, doc: dict[str, Any]) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise SolverError("stalled")

    monkeypatch.setattr("gnnalloc.serve.app.solve", fail)
    response = TestClient(create_app(small_model())).post("/v1/allocate", json=doc)
    assert response.status_code == 422
    assert error_of(response)["field"] == "method"


def test_library_bug_is_a_500_in_the_error_format(monkeypatch, doc: dict[str, Any]) -> None:
    from gnnalloc.core import SolveResult

    def nan(instance: Instance, method: str, **kwargs: Any) -> SolveResult:
        bad = Allocation(np.full(instance.num_pairs, np.nan), np.zeros(instance.num_users))
        return SolveResult(bad, method, 0.0)

    monkeypatch.setattr("gnnalloc.serve.app.solve", nan)
    response = TestClient(create_app(small_model())).post("/v1/allocate", json=doc)
    assert response.status_code == 500
    assert error_of(response)["field"] == "$"


@pytest.mark.parametrize(
    ("error", "query", "status", "field"),
    [(InputError("gap_tol: refused with time_limit"), {"gap_tol": 0.1, "time_limit": 1}, 422, "gap_tol"),
     (InputError("links: the method handles at most 4 links, got 6"), {}, 422, "links"),
     (InputError("the method cannot answer this instance"), {}, 422, "method"),
     (InstanceError("clients[0].energy_max", "no split meets it"), {}, 422, "clients[0].energy_max"),
     (ValueError("operands could not be broadcast together with shapes (3,) (4,)"), {}, 500, "$")],
)
def test_a_method_s_refusal_is_the_client_s_error_and_a_bug_is_the_server_s(
    monkeypatch, doc, error, query, status, field,
) -> None:
    """An InputError from ``solve`` is the method refusing the request (as the CLI reports it,
    exit 2): a 422 on the field its message names, else on ``method``; an InstanceError (a valid
    document the method cannot allocate) on its field. Any other ValueError (numpy's, from a bug
    inside a method) is the server's fault: a 500, not a 422 blaming the request."""

    def refuse(instance: Instance, method: str, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr("gnnalloc.serve.app.solve", refuse)
    response = TestClient(create_app(small_model())).post("/v1/allocate", params={"method": "dual", **query}, json=doc)
    assert response.status_code == status and error_of(response)["field"] == field, response.text


def test_busy_server_answers_503(doc: dict[str, Any]) -> None:
    app = create_app(small_model(), max_pending=0)
    response = TestClient(app).post("/v1/allocate", json=doc)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert error_of(response)["field"] == "$"


def test_every_method_is_finite_and_feasible_at_the_corners_of_the_value_ranges() -> None:
    """What VALUE_RANGES promises: quantities, weights and alpha at their extremes, mixed in one
    instance (a minimum of 1e-12 beside a capacity of 1e12), never give NaN, inf or a violation."""
    import itertools

    from gnnalloc import solve
    from gnnalloc.families.edge import VALUE_RANGES

    low, high = VALUE_RANGES["quantity"]
    light, heavy = VALUE_RANGES["weight"]
    model = small_model()
    for alpha, cmin, bmin, capacity, weight in itertools.product(
        (VALUE_RANGES["alpha"][0], 1.0, VALUE_RANGES["alpha"][1]), (low, high), (low, high),
        (0.0, low, high), (light, heavy),
    ):
        doc = {
            "format": "gnnalloc.instance/v1", "alpha": alpha,
            "servers": [{"id": "h", "compute": capacity, "bandwidth": capacity},
                        {"id": "n", "compute": 1.0, "bandwidth": 1.0}],
            "links": [{"a": "h", "b": "n", "capacity": 1.0}],
            "users": [
                {"id": "a", "server": "h", "compute_min": cmin, "bandwidth_min": bmin,
                 "weight": weight, "data_rate": 1.0},
                {"id": "b", "server": "h", "compute_min": 1.0, "bandwidth_min": 1.0},
                {"id": "c", "server": "n", "compute_min": 1.0, "bandwidth_min": 1e-3},
            ],
        }
        instance = Instance.from_dict(doc)
        for method in ("gnn", "dual", "equal", "proportional"):
            result = solve(instance, method, allocator=model) if method == "gnn" else solve(instance, method)
            where = f"{method} alpha={alpha} cmin={cmin} bmin={bmin} capacity={capacity} weight={weight}"
            allocation = result.allocation
            assert np.isfinite(allocation.compute).all() and np.isfinite(allocation.bandwidth).all(), where
            assert max_violation(instance, allocation) <= 1e-7, where


def test_methods_are_listed_per_family(client: TestClient) -> None:
    body = client.get("/v1/methods").json()
    edge = body["edge"]
    assert edge["instance_format"] == "gnnalloc.instance/v1"
    assert edge["reference_method"] == "exact"
    assert set(edge["methods"]) == {"exact", "dual", "equal", "proportional", "gnn", "gnn-shares"}
    assert edge["methods"]["gnn"]["kind"] == "learned"


def test_the_format_chooses_the_family(client: TestClient, doc: dict[str, Any]) -> None:
    response = client.post("/v1/allocate", json=dict(doc, format="nobody/v1"))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "format"
    missing = {k: v for k, v in doc.items() if k != "format"}
    response = client.post("/v1/allocate", json=missing)
    assert response.status_code == 422 and response.json()["error"]["field"] == "format"


def test_without_a_model_gnn_uses_the_family_s_shipped_checkpoint(doc: dict[str, Any]) -> None:
    response = TestClient(create_app()).post("/v1/allocate", params={"method": "gnn"}, json=doc)
    assert response.status_code == 200, response.json()
    assert_feasible(doc, response.json())


def test_gnn_solves_anytime_from_the_shipped_price_model(doc: dict[str, Any]) -> None:
    client = TestClient(create_app())
    response = client.post("/v1/allocate", params={"method": "gnn", "gap_tol": 0.05, "time_limit": 5}, json=doc)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "gap_tol" in body["status"] and body["metrics"]["gap_bound"] <= 0.05
    assert_feasible(doc, body)


def test_dual_request_options(client: TestClient, doc: dict[str, Any]) -> None:
    response = client.post("/v1/allocate", params={"method": "dual", "gap_tol": 0.05, "time_limit": 5}, json=doc)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"].startswith("proven gap") and body["metrics"]["gap_bound"] <= 0.05
    assert_feasible(doc, body)
    for params, field in (
        ({"method": "dual", "gap_tol": -1}, "gap_tol"),
        ({"method": "dual", "time_limit": "nan"}, "time_limit"),
        ({"method": "dual", "time_limit": 0}, "time_limit"),
        ({"method": "equal", "gap_tol": 0.1}, "gap_tol"),
    ):
        response = client.post("/v1/allocate", params=params, json=doc)
        assert response.status_code == 422 and error_of(response)["field"] == field, response.text


def test_refused_options_are_the_library_s_rule(client: TestClient, doc: dict[str, Any]) -> None:
    """The server adds no rule of its own for a method's options: what the library refuses
    (an option the method does not take, time_limit included; a value outside the family's
    range) is a 422 naming the option, with the library's message."""
    from gnnalloc.families.power import gaussian
    from gnnalloc.families.power._instance import MAX_ALPHA

    power = gaussian(3, 1).to_dict()
    for params, body, field, message in (
        ({"method": "equal", "time_limit": 1}, doc, "time_limit", "only method"),
        ({"method": "wmmse", "slots": 2}, power, "slots", "only method"),
        ({"method": "gnn_frame", "alpha": 2 * MAX_ALPHA}, power, "alpha", f"at most {MAX_ALPHA:g}"),
    ):
        response = client.post("/v1/allocate", params=params, json=body)
        assert response.status_code == 422, response.text
        assert error_of(response)["field"] == field and message in error_of(response)["message"], response.text
    response = client.post("/v1/allocate", params={"method": "gnn_frame", "alpha": MAX_ALPHA, "slots": 2}, json=power)
    assert response.status_code == 200, response.text


def test_which_options_and_model_each_method_gets(monkeypatch, doc: dict[str, Any]) -> None:
    """The server's time limit bounds reference and learned methods (the edge gnn is anytime by
    default), a classical one only on request; its model goes to the methods it suits: a price
    model to gnn, never to the share-head gnn-shares."""
    from gnnalloc.core import SolveResult
    from gnnalloc.families.edge.nn import PricePredictor

    seen: dict[str, dict[str, Any]] = {}

    def record(instance: Instance, method: str, **options: Any) -> SolveResult:
        seen[method] = options
        return SolveResult(Allocation(np.zeros(instance.num_pairs), np.zeros(instance.num_users)), method, 0.0)

    monkeypatch.setattr("gnnalloc.serve.app.solve", record)
    torch.manual_seed(0)
    price_model = PricePredictor(hidden=8, heads=1, layers=1)
    client = TestClient(create_app(price_model, exact_time_limit=7.0))
    for method in ("gnn", "gnn-shares", "dual", "exact", "equal"):
        assert client.post("/v1/allocate", params={"method": method}, json=doc).status_code == 200
    assert seen["gnn"] == {"time_limit": 7.0, "allocator": price_model}
    assert seen["gnn-shares"] == {}  # its own shipped share-head model
    assert seen["dual"] == {} and seen["equal"] == {}
    assert seen["exact"] == {"time_limit": 7.0}
    assert client.post("/v1/allocate", params={"method": "dual", "time_limit": 30}, json=doc).status_code == 200
    assert seen["dual"] == {"time_limit": 7.0}


def test_a_share_head_gnn_refuses_gap_tol_by_name(doc: dict[str, Any]) -> None:
    client = TestClient(create_app(small_model()))
    response = client.post("/v1/allocate", params={"method": "gnn", "gap_tol": 0.01}, json=doc)
    assert response.status_code == 422 and error_of(response)["field"] == "gap_tol", response.text
    response = client.post("/v1/allocate", params={"method": "gnn", "time_limit": 5}, json=doc)
    assert response.status_code == 200, response.text


def test_the_served_models_reach_the_methods_they_suit(doc: dict[str, Any]) -> None:
    """What `gnnalloc serve` loads (every family's shipped model: the edge price model) answers
    every learned method, gnn-shares included (it used to get the price model and answer 500);
    a share-head model served as gnn also reaches gnn-shares."""
    from gnnalloc.serve import load_models

    models, _ = load_models()
    client = TestClient(create_app(allocators=models))
    for method in ("gnn", "gnn-shares"):
        response = client.post("/v1/allocate", params={"method": method}, json=doc)
        assert response.status_code == 200, response.text
        assert_feasible(doc, response.json())


def test_a_share_head_server_model_reaches_gnn_shares(monkeypatch, doc: dict[str, Any]) -> None:
    from gnnalloc.core import SolveResult

    seen: dict[str, dict[str, Any]] = {}

    def record(instance: Instance, method: str, **options: Any) -> SolveResult:
        seen[method] = options
        return SolveResult(Allocation(np.zeros(instance.num_pairs), np.zeros(instance.num_users)), method, 0.0)

    monkeypatch.setattr("gnnalloc.serve.app.solve", record)
    model = small_model()
    client = TestClient(create_app(model))
    assert client.post("/v1/allocate", params={"method": "gnn-shares"}, json=doc).status_code == 200
    assert seen["gnn-shares"]["allocator"] is model


@pytest.mark.parametrize("threads", [1, 2])
def test_a_long_learned_solve_holds_up_others_only_with_several_threads_per_solve(
    monkeypatch, doc: dict[str, Any], threads: int
) -> None:
    """With one intra-op thread per solve (gnnalloc serve's default) a second learned request is
    answered while a long one runs; with several, learned solves take turns."""
    import threading as _threading

    from gnnalloc import solve
    from gnnalloc.core import SolveResult
    from gnnalloc.families.power import gaussian

    entered, release = _threading.Event(), _threading.Event()

    def held_edge_gnn(instance: Any, method: str, **options: Any) -> SolveResult:
        if method == "gnn" and isinstance(instance, Instance):
            entered.set()
            assert release.wait(30), "the test never released the held solve"
            return SolveResult(Allocation(np.zeros(instance.num_pairs), np.zeros(instance.num_users)), method, 0.0)
        return solve(instance, method, **options)

    monkeypatch.setattr("gnnalloc.serve.app.solve", held_edge_gnn)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # what the app is built with
    try:
        client = TestClient(create_app(small_model(), workers=2))
    finally:
        torch.set_num_threads(before)
    power = gaussian(3, 1).to_dict()
    statuses: dict[str, int] = {}

    def post(name: str, body: dict[str, Any]) -> None:
        statuses[name] = client.post("/v1/allocate", params={"method": "gnn"}, json=body).status_code

    held = _threading.Thread(target=post, args=("held", doc))
    probe = _threading.Thread(target=post, args=("probe", power))
    try:
        held.start()
        assert entered.wait(30), "the held solve never started"
        probe.start()
        probe.join(timeout=20 if threads == 1 else 1.0)
        # One thread per solve: answered while the other is held. Several: it waits its turn.
        assert probe.is_alive() == (threads > 1)
    finally:
        release.set()
        held.join(30)
        probe.join(30)
    assert statuses == {"held": 200, "probe": 200}


def test_learned_solves_side_by_side_match_one_at_a_time() -> None:
    """What the server now does with one thread per solve: real learned solves of every family in
    two threads give the answers they give alone, and leave the warning filters as they were
    (catch_warnings is not thread-safe; no solve path may use it)."""
    import threading as _threading
    import warnings as _warnings

    from gnnalloc import solve
    from gnnalloc.families.power import d2d
    from gnnalloc.families.sfl import random_sfl

    cases = [(random_instance(30, 5, 1.0, 3), "gnn"), (random_instance(30, 5, 1.0, 4), "gnn-shares"),
             (d2d(20, 1), "gnn"), (d2d(20, 2), "gnn_frame"), (random_sfl(10, 1), "gnn")]

    def answer(instance: Any, method: str) -> bytes:
        from gnnalloc.core import family_of

        return json.dumps(family_of(instance).dump_allocation(instance, solve(instance, method).allocation)).encode()

    results: dict[tuple[int, int], bytes] = {}

    def run(worker: int) -> None:
        torch.set_num_threads(1)  # as the server's threads do
        for i, case in enumerate(cases if worker == 0 else cases[::-1]):
            index = i if worker == 0 else len(cases) - 1 - i
            results[worker, index] = answer(*case)

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one intra-op thread, alone as side by side (the same arithmetic)
    try:
        alone = [answer(*case) for case in cases]
        filters = list(_warnings.filters)
        threads = [_threading.Thread(target=run, args=(w,)) for w in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        torch.set_num_threads(before)
    different = [(w, cases[i][1]) for w in (0, 1) for i in range(len(cases)) if results.get((w, i)) != alone[i]]
    assert not different
    assert list(_warnings.filters) == filters


# ------------------------------------------------ what the limits count, unknown options
def test_size_limits_count_the_family_s_decision_makers() -> None:
    """``--max-users`` bounds users, links or clients (``family.size``), not a document's other
    lists: 30 EUA users come with 432 inter-server links, 150 power links with 22,350 cross
    gains."""
    from gnnalloc import eua_instance
    from gnnalloc.families.power import gaussian

    with TestClient(create_app(None, max_users=200, exact_max_users=40)) as client:
        edge = eua_instance(30, 1.0, seed=1).to_dict()
        assert len(edge["links"]) > 200
        assert client.post("/v1/allocate", params={"method": "equal"}, json=edge).status_code == 200
        assert client.post("/v1/allocate", params={"method": "exact"}, json=edge).status_code == 200
        power = gaussian(150, 1).to_dict()
        response = client.post("/v1/allocate", params={"method": "full_power"}, json=power)
        assert response.status_code == 200, response.text
    with TestClient(create_app(None, max_users=100)) as client:
        response = client.post("/v1/allocate", params={"method": "full_power"}, json=gaussian(101, 1).to_dict())
        assert response.status_code == 413 and error_of(response)["field"] == "links", response.text


@pytest.mark.parametrize("name", ["gaptol", "time-limit", "max_iter"])
def test_an_unknown_query_parameter_is_named(client: TestClient, doc: dict[str, Any], name: str) -> None:
    response = client.post("/v1/allocate", params={"method": "equal", name: "1"}, json=doc)
    assert response.status_code == 422
    assert error_of(response)["field"] == name


def test_a_method_refusing_an_instance_is_a_422_naming_the_field() -> None:
    """The CLI's exit 2, over HTTP: power ``optimum`` above its link count, sfl ``gnn`` on a
    weighted-sum round (its default method)."""
    from gnnalloc.families.power import gaussian
    from gnnalloc.families.sfl import random_sfl

    with TestClient(create_app(None)) as client:
        response = client.post("/v1/allocate", params={"method": "optimum"}, json=gaussian(6, 1).to_dict())
        assert response.status_code == 422 and error_of(response)["field"] == "links", response.text
        round_ = random_sfl(5, 1, objective="weighted_sum").to_dict()
        response = client.post("/v1/allocate", json=round_)
        assert response.status_code == 422 and error_of(response)["field"] == "objective", response.text


@pytest.mark.parametrize("family", ["power", "sfl"])
def test_a_power_or_sfl_checkpoint_is_served_and_described(family: str) -> None:
    """Their models return their hyperparameters from ``config()``, as the edge ones do."""
    from gnnalloc.serve import load_models

    models, _ = load_models(str(families()[family].default_checkpoint))
    with TestClient(create_app(models[family], allocators=models)) as client:
        info = client.get("/v1/model").json()
        assert info["hyperparameters"] and info["parameters"] > 0


def test_an_sfl_round_no_split_can_serve_is_a_422_naming_the_client() -> None:
    """Clients that cannot meet their energy budgets at any split: the CLI's exit 2 naming
    ``clients[i].energy_max``, over HTTP (it answered 500)."""
    from gnnalloc.families.sfl import random_sfl

    document = random_sfl(5, 1).to_dict()
    for client_ in document["clients"]:
        client_["energy_max"] *= 1e-6
    with TestClient(create_app(None)) as client:
        for method in ("exact", "equal"):
            response = client.post("/v1/allocate", params={"method": method}, json=document)
            assert response.status_code == 422, response.text
            assert error_of(response)["field"].endswith(".energy_max")


def test_an_exact_time_limit_no_method_accepts_is_refused_at_start(capsys) -> None:
    """Above MAX_TIME_LIMIT every exact and learned request would get a 422 naming a
    ``time_limit`` the client never sent: ``create_app`` and ``gnnalloc serve`` refuse it."""
    from gnnalloc.cli import main

    with pytest.raises(InputError, match="^exact_time_limit: must be at most"):
        create_app(small_model(), exact_time_limit=2e9)
    assert main(["serve", "--exact-time-limit", "2e9"]) == 2
    assert capsys.readouterr().err.startswith("error: exact-time-limit: invalid value 2000000000.0")


def test_a_power_model_trained_through_a_frame_is_served_in_it_within_the_servers_slots() -> None:
    """``gnn_frame`` with a time-head model: its own fair_time and recorded slots; a recorded
    frame longer than the server allows per request is a 422 naming ``slots`` unless the request
    gives them."""
    from gnnalloc.families.power import d2d
    from gnnalloc.families.power._model import PowerAllocator
    from gnnalloc.serve.app import MAX_FRAME_SLOTS

    torch.manual_seed(0)
    document = d2d(8, 1).to_dict()
    for slots, status in ((3, 200), (MAX_FRAME_SLOTS + 1, 422)):
        model = PowerAllocator(hidden=8, heads=2, layers=1, time_sharing=True, frame_training={"slots": slots})
        with TestClient(create_app(model)) as client:
            response = client.post("/v1/allocate", params={"method": "gnn_frame"}, json=document)
            assert response.status_code == status, response.text
            if status == 200:
                assert len(response.json()["allocation"]["slots"]) == slots
            else:
                assert error_of(response)["field"] == "slots"
                given = client.post("/v1/allocate", params={"method": "gnn_frame", "slots": 2}, json=document)
                assert given.status_code == 200 and len(given.json()["allocation"]["slots"]) == 2


def test_methods_list_the_query_parameters_each_method_takes(client: TestClient) -> None:
    body = client.get("/v1/methods").json()
    edge, power = body["edge"]["methods"], body["power"]["methods"]
    assert edge["gnn"]["options"] == edge["dual"]["options"] == ["gap_tol", "time_limit"]
    assert edge["exact"]["options"] == ["time_limit"] and edge["equal"]["options"] == []
    # Library options without an HTTP form (a model object, a starting point, the server's own
    # slot cap) are not offered to clients.
    assert power["gnn_frame"]["options"] == ["slots", "alpha", "fair_time", "p5_rate"]
    assert power["gnn"]["options"] == []
    listed = {o for family in body.values() for m in family["methods"].values() for o in m["options"]}
    assert listed == {"gap_tol", "time_limit", "slots", "alpha", "fair_time", "p5_rate"}


def test_the_server_reads_options_as_the_cli_does(client: TestClient, doc: dict[str, Any]) -> None:
    """A repeated query parameter is refused (the CLI refuses a repeated --option), an integer one
    must be written as one (the CLI reads "2.0" as a float, which the library refuses), a bad
    document is named before the method (the CLI reads the instance first), and an option the
    method does not take is answered with the query parameters it does take."""
    from gnnalloc.families.power import gaussian

    power = gaussian(3, 1).to_dict()
    for query, body, field in (
        ("method=bogus&method=exact", doc, "method"),
        ("method=dual&gap_tol=0.1&gap_tol=0.2", doc, "gap_tol"),
        ("method=gnn_frame&slots=2.0", power, "slots"),
        ("method=gnn_frame&slots=1e1", power, "slots"),
    ):
        response = client.post(f"/v1/allocate?{query}", json=body)
        assert response.status_code == 422 and error_of(response)["field"] == field, response.text
    response = client.post("/v1/allocate?method=gnn_frame&slots=+2", json=power)
    assert response.status_code == 200, response.text
    response = client.post("/v1/allocate?method=dual", json=dict(power, links="x"))  # an edge method
    assert response.status_code == 422 and error_of(response)["field"] == "links", response.text
    response = client.post("/v1/allocate?method=equal&gap_tol=0.1", json=dict(doc, users="x"))
    assert response.status_code == 422 and error_of(response)["field"] == "users", response.text
    from gnnalloc.families.sfl import random_sfl

    response = client.post("/v1/allocate?method=gnn&time_limit=1", json=random_sfl(3, seed=0).to_dict())
    assert response.status_code == 422, response.text
    # sfl's gnn takes options (a model, a tolerance), none of them a query parameter.
    assert error_of(response) == {"field": "time_limit", "message": "method 'gnn' takes no query parameters"}
    response = client.post("/v1/allocate?method=dual&slots=2", json=doc)
    assert response.status_code == 422, response.text
    # dual's other options (iterations, temperature, start, ...) are the library's alone.
    assert error_of(response)["message"] == "method 'dual' takes no such option (it takes: gap_tol, time_limit)"
