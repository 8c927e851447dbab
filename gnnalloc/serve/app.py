"""HTTP serving of every problem family: a thin FastAPI shell over the registry (the body's
``format`` chooses the family), ``solve`` and the family's ``score``.

Request flow of ``POST /v1/allocate``:

1. on the event loop: check ``method``, the declared and the actual body size (cheap rejections);
2. on a worker thread: parse the JSON, check the size, validate with the family's
   ``parse_instance`` (the single source of truth for its format), check the family's serving
   value ranges;
3. on a worker thread of the method's pool: solve, score, serialise the response.

Nothing heavy runs on the event loop, so ``/healthz`` answers while a long exact solve is in
flight. Worker threads are daemon threads of this module's own pool (not
``concurrent.futures.ThreadPoolExecutor``, whose threads the interpreter joins at exit): a solve
still running when the server stops never delays shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import json
import logging
import math
import os
import queue
import re
import signal
import sys
import threading
import time
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gnnalloc.core import (
    Generator, InputError, InstanceError, ProblemFamily, SolverError, allocation_formats, check_method, check_options,
    check_time_limit, configure_threads, cut_message, families, family_for_format, offered_options, parse_document,
    solve,
)
from gnnalloc.serve.schemas import AllocateResponse, ErrorResponse, Health, ModelInfo

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DEFAULT_EXACT_MAX_USERS", "DEFAULT_EXACT_TIME_LIMIT", "DEFAULT_MAX_USERS", "METHODS",
    "create_app", "load_models", "max_body_bytes", "serve_cli",
]

logger = logging.getLogger("gnnalloc.serve")

#: Every method name of every family (``gnn`` first, the server's default).
METHODS = tuple(dict.fromkeys(["gnn", *(m for f in families().values() for m in f.methods)]))
DEFAULT_MAX_USERS = 20000
# Cost grows with the candidate (user, server) pairs, which --max-users alone does not bound (a
# user may list every server): the model's memory grows linearly in them. EUA: ~5.5 per user.
DEFAULT_MAX_PAIRS = 400_000
DEFAULT_EXACT_MAX_USERS = 5000
DEFAULT_EXACT_TIME_LIMIT = 30.0
#: The most slots a request may ask of a time-sharing method (each slot is one solve).
MAX_FRAME_SLOTS = 64

# A user entry of the v1 format is ~240 bytes as written by `Instance.to_dict`; 2 KiB per user
# leaves room for long ids and pretty-printing, 1 MiB for servers and links.
_BYTES_PER_USER = 2048
_BASE_BYTES = 1 << 20

# In-flight jobs beyond this get 503 rather than an ever-growing queue (memory, latency).
_MAX_PENDING = 64
# Seconds a request body may take to arrive in full. A client that declares a length and then
# stalls would otherwise hold its connection (and the memory of what it sent) forever.
_BODY_SECONDS = 30.0
# Seconds uvicorn waits for in-flight requests after SIGTERM/SIGINT before cancelling them.
_GRACEFUL_SECONDS = 5.0

T = TypeVar("T")


def max_body_bytes(max_users: int) -> int:
    """The largest request body accepted when instances may have up to ``max_users`` users."""
    return _BASE_BYTES + _BYTES_PER_USER * max_users


# ------------------------------------------------------------------------------------- errors
class _HTTPError(Exception):
    """A request failure that maps to ``{"error": {"field", "message"}}`` with ``status``."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message


def _error_response(status: int, field: str, message: str, headers: dict[str, str] | None = None
                    ) -> JSONResponse:
    message = cut_message(message)
    # Echoed input may hold lone surrogates ("\\ud800" in JSON), which UTF-8 cannot encode.
    field, message = (text.encode("utf-8", "backslashreplace").decode("utf-8") for text in (field, message))
    return JSONResponse(
        {"error": {"field": field, "message": message}}, status_code=status, headers=headers
    )


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed JSON or unknown `method`."},
    408: {"model": ErrorResponse, "description": "The body did not arrive in time."},
    413: {"model": ErrorResponse, "description": "Body or instance over this server's limits."},
    422: {"model": ErrorResponse, "description": "An invalid field, named as in the library."},
    503: {"model": ErrorResponse, "description": "Too many requests in flight; retry later."},
}


