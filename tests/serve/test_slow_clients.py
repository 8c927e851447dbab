"""Slow, stalled and vanishing clients, driven at the ASGI level (no sockets): a body that never
arrives times out, idle uploads take no compute slot, a disconnect mid-upload is a quiet event."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import torch

from gnnalloc import random_instance
from gnnalloc.families.edge import Allocator
from gnnalloc.serve import create_app

BODY = json.dumps(random_instance(6, 3, 1.0, 0).to_dict()).encode()


def small_model() -> Allocator:
    torch.manual_seed(0)
    return Allocator(hidden=16, heads=2, layers=1)


def _scope(length: int) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/allocate", "raw_path": b"/v1/allocate",
        "query_string": b"method=equal", "root_path": "",
        "headers": [(b"content-length", str(length).encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }


async def _request(app: Any, parts: list[bytes], then: str = "complete") -> list[dict[str, Any]]:
    """Send ``parts`` of BODY; ``then`` is "complete" (the body ends), "stall" (nothing more ever
    arrives) or "disconnect" (the client goes away). Returns the messages the app sent."""
    chunks = list(parts)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk,
                    "more_body": bool(chunks) or then != "complete"}
        if then == "stall":
            await asyncio.Event().wait()  # forever
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(len(BODY)), receive, send)
    return sent


def _status(messages: list[dict[str, Any]]) -> int:
    return next(m["status"] for m in messages if m["type"] == "http.response.start")


def test_a_stalled_body_times_out_with_408() -> None:
    app = create_app(small_model(), body_timeout=0.3)

    async def run() -> list[dict[str, Any]]:
        return await asyncio.wait_for(_request(app, [BODY[:10]], then="stall"), timeout=10)

    messages = asyncio.run(run())
    assert _status(messages) == 408
    body = json.loads(b"".join(m.get("body", b"") for m in messages))
    assert body["error"]["field"] == "$" and "not received" in body["error"]["message"]


def test_stalled_uploads_take_no_compute_slot() -> None:
    """More stalled uploads than compute slots: a complete request is still answered 200."""
    app = create_app(small_model(), max_pending=2)

    async def run() -> int:
        stalled = [asyncio.ensure_future(_request(app, [BODY[:10]], then="stall")) for _ in range(8)]
        await asyncio.sleep(0.2)  # let them all start reading
        try:
            return _status(await asyncio.wait_for(_request(app, [BODY]), timeout=60))
        finally:
            for task in stalled:
                task.cancel()
            await asyncio.gather(*stalled, return_exceptions=True)

    assert asyncio.run(run()) == 200


def test_a_disconnect_mid_upload_is_one_quiet_log_line(caplog) -> None:
    app = create_app(small_model())
    with caplog.at_level(logging.DEBUG, logger="gnnalloc.serve"):
        messages = asyncio.run(_request(app, [BODY[:10], BODY[10:20]], then="disconnect"))
    records = [r for r in caplog.records if r.name.startswith("gnnalloc")]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno <= logging.INFO and records[0].exc_info is None
    assert "disconnected" in records[0].getMessage()
    assert _status(messages) != 500
