"""Pydantic models of the server's answers, the same for every family.

The families' own documents (instances, allocations, metrics) are described by each family's
models (edge: :mod:`gnnalloc.families.edge.schema`), which the OpenAPI schema includes.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

__all__ = ["AllocateResponse", "ErrorDetail", "ErrorResponse", "Health", "ModelInfo", "Timing"]


class Timing(BaseModel):
    """How long the method took (solver wall time, excluding HTTP and validation)."""

    seconds: float
    method: str


class AllocateResponse(BaseModel):
    """The answer of ``POST /v1/allocate``."""

    allocation: dict[str, Any] = Field(
        description="The allocation document of the instance's family (edge: AllocationV1)."
    )
    metrics: dict[str, Any] = Field(
        description="The family's score of the allocation (edge: Metrics)."
    )
    timing: Timing
    status: str = Field(description="'ok', or the exact solver's status ('optimal', ...).")
    certified_optimal: bool = Field(description="Whether the allocation is a certified optimum.")


class ErrorDetail(BaseModel):
    """What was wrong, with the JSON path of the offending field (``$`` for the whole body)."""

    field: str = Field(examples=["users[3].compute_min"])
    message: str = Field(examples=["must be > 0, got -1.0"])


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorDetail


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class ModelInfo(BaseModel):
    """The model the server loaded at startup."""

    checkpoint: Optional[str] = Field(description="Checkpoint path; null if built in memory.")
    hyperparameters: dict[str, Any]
    metadata: dict[str, Any]
    training: Optional[Any] = Field(
        default=None, description="Training configuration summary, if the checkpoint has one."
    )
    parameters: int = Field(description="Number of model parameters.")
    limits: dict[str, Any] = Field(description="Request limits of this server.")