# --------------------------------------------------------------------------------- JSON input
_FIELD = re.compile(r"[A-Za-z_][\w.\[\]-]*")


def _field_of(text: str) -> tuple[str, str]:
    """``(field, message)`` of a library error message ``"field: message"``; ``"method"`` and
    the whole text where it starts with no field name."""
    field, sep, message = text.partition(": ")
    return (field, message) if sep and _FIELD.fullmatch(field) else ("method", text)


def _size_field(family: ProblemFamily) -> str:
    """What ``family.size`` counts, as its documents name it: its generators' size
    (``"users"``, ``"links"``, ``"clients"``); ``"$"`` for a family without
    :class:`~gnnalloc.core.Generator` records."""
    return next((g.size for g in family.generators.values() if isinstance(g, Generator)), "$")


def _parse_json(body: bytes) -> Any:
    """The decoded body, by the one rule for files and bodies (:func:`parse_document`)."""
    try:
        return parse_document(body)
    except InstanceError as exc:  # undecodable or not JSON at "$"; a duplicate key by its path
        raise _HTTPError(400 if exc.field == "$" else 422, exc.field, exc.message) from None


def _family_of_document(data: Any) -> ProblemFamily:
    """The family reading ``data``'s ``format`` (422 naming ``format`` otherwise)."""
    if not isinstance(data, dict):
        raise _HTTPError(422, "$", f"expected a JSON object, got {type(data).__name__}")
    if "format" not in data:
        raise _HTTPError(422, "format", "missing")
    try:
        return family_for_format(data["format"])
    except InstanceError as exc:
        raise _HTTPError(422, exc.field, exc.message) from None


