"""The `Plan`: what the planner decided, as plain data that round-trips through JSON.

Everything downstream (engine launch arguments, Kubernetes rendering, bench calibration) reads a
`Plan`, never the planner's internals.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from llmhost.errors import UsageError

# Version of the Plan JSON layout. Bump it when a field changes meaning or goes away; a plan file
# of another version is refused with a message naming both versions.
SCHEMA_VERSION = 2


@dataclass
class OwnInputs:
    """`--own`: buying the servers. Defaults are stated assumptions, not quotes."""

    years: float = 4.0  # life over which the purchase is spread (straight line, no resale)
    usd_per_kwh: float = 0.12
    pue: float = 1.4  # facility power / IT power (cooling, distribution)
    ops_overhead_per_year: float = 0.10  # operations, support, colocation: share of hardware/yr
    server_price_usd: float | None = None  # per server; default from owned.yaml
    server_kw: float | None = None  # rated draw per server; default from owned.yaml


@dataclass
class Requirements:
    """What the user asked for."""

    model: str
    context: int
    prompt_tokens: int
    output_tokens: int
    tokens_per_day: float | None = None
    requests_per_s: float | None = None
    ttft_s: float | None = None
    min_user_tokens_per_s: float = 0.0
    min_precision: str | None = None
    spot: bool = False
    active_hours: float | None = None
    utilization: float = 0.5
    peak_to_mean: float = 2.0
    provider: str | None = None
    gpus: list[str] = field(default_factory=list)
    quantizations: list[str] = field(default_factory=list)
    concurrency: int | None = None  # evaluate this many concurrent users instead of searching
    kv_cache_dtype: str = "auto"  # auto (the weights' 16-bit type) or fp8
    tensor_parallel: int | None = None  # fix the TP degree instead of searching it
    price_tiers: list[str] = field(default_factory=list)  # empty: on-demand (+ spot if spot)
    headroom: float = 0.3  # share of each replica kept free at peak
    growth_per_month: float = 0.0  # traffic growth, e.g. 0.1 = +10% a month
    horizon_months: int = 0  # plan the fleet at this many months from now too
    own: OwnInputs | None = None  # price owned servers too (--own)


@dataclass
class HostedComparison:
    """One hosted API next to a self-hosted candidate."""

    provider: str
    api_model: str
    same_model: bool
    input_per_million_usd: float
    output_per_million_usd: float
    cost_per_day_usd: float | None
    break_even_tokens_per_day: float | None
    source: str
    as_of: str
    # Mean tokens/day the fleet can carry at this traffic shape (capacity x (1 - headroom) /
    # peak-to-mean), the mean utilisation break-even needs, and whether it is beyond reach.
    fleet_capacity_tokens_per_day: float | None = None
    break_even_utilization: float | None = None
    beyond_capacity: bool = False


@dataclass
class MemoryBreakdown:
    """Bytes per GPU (or per host for CPU engines) and what they hold."""

    device_bytes: int
    budget_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    per_sequence_kv_bytes: int
    shortfall_bytes: int = 0


@dataclass
class Shape:
    """How one replica is split over GPUs: tensor, pipeline and expert parallel degrees."""

    tp: int = 1
    pp: int = 1  # pipeline stages; more than one stage spans nodes
    ep: int = 1  # expert parallel degree (MoE models); 1 for dense models

    @property
    def gpus(self) -> int:
        """GPUs one replica needs (EP reuses the TP x PP GPUs, it adds none)."""
        return self.tp * self.pp


@dataclass
class CurvePoint:
    """What one replica does with `concurrency` users in a closed loop."""

    concurrency: int
    running: int  # sequences decoding at once (the rest wait in the queue)
    per_user_tokens_per_s: float
    ttft_s: float
    aggregate_tokens_per_s: float
    tpot_s: float = 0.0


@dataclass
class EngineArgs:
    """The engine settings a candidate was planned with; launch and `render` use exactly these.

    Names follow vLLM's `EngineArgs` (`--max-num-seqs` and so on); other engines map what they
    have (llama.cpp: slots = max_num_seqs, context = max_model_len x slots).
    """

    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    kv_cache_dtype: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    enable_expert_parallel: bool = False
    gpu_memory_utilization: float = 0.9


@dataclass
class NodePrice:
    """The node a candidate is priced on: provider, tier, instance and shape, and how many."""

    provider: str
    tier: str  # on_demand | spot | community | reserved_1y | reserved_3y
    instance: str
    gpus_per_node: int
    vcpu: int
    ram_gib: float
    node_hourly_usd: float
    nodes: int
    source: str
    as_of: str


@dataclass
class Candidate:
    """One way to serve the model: GPU type and count, format, engine, speed and cost."""

    gpu: str
    gpu_count: int
    quantization: str
    engine: str
    fits: bool
    weights_bytes: int
    max_kv_tokens: int
    max_concurrent_sequences: int
    decode_tokens_per_s_single: float
    decode_tokens_per_s_aggregate: float
    hourly_cost_usd: float | None
    monthly_cost_usd: float | None
    cost_per_million_output_tokens_usd: float | None
    reasons: list[str]
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    replicas: int = 1
    gpus_per_replica: int = 1
    kv_cache_dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    memory: MemoryBreakdown | None = None
    operating_batch: int = 1
    per_user_tokens_per_s: float = 0.0
    prefill_tokens_per_s: float = 0.0
    ttft_s: float = 0.0
    requests_per_s_capacity: float = 0.0
    provider: str | None = None
    price_per_gpu_hour_usd: float | None = None
    spot: bool = False
    monthly_cost_24x7_usd: float | None = None
    control_plane_monthly_usd: float = 0.0
    storage_monthly_usd: float = 0.0
    load_time_s: float = 0.0
    meets_targets: bool = True
    hosted: list[HostedComparison] = field(default_factory=list)
    shape: Shape = field(default_factory=Shape)
    engine_args: EngineArgs | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    node_price: NodePrice | None = None


@dataclass
class BillLine:
    """One line of the whole bill: what, how many, at what unit price, per month, and why."""

    item: str
    quantity: str
    unit_price: str
    monthly_usd: float
    tier: str = ""  # the price tier for node lines (on_demand, spot, ...), else ""
    basis: str = ""  # how the line is computed, or the assumption it rests on
    source: str = ""
    as_of: str = ""


@dataclass
class Bill:
    """The whole monthly bill of the recommendation, line by line, in US dollars."""

    provider: str
    lines: list[BillLine]
    monthly_usd: float
    engine_hours_per_month: float
    assumptions: list[str] = field(default_factory=list)


@dataclass
class Ownership:
    """Owning the engine servers against renting them, per month and over the servers' life."""

    servers: int
    gpus_per_server: int
    purchase_usd_per_server: float
    power_kw_per_server: float
    inputs: OwnInputs
    monthly_depreciation_usd: float
    monthly_power_usd: float
    monthly_ops_usd: float
    monthly_usd: float
    total_own_usd: float
    total_on_demand_usd: float | None
    total_spot_usd: float | None
    on_demand_basis: str
    spot_basis: str
    source: str
    as_of: str


