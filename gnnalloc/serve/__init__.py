"""HTTP serving of every family's methods (``gnnalloc serve``): FastAPI app factory and CLI entry
point (the optional ``[serve]`` extra: fastapi and uvicorn).

``create_app(allocator)`` builds the application without touching the file system, so tests and
embedding code can serve an in-memory model; ``load_models`` loads what ``gnnalloc serve`` serves
(a checkpoint and every other family's shipped model); ``serve_cli`` is what ``gnnalloc serve``
runs.
"""

try:
    from gnnalloc.serve.app import METHODS, create_app, load_models, max_body_bytes, serve_cli
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    if exc.name not in ("fastapi", "starlette", "uvicorn"):
        raise
    raise ImportError(
        f"gnnalloc.serve needs {exc.name}: pip install 'gnnalloc[serve]'"
    ) from exc

__all__ = ["METHODS", "create_app", "load_models", "max_body_bytes", "serve_cli"]