# -------------------------------------------------------------------------------- worker pool
class _DaemonPool:
    """A fixed number of daemon threads running submitted calls in order.

    Daemon threads are what makes shutdown prompt: the interpreter does not wait for them,
    whereas ``ThreadPoolExecutor`` workers are joined at exit (a 30 s exact solve would hold
    the process). Threads start on first use and stop when :meth:`close` is called; each first
    sets torch's intra-op threads to ``torch_threads`` (a thread keeps the count it first runs
    torch with, so the pool's threads all use the count the app was built with).
    """

    def __init__(self, name: str, threads: int, torch_threads: int) -> None:
        self.name = name
        self.size = max(1, int(threads))
        self.torch_threads = torch_threads
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self.running = 0

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"pool {self.name!r} is closed")
            if not self._threads:
                for i in range(self.size):
                    thread = threading.Thread(
                        target=self._work, name=f"gnnalloc-{self.name}-{i}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            # False if the waiting request was cancelled while queued: skip the work.
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self.running += 1
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # delivered to the awaiting request
                future.set_exception(exc)
            finally:
                with self._lock:
                    self.running -= 1

    def close(self) -> None:
        """Let idle threads exit; a running call finishes (or is abandoned at exit)."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)


class _Runtime:
    """Everything a request handler needs, built once per app."""

    def __init__(self, allocators: dict[str, "nn.Module"], *, workers: int) -> None:
        import torch

        self.allocators = allocators
        # Torch inference is thread-safe. Solves that may each use several intra-op threads
        # only fight over them, so they run one at a time; with one thread per solve (what
        # `gnnalloc serve` configures, GNNALLOC_THREADS=1) learned solves run side by side on
        # the pool's threads, so a long refinement (the edge gnn's) holds up no learned request
        # but those queued behind it for a thread. Decided once, from the count the app is
        # built with, which every pool thread then uses.
        torch_threads = torch.get_num_threads()
        self.learned_lock = threading.Lock() if torch_threads > 1 else None
        self.fast = _DaemonPool("fast", workers, torch_threads)
        # Exact solves can take the whole time limit and dual solves grow with the instance;
        # their own pool keeps them from starving gnn requests, and one thread bounds their
        # memory and CPU.
        self.solver = _DaemonPool("solver", 1, torch_threads)
        self.pending = 0

    def learned_solves(self) -> contextlib.AbstractContextManager[Any]:
        """The context a learned solve runs in: one at a time where each may use several torch
        intra-op threads, side by side with one."""
        return self.learned_lock if self.learned_lock is not None else contextlib.nullcontext()

    def pool(self, family: ProblemFamily, method: str) -> _DaemonPool:
        kind = family.methods[method].kind
        return self.solver if kind in ("reference", "classical") else self.fast

    @property
    def busy(self) -> int:
        return self.fast.running + self.solver.running

    async def run(self, pool: _DaemonPool, fn: Callable[..., T], *args: Any) -> T:
        # asyncio.wrap_future: cancelling the request cancels a still-queued job.
        return await asyncio.wrap_future(pool.submit(fn, *args))

    def close(self) -> None:
        self.fast.close()
        self.solver.close()


# ---------------------------------------------------------------------------------- handlers
def _jsonable(value: Any) -> Any:
    """Checkpoint metadata as JSON: tensors and other objects become short strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _model_info(
    allocator: "nn.Module", checkpoint: str | None, limits: dict[str, Any]
) -> dict[str, Any]:
    metadata = _jsonable(dict(getattr(allocator, "metadata", None) or {}))
    # The training code decides the key; accept the usual spellings.
    training = next(
        (metadata[k] for k in ("training", "training_config", "train_config", "config")
         if k in metadata),
        None,
    )
    if checkpoint is None:
        checkpoint = getattr(allocator, "checkpoint_path", None)
    # Every family's model returns its constructor arguments from `config()`.
    return ModelInfo(
        checkpoint=checkpoint,
        hyperparameters=_jsonable(allocator.config()),
        metadata=metadata,
        training=training,
        parameters=int(sum(p.numel() for p in allocator.parameters())),
        limits=limits,
    ).model_dump()


def create_app(
    allocator: "nn.Module | None" = None,
    *,
    allocators: dict[str, "nn.Module"] | None = None,
    max_users: int = DEFAULT_MAX_USERS,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    exact_max_users: int = DEFAULT_EXACT_MAX_USERS,
    exact_time_limit: float = DEFAULT_EXACT_TIME_LIMIT,
    checkpoint: str | None = None,
    workers: int = 2,
    max_pending: int = _MAX_PENDING,
    body_timeout: float = _BODY_SECONDS,
) -> FastAPI:
    """The HTTP application around a loaded ``allocator``.

    Args:
        allocator: the model ``method=gnn`` uses for instances of its family (its
            ``family_name``; put in eval mode here). ``/v1/model`` describes it.
        allocators: models of further families by family name. A family without one answers
            ``method=gnn`` with its shipped checkpoint.
        max_users: instances with more users get 413; the body byte limit derives from it.
        max_pairs: instances with more candidate (user, server) pairs get 413.
        exact_max_users: ``method=exact`` above this many users gets 413.
        exact_time_limit: seconds a method that takes ``time_limit`` may spend on a request
            (edge ``exact`` and ``gnn``, power ``optimum``; model building comes on top), and
            the most a request's own ``time_limit`` may ask. An ``exact`` solve stopped by the
            limit returns its repaired last iterate (status ``time limit reached``) and an
            inaccurate but finished one its answer, each with ``certified_optimal: false``; one
            that found nothing at all is answered 422 naming ``method``.
        checkpoint: path reported by ``/v1/model``.
        workers: threads validating and solving non-exact requests.
        max_pending: requests validated, solved or queued for it at once; beyond it, 503.
            Counted once the body has arrived, so slow or idle uploads never take a slot.
        body_timeout: seconds a request body may take to arrive in full; beyond it, 408.
    """
    # Every solve that takes a time limit gets this one: a limit no method accepts would answer
    # each exact and learned request with a 422 naming a `time_limit` the client never sent.
    check_time_limit(exact_time_limit, "exact_time_limit")
    models = dict(allocators or {})
    if allocator is not None:
        models[getattr(allocator, "family_name", "edge")] = allocator
    for model in models.values():
        model.eval()
    runtime = _Runtime(models, workers=workers)
    body_limit = max_body_bytes(max_users)
    limits = {
        "max_users": max_users,
        "max_pairs": max_pairs,
        "max_body_bytes": body_limit,
        "exact_max_users": exact_max_users,
        "exact_time_limit": exact_time_limit,
        "max_frame_slots": MAX_FRAME_SLOTS,
        "value_ranges": {
            name: {k: list(v) for k, v in family.value_ranges.items()}
            for name, family in families().items()
        },
    }
    if allocator is not None:
        model_info = _model_info(allocator, checkpoint, limits)
    else:  # no model given: the shipped one of each family answers method=gnn
        model_info = ModelInfo(
            checkpoint=None, hyperparameters={}, metadata={}, parameters=0, limits=limits
        ).model_dump()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.close()

    app = FastAPI(
        title="gnnalloc",
        summary="Learned fair resource allocation for edge and wireless networks, "
        "one engine for many problem families.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    # Every error, including FastAPI's own (404, 405, ...), has the one documented shape.
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # exc.headers carries e.g. the Allow header a 405 must have.
        return _error_response(exc.status_code, "$", str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "$"
        return _error_response(422, where, str(first.get("msg", "invalid request")))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return _error_response(500, "$", f"internal error: {type(exc).__name__}")

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> dict[str, str]:
        """Liveness: answers as long as the event loop runs, even during long solves."""
        return {"status": "ok"}

    @app.get("/v1/model", response_model=ModelInfo, tags=["service"])
    async def model() -> dict[str, Any]:
        """The loaded checkpoint: path, hyperparameters, metadata, parameter count, limits."""
        return model_info

    @app.get("/v1/methods", tags=["service"])
    async def methods() -> dict[str, Any]:
        """Every family with its formats, reference method and methods, each with the options
        ``/v1/allocate`` takes for it as query parameters (the library's others, such as a model
        object or a starting point, have no HTTP form)."""
        return {
            name: {
                "title": family.title,
                "instance_format": family.instance_format,
                "allocation_format": family.allocation_format,
                "allocation_formats": list(allocation_formats(family)),
                "reference_method": family.reference_method,
                "methods": {
                    m.name: {
                        "description": m.description, "kind": m.kind,
                        "options": offered_options(m, query_parameters),
                    }
                    for m in family.methods.values()
                },
            }
            for name, family in families().items()
        }

    size_fields = {name: _size_field(family) for name, family in families().items()}

    def prepare(body: bytes, method: str) -> tuple[ProblemFamily, Any]:
        data = _parse_json(body)
        family = _family_of_document(data)
        # The size limits count the family's decision-makers (users, links, clients:
        # `family.size`), not its other lists (an EUA instance's 432 inter-server links, a power
        # instance's K (K - 1) cross gains): first their list in the document, before the cost of
        # parsing it, then the parsed instance.
        field = size_fields[family.name]
        listed = data.get(field)
        count = len(listed) if isinstance(listed, list) else 0
        if count <= max_users and not (method == "exact" and count > exact_max_users):
            try:
                instance = family.parse_instance(data)
            except InstanceError as exc:
                raise _HTTPError(422, exc.field, exc.message) from None
            count = family.size(instance)
        # The method after the document, as the CLI checks them: a bad document is named first.
        try:
            check_method(family, method)
        except InputError as exc:
            raise _HTTPError(400, *_field_of(str(exc))) from None
        if count > max_users:
            raise _HTTPError(
                413, field,
                f"{count} {field} exceed this server's limit of {max_users} (--max-users)",
            )
        if method == "exact" and count > exact_max_users:
            raise _HTTPError(
                413, field,
                f"{count} {field} exceed the limit of {exact_max_users} for method=exact "
                "(--exact-max-users); use method=dual (near-optimal) or gnn",
            )
        pairs = int(getattr(instance, "num_pairs", 0))
        if pairs > max_pairs:
            raise _HTTPError(
                413, "users",
                f"{pairs} candidate (user, server) pairs exceed this server's limit of "
                f"{max_pairs} (--max-pairs)",
            )
        try:
            family.check_ranges(instance, family.value_ranges)
        except InstanceError as exc:
            raise _HTTPError(422, exc.field, exc.message) from None
        return family, instance

    def allocate_and_score(
        family: ProblemFamily, instance: Any, method: str, requested: dict[str, float] | None = None
    ) -> bytes:
        start = time.perf_counter()
        options: dict[str, Any] = dict(requested or {})
        entry = family.methods[method]
        # A requested option the method does not take: the library's one rule (`solve` applies it
        # too), its message listing only the query parameters a client can give.
        try:
            check_options(family, method, options, offered=query_parameters, kind="query parameters")
        except InputError as exc:
            raise _HTTPError(422, *_field_of(str(exc))) from None
        # Reference and learned methods that take a time limit always run under the server's (the
        # edge `gnn` refines anytime to its default proven gap); a classical one only when asked
        # for (dual refines anytime until it then), and never beyond the server's.
        if "time_limit" in options or (entry.kind in ("reference", "learned") and "time_limit" in entry.options):
            options["time_limit"] = min(options.get("time_limit", math.inf), exact_time_limit)
        # A time-sharing method runs one solve per slot: never more per request than the server
        # allows, whether the request asks them or the method picks them (e.g. a model's frame).
        if "max_slots" in entry.options:
            options["max_slots"] = MAX_FRAME_SLOTS
        try:
            if entry.kind == "learned":
                model = runtime.allocators.get(family.name)
                if model is not None and "allocator" in entry.options and entry.accepts(model):
                    options["allocator"] = model
                with runtime.learned_solves():  # the server's model or the family's shipped one
                    result = solve(instance, method, **options)
            else:
                result = solve(instance, method, **options)
        except InstanceError as exc:
            # A valid document the method cannot allocate (an sfl round whose clients cannot meet
            # their energy budgets at any split): named, as the CLI names it (exit 2).
            raise _HTTPError(422, exc.field, exc.message) from None
        except InputError as exc:
            # What the method refuses, as the CLI reports it (exit 2): a request option (one it
            # does not take, a value out of its range, two it refuses together, e.g. fair_time
            # with p5_rate) or an instance it does not handle (power `optimum` above its link
            # count, sfl `gnn` on a weighted-sum round). The library's messages start with the
            # field; one that names none is about the method. Any other ValueError is a bug in
            # the library, not the request's fault: the 500 handler logs it.
            field, message = _field_of(str(exc))
            raise _HTTPError(422, field, message) from None
        except SolverError as exc:
            # Valid, in-range input this method could not answer: Clarabel stopped at the time
            # limit before any usable iterate, or stalled, or the dual overflowed. Another method
            # can still serve the request, so name `method`.
            limit = options.get("time_limit")
            if method == "exact" and limit is not None and time.perf_counter() - start >= 0.95 * limit:
                whose = (f"this server's time limit of {limit:g} s (--exact-time-limit)"
                         if limit >= exact_time_limit else f"time_limit {limit:g} s")
                message = f"exact: no solution within {whose}; use method=dual or gnn"
            else:
                message = f"{method}: the solver failed on this instance ({exc})"
            raise _HTTPError(422, "method", message) from None
        report = family.score(instance, result.allocation, upper_bound=result.upper_bound)
        payload = {
            "allocation": family.dump_allocation(instance, result.allocation),
            "metrics": report.as_dict(),
            "timing": {"seconds": result.seconds, "method": method},
            "status": result.status,
            "certified_optimal": bool(result.certified_optimal),
        }
        # allow_nan=False: a non-finite number would be invalid JSON for the client; it can only
        # come from a library bug, which the generic handler reports as a 500.
        return json.dumps(payload, allow_nan=False).encode()

    @app.post(
        "/v1/allocate",
        response_model=AllocateResponse,
        responses=_ERROR_RESPONSES,
        tags=["allocation"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _request_schema()}
                },
            }
        },
    )
    async def allocate(
        request: Request,
        method: str = Query(
            "gnn",
            description="Allocation method.",
            json_schema_extra={"enum": list(METHODS)},
        ),
        gap_tol: float | None = Query(
            None, ge=0, allow_inf_nan=False,
            description="Refine until the proven per-weight gap is at most this (methods that take it, e.g. dual).",
        ),
        time_limit: float | None = Query(
            None, gt=0, allow_inf_nan=False,
            description="Seconds the solve may take, at most the server's --exact-time-limit.",
        ),
        slots: int | None = Query(
            None, ge=1, le=MAX_FRAME_SLOTS,
            description="Time-sharing methods (power: gnn_frame, wmmse_frame): slots of the frame, one solve each.",
        ),
        fair_time: float | None = Query(
            None, ge=0, le=1, allow_inf_nan=False,
            description="Time-sharing methods: the share of the frame's time spread evenly over all slots.",
        ),
        alpha: float | None = Query(
            None, ge=0, allow_inf_nan=False,
            description="Time-sharing methods: alpha of the scheduler's slot weights (1: proportional fair; "
            "not the instance's utility).",
        ),
        p5_rate: float | None = Query(
            None, ge=0, allow_inf_nan=False,
            description="Time-sharing methods, instead of fair_time: the least fair_time whose 5th-percentile "
            "average rate is at least this (bits/s/Hz).",
        ),
    ) -> Response:
        """Allocate an instance of any family (its ``format`` chooses) and score the allocation.

        The allocation is always feasible. ``exact`` and the edge ``gnn`` are bounded by the
        server's time limit; an uncertified result says so in ``status`` and ``certified_optimal``. ``dual`` is the
        smoothed dual solver: near-optimal on large instances, much faster than ``exact`` there.
        """
        try:
            if method not in METHODS:
                raise _HTTPError(
                    400, "method", f"unknown {method!r}, expected one of {', '.join(METHODS)}"
                )
            # A misspelt option (`gaptol`, `time-limit`) would otherwise run with the defaults,
            # where the CLI refuses an unknown option.
            unknown = sorted(set(request.query_params) - query_parameters)
            if unknown:
                raise _HTTPError(
                    422, unknown[0],
                    f"unknown query parameter, expected one of {', '.join(sorted(query_parameters))}",
                )
            # A repeated parameter is refused as the CLI refuses a repeated --option (the HTTP
            # framework would take the last), and an integer one must be written as an integer
            # (the framework would take "2.0" as 2, which the library refuses as a float).
            given = collections.Counter(name for name, _ in request.query_params.multi_items())
            repeated = sorted(name for name, times in given.items() if times > 1)
            if repeated:
                raise _HTTPError(422, repeated[0], "given twice")
            for name in integer_parameters:
                text = request.query_params.get(name)
                if text is not None and not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
                    raise _HTTPError(422, name, f"must be an integer, got {cut_message(repr(text), 40)}")
            requested = {
                k: v for k, v in (
                    ("gap_tol", gap_tol), ("time_limit", time_limit), ("slots", slots), ("fair_time", fair_time),
                    ("alpha", alpha), ("p5_rate", p5_rate),
                )
                if v is not None
            }
            # The body is read first, under a deadline: a slow or stalled upload costs a socket
            # and at most `body_limit` bytes for `body_timeout` seconds, never a compute slot.
            body = await _read_body(request, body_limit, body_timeout)
            if runtime.pending >= max_pending:
                return _error_response(
                    503, "$", f"{runtime.pending} requests in flight; retry later",
                    headers={"Retry-After": "1"},
                )
            runtime.pending += 1  # only touched on the event loop: no lock needed
            try:
                family, instance = await runtime.run(runtime.fast, prepare, body, method)
                del body
                content = await runtime.run(
                    runtime.pool(family, method), allocate_and_score, family, instance, method,
                    requested,
                )
            finally:
                runtime.pending -= 1
        except _HTTPError as exc:
            return _error_response(exc.status, exc.field, exc.message)
        except asyncio.CancelledError:
            # The graceful-shutdown timeout cancels requests still solving: an expected end, not
            # a crash (re-raised, uvicorn would log it with a traceback). The client gets a 503.
            logger.info("request cancelled by shutdown; its solve is abandoned")
            return _error_response(
                503, "$", "the server is shutting down; retry", headers={"Retry-After": "1"}
            )
        except ClientDisconnect:
            # A normal event (a cancelled upload, a client timeout): nobody is left to answer.
            # 499 is nginx's "client closed request"; the server drops it unsent.
            client = request.client
            logger.info("client %s disconnected before its request body arrived",
                        f"{client.host}:{client.port}" if client else "?")
            return Response(status_code=499)
        except Exception as exc:  # last resort; the fuzz tests assert it never happens
            logger.exception("unhandled error in /v1/allocate")
            return _error_response(500, "$", f"internal error: {type(exc).__name__}: {exc}")
        return Response(content=content, media_type="application/json")

    # The query parameters /v1/allocate takes: its handler's, besides the request itself; and
    # those of them declared integers (read from the same signature).
    query_parameters = frozenset(inspect.signature(allocate).parameters) - {"request"}
    hints = typing.get_type_hints(allocate)
    integer_parameters = tuple(sorted(name for name in query_parameters if hints.get(name) in (int, int | None)))

    def openapi() -> dict[str, Any]:
        # The body is read raw (see module docstring), so FastAPI does not see the families'
        # schemas; add each family's instance (and allocation) model with its sub-models to the
        # components the request body refers to.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for family in families().values():
                allocation = getattr(family, "allocation_schema", None)
                models = [family.instance_schema, *(allocation if isinstance(allocation, tuple) else (allocation,))]
                for model in filter(None, models):
                    component = model.model_json_schema(ref_template="#/components/schemas/{model}")
                    components.update(component.pop("$defs", {}))
                    components[model.__name__] = component
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _request_schema() -> dict[str, Any]:
    """The request body: one family's instance model, or any of them."""
    refs = [
        {"$ref": f"#/components/schemas/{family.instance_schema.__name__}"}
        for family in families().values()
    ]
    return refs[0] if len(refs) == 1 else {"oneOf": refs}


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refusing anything over ``limit`` bytes before reading it all, or not
    complete within ``timeout`` seconds (408)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _HTTPError(413, "$", f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:  # chunked uploads declare no length
                    raise _HTTPError(413, "$", f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise _HTTPError(
            408, "$", f"body not received within {timeout:g} s ({size} bytes arrived)"
        ) from None
    return b"".join(chunks)


def _version() -> str:
    from gnnalloc import __version__

    return __version__


# ------------------------------------------------------------------------------------- CLI
def _accepted(check: Callable[[Any], None], value: Any) -> bool:
    """Whether the library's ``check`` accepts ``value`` (a flag checked by the rule the library
    applies, not a copy of it)."""
    try:
        check(value)
    except InputError:
        return False
    return True


def serve_cli(args: argparse.Namespace) -> int:
    """``gnnalloc serve``: load the checkpoint once, then serve until SIGTERM/SIGINT.

    Returns 0 after a graceful shutdown, 2 (with one ``error: field: reason`` line) for a
    missing or unloadable checkpoint, a bad flag, or an address it cannot listen on.
    """
    import uvicorn

    for flag, value, ok in (
        ("max-users", args.max_users, args.max_users >= 1),
        ("max-pairs", args.max_pairs, args.max_pairs >= 1),
        ("exact-max-users", args.exact_max_users, args.exact_max_users >= 0),
        ("exact-time-limit", args.exact_time_limit, _accepted(check_time_limit, args.exact_time_limit)),
        ("port", args.port, 0 <= args.port <= 65535),
        ("workers", args.workers, 1 <= args.workers <= 64),
        ("body-timeout", args.body_timeout,
         math.isfinite(args.body_timeout) and args.body_timeout > 0),
    ):
        if not ok:
            print(f"error: {flag}: invalid value {value!r}", file=sys.stderr)
            return 2
    requested = None if args.checkpoint is None else str(args.checkpoint)
    try:
        models, checkpoint = load_models(requested)
    except (FileNotFoundError, ValueError) as exc:
        # The library's messages already start with "checkpoint: ".
        print(f"error: {cut_message(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # permissions, truncated archives, ...: one line, no traceback
        print(f"error: checkpoint: cannot load {requested!r}: {cut_message(str(exc))}",
              file=sys.stderr)
        return 2
    try:  # one intra-op thread per solve (GNNALLOC_THREADS); parallelism comes from --workers
        configure_threads()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = {
        "max_users": args.max_users,
        "max_pairs": args.max_pairs,
        "exact_max_users": args.exact_max_users,
        "exact_time_limit": args.exact_time_limit,
        "body_timeout": args.body_timeout,
        "checkpoint": checkpoint,
    }
    if args.workers > 1:
        del models  # loaded only to fail early; each worker loads its own
        return _serve_workers(args, {**options, "requested": requested})
    _warm_up()

    app = create_app(next(iter(models.values()), None), allocators=models, **options)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        workers=None,
        lifespan="on",
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        log_level="info",
        log_config=_log_config(),
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal to the handler that was
    # installed before it: with the defaults that would kill us with -SIGTERM or raise
    # KeyboardInterrupt. A handler that just notes the signal makes the graceful stop exit 0.
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        try:
            server.run()
        except SystemExit:  # uvicorn exits 1 when it cannot bind; it has logged why
            print(f"error: port: cannot listen on {args.host}:{args.port}", file=sys.stderr)
            return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    runtime: _Runtime = app.state.runtime
    runtime.close()
    if not server.started:
        print(f"error: port: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 2
    if runtime.busy:
        # A solve abandoned by the graceful timeout is still running in a daemon thread;
        # interpreter teardown under a running torch/Clarabel call is not worth the risk.
        logger.info("abandoning %d running solve(s)", runtime.busy)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


# How `gnnalloc serve --workers N` hands its options to the worker processes it spawns.
_WORKER_ENV = "GNNALLOC_SERVE_WORKER"


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with this module's lines (e.g. a client gone mid-upload) beside its own."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["gnnalloc"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _worker_app() -> FastAPI:
    """The app of one ``--workers`` process: its own model, threads and pools (stateless, so
    workers, like several hosts behind a load balancer, need not share anything)."""
    options = json.loads(os.environ[_WORKER_ENV])
    configure_threads()
    models, _ = load_models(options.pop("requested"))
    _warm_up()
    return create_app(next(iter(models.values()), None), allocators=models, **options)


def load_models(requested: str | None = None) -> tuple[dict[str, "nn.Module"], str | None]:
    """The models ``method=gnn`` serves, by family: ``requested`` (a checkpoint path) for its
    family, every other family's shipped model beside it; and the checkpoint ``/v1/model``
    describes (``requested``, else the first shipped one).

    Raises:
        FileNotFoundError, ValueError: naming ``checkpoint``.
    """
    from gnnalloc.core import get_family
    from gnnalloc.nn import checkpoint_family, load_checkpoint_data

    shipped = [
        str(family.default_checkpoint) for family in families().values()
        if family.default_checkpoint is not None and Path(family.default_checkpoint).is_file()
        and getattr(family, "load_allocator", None) is not None
    ]
    models: dict[str, Any] = {}
    for path in ([requested] if requested is not None else []) + shipped:
        data = load_checkpoint_data(path)
        family = get_family(checkpoint_family(data, path))
        if getattr(family, "load_allocator", None) is None:
            raise InputError(f"checkpoint: the {family.name} family has no learned model")
        if family.name not in models:  # --checkpoint replaces its family's shipped model
            models[family.name] = family.load_allocator(data, path)
    checkpoint = requested if requested is not None else (shipped[0] if shipped else None)
    return models, checkpoint


def _warm_up() -> None:
    """Each family's lazy set-up (e.g. compiled kernels), else the first request pays for it."""
    for family in families().values():
        warm_up = getattr(family, "warm_up", None)
        if warm_up is not None:
            warm_up()


def _serve_workers(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Serve with ``args.workers`` processes sharing one listening socket (uvicorn's supervisor:
    it restarts a worker that dies and stops them all on SIGTERM/SIGINT)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ[_WORKER_ENV] = json.dumps(options)
    config = uvicorn.Config(
        "gnnalloc.serve.app:_worker_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Seconds a worker may miss the supervisor's ping before it is killed and replaced: a
        # fresh interpreter importing torch on a busy machine misses uvicorn's default of 5.
        timeout_worker_healthcheck=120,
        lifespan="on",
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        log_level="info",
        log_config=_log_config(),
    )
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn has logged why
        print(f"error: port: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 2
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if any(process.exitcode == 3 for process in supervisor.processes):  # uvicorn's STARTUP_FAILURE
        print("error: workers: a worker process failed to start (see the log above)",
              file=sys.stderr)
        return 2
    return 0