@dataclass
class GrowthStep:
    """The fleet the traffic needs at one month: shown where the replica count changes."""

    month: int
    tokens_per_day: float | None
    peak_requests_per_s: float
    replicas: int
    nodes: int
    engine_monthly_usd: float


@dataclass
class Plan:
    """The planner's answer for one model and one set of requirements."""

    model: str
    total_params: int
    active_params: int
    weights_bytes: int
    kv_bytes_per_token: int
    kv_bytes_per_sequence: int
    requirements: Requirements
    candidates: list[Candidate]
    recommendation: Candidate | None
    recommendation_reason: str
    alternatives: list[str] = field(default_factory=list)
    model_source: str = ""
    # The one format the source's weights exist in (a pre-quantized checkpoint), else None.
    source_format: str | None = None
    architecture: dict[str, Any] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    bill: Bill | None = None
    growth: list[GrowthStep] = field(default_factory=list)
    ownership: Ownership | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The plan as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan written by `to_dict` (or read back from JSON).

        A plan of another schema version is refused with a message naming both versions.
        """
        version = data.get("schema_version", 1 if "candidates" in data else SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise UsageError(
                f"this plan file has schema version {version}; this llmhost reads version "
                f"{SCHEMA_VERSION}: run `llmhost plan` again to write a current one"
            )
        return cls(
            **{
                **data,
                "requirements": _requirements(data["requirements"]),
                "candidates": [_candidate(c) for c in data["candidates"]],
                "recommendation": _candidate(data["recommendation"])
                if data.get("recommendation")
                else None,
                "bill": _bill(data["bill"]) if data.get("bill") else None,
                "growth": [GrowthStep(**g) for g in data.get("growth", [])],
                "ownership": _ownership(data["ownership"]) if data.get("ownership") else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Parse a plan saved with `to_json`."""
        return cls.from_dict(json.loads(text))


def _requirements(data: dict[str, Any]) -> Requirements:
    own = data.get("own")
    return Requirements(**{**data, "own": OwnInputs(**own) if own else None})


def _ownership(data: dict[str, Any]) -> Ownership:
    return Ownership(**{**data, "inputs": OwnInputs(**data["inputs"])})


def _bill(data: dict[str, Any]) -> Bill:
    return Bill(**{**data, "lines": [BillLine(**line) for line in data["lines"]]})


def _candidate(data: dict[str, Any]) -> Candidate:
    memory = data.get("memory")
    args = data.get("engine_args")
    return Candidate(
        **{
            **data,
            "memory": MemoryBreakdown(**memory) if memory else None,
            "hosted": [HostedComparison(**h) for h in data.get("hosted", [])],
            "shape": Shape(**data.get("shape", {})),
            "engine_args": EngineArgs(**args) if args else None,
            "curve": [CurvePoint(**p) for p in data.get("curve", [])],
            "node_price": NodePrice(**data["node_price"]) if data.get("node_price") else None,
        }
    )
