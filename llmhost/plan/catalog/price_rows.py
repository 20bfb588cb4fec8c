"""Typed rows of a price file (prices.yaml or a user's `--prices FILE`), validated one by one.

A row with a number typed as text, an unknown tier, a missing date or an unknown field is
refused with one line naming the file, the row and the field.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmhost.errors import UsageError

Tier = Literal["on_demand", "spot", "community", "reserved_1y", "reserved_3y"]
TIERS: tuple[str, ...] = get_args(Tier)
TIER_LABELS = {
    "on_demand": "on-demand",
    "spot": "spot/preemptible",
    "community": "community cloud (interruptible, no SLA)",
    "reserved_1y": "reserved/committed 1 year",
    "reserved_3y": "reserved/committed 3 years",
}
# Tiers whose capacity can be taken back at short notice: deploy schedules them as spot.
INTERRUPTIBLE_TIERS = ("spot", "community")


class _Row(BaseModel):
    """Common rules: no unknown fields, no text where a number belongs, a dated source."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    source: str = Field(min_length=1)
    as_of: str
    note: str = ""

    @field_validator("as_of", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> str:
        """Accept YAML dates and ISO strings; refuse anything else."""
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return datetime.date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


class GpuPrice(_Row):
    """One provider's price for one node (VM or bare-metal instance) with GPUs, in one tier.

    `node_hourly` is the whole node (GPUs, vCPU and RAM together); `gpus`, `vcpu` and `ram_gib`
    are its shape. Providers that sell single GPUs list a 1-GPU node.
    """

    gpu: str
    provider: str
    tier: Tier
    instance: str = Field(min_length=1)
    gpus: int = Field(ge=1)
    vcpu: int = Field(ge=1)
    ram_gib: float = Field(gt=0)
    node_hourly: float = Field(gt=0)

    @property
    def per_gpu_hour(self) -> float:
        """The node price spread over its GPUs."""
        return self.node_hourly / self.gpus

    @property
    def spot(self) -> bool:
        """True when the capacity can be reclaimed (spot or community cloud)."""
        return self.tier in INTERRUPTIBLE_TIERS


class ProviderFee(_Row):
    """A per-provider price that is not per GPU (control plane $/h, storage $/GB-month)."""

    provider: str
    price: float = Field(ge=0)


def validated(cls: type[_Row], row: Any, origin: str, section: str, index: int) -> Any:
    """`row` as a `cls`, or a one-line error naming the file, section, row number and field."""
    where = f"{origin}: {section} row {index + 1}"
    if not isinstance(row, dict):
        raise UsageError(f"{where}: expected a mapping, got {type(row).__name__}")
    try:
        return cls.model_validate(row)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "row"
        what = f" ({row.get('gpu') or row.get('provider')})" if "provider" in row else ""
        got = f", got {err['input']!r}" if "input" in err and err["type"] != "missing" else ""
        raise UsageError(f"{where}{what}: field '{field}': {err['msg']}{got}") from None


class SystemNode(_Row):
    """A provider's general-purpose VM for the system pods (gateway, Redis, Prometheus)."""

    provider: str
    instance: str = Field(min_length=1)
    vcpu: int = Field(ge=1)
    ram_gib: float = Field(gt=0)
    node_hourly: float = Field(gt=0)


class RwxStorage(_Row):
    """The ReadWriteMany storage class render asks for: $/GB-month and its minimum size."""

    provider: str
    storage_class: str = Field(min_length=1)
    price: float = Field(ge=0)
    minimum_gb: float = Field(ge=0)


class BillAssumptions(_Row):
    """The bill's own assumptions, stated in the report: system sizing, egress, store size."""

    gateway_rps_per_vcpu: float = Field(gt=0)
    gateway_min_replicas: int = Field(ge=1)
    gateway_vcpu_per_replica: float = Field(gt=0)
    redis_vcpu: float = Field(ge=0)
    prometheus_vcpu: float = Field(ge=0)
    system_min_nodes: int = Field(ge=1)
    system_vcpu_usable: float = Field(gt=0, le=1)
    egress_gb_per_million_output_tokens: float = Field(ge=0)
    store_gb: float = Field(ge=0)


class OwnedServer(_Row):
    """One GPU server bought outright: its GPUs, purchase price and rated power draw."""

    gpu: str
    gpus: int = Field(ge=1)
    purchase_usd: float = Field(gt=0)
    power_kw: float = Field(gt=0)


class Checkpoint(_Row):
    """A pre-quantized checkpoint of a catalog model in one weight format."""

    model: str
    format: str
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
