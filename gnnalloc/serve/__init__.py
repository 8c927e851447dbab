"""HTTP serving of every family's methods (``gnnalloc serve``): FastAPI app factory and CLI entry point.

``create_app(allocator)`` builds the application without touching the file system, so tests and
embedding code can serve an in-memory model; ``serve_cli`` is what ``gnnalloc serve`` runs.
"""

from gnnalloc.serve.app import METHODS, create_app, max_body_bytes, serve_cli

__all__ = ["METHODS", "create_app", "max_body_bytes", "serve_cli"]
