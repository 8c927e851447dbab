"""Pydantic models of the ``gnnalloc.power/v1``, ``gnnalloc.power-allocation/v1`` and
``gnnalloc.power-frame/v1`` documents.

They exist for the OpenAPI schema; request bodies are validated by
:meth:`PowerInstance.from_dict`, the single source of truth, so that errors name fields exactly
as the library does (``links[3].pmax``). Keep these in step with ``_instance.py``.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CrossGainV1", "LinkV1", "PowerAllocationV1", "PowerFrameSlot", "PowerFrameV1", "PowerInstanceV1", "PowerLinkAllocation"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinkV1(_Strict):
    """A transmitter-receiver link."""

    id: str = Field(min_length=1, description="Unique link name.")
    pmax: float = Field(gt=0, description="Largest transmit power.")
    gain: Optional[float] = Field(
        default=None, ge=0,
        description="Direct power gain from the link's transmitter to its receiver (absent with gain_matrix).",
    )
    weight: float = Field(default=1.0, gt=0, description="Utility weight.")
    rate_min: Optional[float] = Field(
        default=None, gt=0,
        description="Minimum rate in bits/s/Hz; required (on every link) by the alpha_fair utility.",
    )


class CrossGainV1(_Strict):
    """The power gain from one link's transmitter to another link's receiver."""

    rx: str = Field(min_length=1, description="Id of the link whose receiver is interfered with.")
    tx: str = Field(min_length=1, description="Id of the interfering link (not rx).")
    gain: float = Field(ge=0, description="Cross power gain.")


class PowerInstanceV1(_Strict):
    """An interference channel: links sharing a band, with a per-link or dense gain form."""

    format: Literal["gnnalloc.power/v1"]
    noise: float = Field(gt=0, description="Receiver noise power (units of gain times power).")
    utility: Literal["sum_rate", "alpha_fair"] = Field(default="sum_rate")
    alpha: float = Field(default=1.0, gt=0, le=100, description="Fairness parameter of alpha_fair.")
    penalty: float = Field(default=10.0, ge=1, description="Slope below rate_min of alpha_fair.")
    links: list[LinkV1] = Field(min_length=1)
    interference: Optional[list[CrossGainV1]] = Field(
        default=None, description="Cross gains; absent pairs have gain 0. Not with gain_matrix."
    )
    gain_matrix: Optional[list[list[float]]] = Field(
        default=None,
        description="Dense K x K gains (row = receiver, column = transmitter, diagonal = direct); "
        "instead of per-link gain and interference.",
    )


class PowerLinkAllocation(_Strict):
    """One link's transmit power."""

    id: str = Field(min_length=1)
    power: float = Field(description="Transmit power, within [0, pmax] when feasible.")


class PowerAllocationV1(_Strict):
    """Transmit powers, every link exactly once."""

    format: Literal["gnnalloc.power-allocation/v1"]
    links: list[PowerLinkAllocation]


class PowerFrameSlot(_Strict):
    """One slot of a frame: its share of the time and every link's power during it."""

    time_share: float = Field(ge=0, le=1, description="Share of the frame's time (the shares sum to 1).")
    links: list[PowerLinkAllocation]


class PowerFrameV1(_Strict):
    """Power vectors shared in time; each link's rate is its time-weighted average over the slots."""

    format: Literal["gnnalloc.power-frame/v1"]
    slots: list[PowerFrameSlot] = Field(min_length=1, max_length=1024)
