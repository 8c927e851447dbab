"""Pydantic models mirroring the ``gnnalloc.instance/v1`` and ``gnnalloc.allocation/v1`` formats.

They exist for the OpenAPI schema at ``/docs`` and for typed responses. Request bodies are *not*
validated with them: :meth:`gnnalloc.families.edge.problem.Instance.from_dict` stays the single
source of truth, so an error names the field exactly as the library and the command line do
(``users[3].compute_min``). Keep these models in step with
``gnnalloc/families/edge/problem/_instance.py``.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AllocationV1", "InstanceV1", "Link", "Metrics", "Server", "User", "UserAllocation"]


class _Strict(BaseModel):
    # The v1 format rejects unknown fields; say so in the schema too.
    model_config = ConfigDict(extra="forbid")


class Server(_Strict):
    """An edge server."""

    id: str = Field(min_length=1, description="Unique server name.")
    compute: float = Field(ge=0, description="Compute capacity.")
    bandwidth: float = Field(ge=0, description="Access bandwidth capacity of its users.")
    services: Optional[list[str]] = Field(
        default=None, description="Hosted services; absent or null means every service."
    )


class Link(_Strict):
    """An undirected link between two servers, used by migrated workloads."""

    a: str = Field(min_length=1, description="Id of one endpoint server.")
    b: str = Field(min_length=1, description="Id of the other endpoint server (not ``a``).")
    capacity: float = Field(ge=0, description="Link capacity.")


class User(_Strict):
    """A user homed at one server, with minimum demands."""

    id: str = Field(min_length=1, description="Unique user name.")
    server: str = Field(min_length=1, description="Id of the home server.")
    service: Optional[str] = Field(
        default=None, description="Requested service; absent or null if any server may run it."
    )
    compute_min: float = Field(gt=0, description="Minimum compute demand.")
    bandwidth_min: float = Field(gt=0, description="Minimum access bandwidth demand.")
    data_rate: float = Field(
        default=0.0, ge=0, description="Link load per unit of compute migrated to a neighbour."
    )
    weight: float = Field(default=1.0, gt=0, description="Utility weight.")


class InstanceV1(_Strict):
    """A ``gnnalloc.instance/v1`` document (JSON numbers must be finite: no NaN/Infinity)."""

    format: Literal["gnnalloc.instance/v1"]
    penalty: float = Field(default=10.0, ge=1, description="Slope of the penalty below a minimum.")
    alpha: float = Field(default=1.0, gt=0, le=100, description="Fairness parameter (1 = log utility).")
    servers: list[Server]
    links: list[Link] = Field(default_factory=list)
    users: list[User]


class UserAllocation(_Strict):
    """One user's decisions."""

    id: str
    bandwidth: float = Field(description="Access bandwidth granted at the home server.")
    compute: dict[str, float] = Field(description="Compute per candidate server id.")


class AllocationV1(_Strict):
    """A ``gnnalloc.allocation/v1`` document: every user of the instance exactly once."""

    format: Literal["gnnalloc.allocation/v1"]
    users: list[UserAllocation]


class Metrics(BaseModel):
    """:class:`gnnalloc.families.edge.Score` of the returned allocation."""

    objective: float
    gap: Optional[float] = Field(description="Gap to a reference allocation; null when none.")
    jain: float
    met_minimum: float
    min_utility: float
    utility_variance: float
    max_violation: float = Field(
        description="Largest relative constraint violation (0 = feasible)."
    )
    users_without_candidate: int
    gap_bound: Optional[float] = Field(
        default=None,
        description=(
            "Proven upper bound on the mean per-user gap to the optimum (methods exact, dual and gnn: "
            "a Lagrangian bound at their prices); null for the others, and where the bound proves nothing."
        ),
    )
