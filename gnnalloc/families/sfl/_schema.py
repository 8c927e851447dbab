"""Pydantic models of the ``gnnalloc.sfl/v1`` and ``gnnalloc.sfl-allocation/v1`` documents, for
OpenAPI. Requests are validated by :meth:`SflInstance.from_dict` (the single source of truth that
names fields); keep these in step with ``_instance.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SflAllocationV1", "SflInstanceV1"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SflServer(_Strict):
    """The training server and its band."""

    bandwidth: float = Field(gt=0, description="Shared uplink band W (Hz).")
    noise_psd: float = Field(gt=0, description="Noise power spectral density N0 (W/Hz).")
    cpu: float = Field(gt=0, description="Server speed (FLOP/s).")
    downlink_rate: float = Field(gt=0, description="Gradient broadcast rate (bits/s).")


class SflLayer(_Strict):
    """A candidate split layer (the model is split after it)."""

    name: str = Field(min_length=1, description="Unique layer name.")
    device_flops: float = Field(gt=0, description="Per-sample training FLOPs up to the split.")
    server_flops: float = Field(ge=0, description="Per-sample training FLOPs after the split.")
    activation_bits: float = Field(gt=0, description="Per-sample bits uploaded at the split.")
    gradient_bits: float = Field(ge=0, description="Per-sample bits downloaded at the split.")
    device_model_bits: float = Field(ge=0, description="Bits of the client-side model, per round.")


class SflClient(_Strict):
    """A training client."""

    id: str = Field(min_length=1, description="Unique client name.")
    samples: float = Field(gt=0, description="Samples per round.")
    gain: float = Field(gt=0, description="Channel power gain.")
    cpu_min: float = Field(gt=0, description="Lowest CPU frequency (cycles/s).")
    cpu_max: float = Field(gt=0, description="Highest CPU frequency (cycles/s), >= cpu_min.")
    power_min: float = Field(ge=0, description="Lowest transmit power (W).")
    power_max: float = Field(gt=0, description="Highest transmit power (W), >= power_min.")
    energy_max: float = Field(gt=0, description="Energy budget per round (J).")
    kappa: float = Field(gt=0, description="Effective switched capacitance.")
    cycles_per_flop: float = Field(default=1.0, gt=0, description="CPU cycles per FLOP.")
    weight: float = Field(default=1.0, gt=0, description="Weight in the weighted-sum objective.")


class SflInstanceV1(_Strict):
    """A ``gnnalloc.sfl/v1`` document (numbers must be finite)."""

    format: Literal["gnnalloc.sfl/v1"]
    objective: Literal["minmax", "weighted_sum"] = "minmax"
    server: SflServer
    layers: list[SflLayer] = Field(min_length=1)
    clients: list[SflClient] = Field(min_length=1)


class SflClientAllocation(_Strict):
    """One client's decisions."""

    id: str
    layer: str = Field(description="Name of the split layer.")
    bandwidth_share: float = Field(ge=0, le=1)
    cpu: float = Field(gt=0)
    power: float = Field(ge=0)


class SflAllocationV1(_Strict):
    """A ``gnnalloc.sfl-allocation/v1`` document."""

    format: Literal["gnnalloc.sfl-allocation/v1"]
    clients: list[SflClientAllocation]
