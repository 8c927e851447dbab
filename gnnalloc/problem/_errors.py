"""Errors raised on bad input. Every message names the offending field and its value."""

from __future__ import annotations

__all__ = ["InstanceError", "AllocationError", "SolverError"]


class InstanceError(ValueError):
    """A network instance is malformed.

    Args:
        field: JSON path of the offending field, e.g. ``users[3].compute_min``.
        message: what is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class AllocationError(InstanceError):
    """An allocation does not fit its instance (unknown user, non-candidate server, ...)."""


class SolverError(RuntimeError):
    """A solver failed or returned a result that is not certified optimal."""
