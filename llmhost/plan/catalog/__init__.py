"""The catalog: models, GPUs, weight formats, engine profiles and prices, read from YAML files.

The files beside this module are the data; this module only turns them into typed values and
answers look-ups with helpful errors. A user's own price file is merged over the shipped one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from llmhost.errors import UnknownChoiceError, UsageError
from llmhost.plan.architecture import ModelSpec
from llmhost.plan.catalog.price_rows import (
    TIERS,
    BillAssumptions,
    Checkpoint,
    GpuPrice,
    OwnedServer,
    ProviderFee,
    RwxStorage,
    SystemNode,
    validated,
)

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Gpu:
    """One accelerator type (or the host CPU, id `cpu`)."""

    id: str
    name: str
    memory_mib: int | None
    bandwidth_gbs: float
    tflops_bf16: float
    tflops_fp8: float | None
    compute_capability: float | None
    has_bf16: bool
    vllm_formats: tuple[str, ...]
    interconnect: str
    source: str
    as_of: str
    memory_gb: float | None = None
    link_gbs: float = 0.0  # GPU-to-GPU within a node, as all-reduce sees it (GB/s per GPU)
    link_latency_us: float = 0.0
    link_source: str = ""
    network_gbs: float = 12.5  # between nodes, per GPU
    network_latency_us: float = 30.0

    @property
    def is_cpu(self) -> bool:
        """True for the host CPU pseudo-GPU served by llama.cpp."""
        return self.id == "cpu"

    @property
    def memory_bytes(self) -> int:
        """Total device memory in bytes."""
        if self.memory_mib is None:
            raise UsageError(f"GPU '{self.id}' has no memory size; set it with --gpu-memory-mib")
        return self.memory_mib * MIB


@dataclass(frozen=True)
class WeightFormat:
    """A weight format: bits per tensor role, or llama.cpp block types for GGUF formats."""

    id: str
    precision_rank: int
    engines: tuple[str, ...]
    compute: str
    source: str
    as_of: str
    bits: dict[str, float] = field(default_factory=dict)
    per_row_scale_bits: float = 0.0
    gguf: dict[str, str] = field(default_factory=dict)

    @property
    def is_gguf(self) -> bool:
        """True for llama.cpp's block-quantized formats."""
        return bool(self.gguf)


@dataclass(frozen=True)
class GgufType:
    """A llama.cpp tensor type: bits per weight, block length and the type used when rows misfit."""

    bits: float
    block: int
    fallback: str | None


@dataclass(frozen=True)
class EngineProfile:
    """Defaults and efficiency factors of one serving engine."""

    id: str
    bandwidth_efficiency: float
    compute_efficiency: float
    tensor_parallel_efficiency: float
    step_overhead_ms: float
    kv_dtype_bytes: int
    load_gbps: float
    startup_s: float
    source: str
    as_of: str
    gpu_memory_utilization: float = 1.0
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    block_size: int = 16
    non_torch_mib: float = 0.0
    nccl_mib: float = 0.0
    cuda_graph_mib: float = 0.0
    n_ubatch: int = 512
    n_batch: int = 2048
    offload_link_gbs: float = 0.0
    # Batch defaults by GPU class (vLLM's EngineArgs.get_batch_defaults, API server): GPUs with
    # at least `large_gpu_min_gib` of memory whose name lacks `large_gpu_excluded` get these.
    large_gpu_min_gib: float = 0.0
    large_gpu_excluded: str = ""
    large_max_num_seqs: int = 0
    large_max_num_batched_tokens: int = 0
    # Step model terms (llmhost.plan.step): GEMM efficiency reaches half its peak at this many
    # tokens; CPU work per running sequence per step; fixed cost per request in TTFT;
    # expert-parallel load imbalance (busiest GPU / mean).
    gemm_half_m: float = 0.0
    step_overhead_per_seq_us: float = 0.0
    request_overhead_ms: float = 0.0
    moe_ep_imbalance: float = 1.0
    moe_tp_min_slice: int = 0
    sampler_bytes_per_logit: float = 4.0
    # vLLM schedules the next step while one runs (async scheduling): one more batch in flight.
    async_scheduling: bool = False


@dataclass(frozen=True)
class NodeSize:
    """The most GPUs of one type that one provider puts in one machine (one node)."""

    gpu: str
    provider: str
    gpus_per_node: int
    instance: str
    source: str
    as_of: str


# Node size assumed for a GPU no provider row covers: the common 8-GPU server.
COMMON_NODE_GPUS = 8


@dataclass(frozen=True)
class HostedApi:
    """A hosted API's list price per 1M tokens; `model` is a catalog id or `any`."""

    provider: str
    api_model: str
    model: str
    input: float
    output: float
    source: str
    as_of: str
    note: str = ""


@dataclass(frozen=True)
class BillData:
    """Prices and assumptions for the bill's lines besides the engine nodes (bill.yaml)."""

    system_nodes: dict[str, SystemNode]
    rwx_storage: dict[str, RwxStorage]
    egress_gb: dict[str, ProviderFee]
    backup_gb_month: dict[str, ProviderFee]
    assumptions: BillAssumptions


def load_bill_data(data: Any, origin: str) -> BillData:
    """The bill's rows from a mapping, each validated (one clear line per bad row)."""
    if not isinstance(data, dict):
        raise UsageError(f"{origin}: expected a mapping")

    def rows(name: str, cls: type[Any]) -> dict[str, Any]:
        items = data.get(name) or []
        if not isinstance(items, list):
            raise UsageError(f"{origin}: {name} must be a list of rows")
        return {
            r.provider: r for r in (validated(cls, x, origin, name, i) for i, x in enumerate(items))
        }

    if "assumptions" not in data:
        raise UsageError(f"{origin}: missing the 'assumptions' section")
    return BillData(
        system_nodes=rows("system_nodes", SystemNode),
        rwx_storage=rows("rwx_storage", RwxStorage),
        egress_gb=rows("egress_gb", ProviderFee),
        backup_gb_month=rows("backup_gb_month", ProviderFee),
        assumptions=validated(BillAssumptions, data["assumptions"], origin, "assumptions", 0),
    )


@dataclass(frozen=True)
class Catalog:
    """Everything the planner reads that is data, not code."""

    models: dict[str, ModelSpec]
    gpus: dict[str, Gpu]
    formats: dict[str, WeightFormat]
    gguf_types: dict[str, GgufType]
    engines: dict[str, EngineProfile]
    gpu_prices: tuple[GpuPrice, ...]
    control_plane_hourly: dict[str, ProviderFee]
    storage_gb_month: dict[str, ProviderFee]
    hosted_apis: tuple[HostedApi, ...]
    node_sizes: tuple[NodeSize, ...] = ()
    bill: BillData | None = None
    owned_servers: dict[str, OwnedServer] = field(default_factory=dict)
    checkpoints: tuple[Checkpoint, ...] = ()

    def checkpoint(self, model_id: str, fmt: str) -> Checkpoint | None:
        """The listed pre-quantized checkpoint of `model_id` in `fmt`, if any."""
        return next((c for c in self.checkpoints if c.model == model_id and c.format == fmt), None)

    def model(self, model_id: str) -> ModelSpec:
        """The catalog model `model_id`, or an error naming the closest ids."""
        try:
            return self.models[model_id.lower()]
        except KeyError:
            raise UnknownChoiceError("model", model_id, self.models) from None

    def gpu(self, gpu_id: str) -> Gpu:
        """The catalog GPU `gpu_id`, or an error naming the closest ids."""
        try:
            return self.gpus[gpu_id.lower()]
        except KeyError:
            raise UnknownChoiceError("GPU", gpu_id, self.gpus) from None

    def format(self, format_id: str) -> WeightFormat:
        """The weight format `format_id`, or an error naming the closest ids."""
        try:
            return self.formats[format_id.lower()]
        except KeyError:
            raise UnknownChoiceError("quantization", format_id, self.formats) from None

    def engine(self, engine_id: str) -> EngineProfile:
        """The engine profile `engine_id`, or an error naming the closest ids."""
        try:
            return self.engines[engine_id.lower()]
        except KeyError:
            raise UnknownChoiceError("engine", engine_id, self.engines) from None

    def prices_for(self, gpu_id: str, tiers: tuple[str, ...] = TIERS) -> list[GpuPrice]:
        """Every provider's node prices for one GPU type in the given tiers."""
        return [p for p in self.gpu_prices if p.gpu == gpu_id and p.tier in tiers]

    def gpus_per_node(self, gpu: str, provider: str | None = None) -> int:
        """How many `gpu`s fit in one node at `provider`: the bound on tensor parallelism.

        Without a provider (or for one with no row for this GPU): the largest node any provider
        in `nodes.yaml` offers for it, else the common 8-GPU server (1 for the host CPU).
        """
        gpu = gpu.lower()
        rows = [n for n in self.node_sizes if n.gpu == gpu]
        if provider is not None:
            mine = [n.gpus_per_node for n in rows if n.provider == provider.lower()]
            if mine:
                return max(mine)
        if rows:
            return max(n.gpus_per_node for n in rows)
        return 1 if gpu == "cpu" else COMMON_NODE_GPUS

    def hosted_for(self, model_id: str) -> list[HostedApi]:
        """Hosted APIs serving the same model, then the closed reference models."""
        same = [h for h in self.hosted_apis if h.model == model_id]
        return same + [h for h in self.hosted_apis if h.model == "any"]

    def with_prices(self, path: Path) -> Catalog:
        """This catalog with a user's price file merged over the shipped prices."""
        extra = _read_yaml(path)
        if not isinstance(extra, dict):
            raise UsageError(f"{path}: expected a mapping with gpu_nodes and friends")
        gpu_prices, control, storage = _prices(extra, origin=str(path), gpus=self.gpus)
        replaced = {_price_key(p) for p in gpu_prices}
        kept = tuple(p for p in self.gpu_prices if _price_key(p) not in replaced)
        hosted = self.hosted_apis
        if "hosted_apis" in extra:
            hosted = tuple(_hosted(extra["hosted_apis"], origin=str(path))) + hosted
        return dataclasses.replace(
            self,
            gpu_prices=kept + tuple(gpu_prices),
            control_plane_hourly={**self.control_plane_hourly, **control},
            storage_gb_month={**self.storage_gb_month, **storage},
            hosted_apis=hosted,
        )


def _price_key(p: GpuPrice) -> tuple[str, str, str, str]:
    return p.gpu, p.provider, p.tier, p.instance


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc})") from None


def _data(name: str) -> Any:
    return yaml.safe_load(files(__name__).joinpath(name).read_text())


def _build(cls: type[Any], origin: str, **values: Any) -> Any:
    """Construct a catalog dataclass, turning a missing or unknown field into a clear error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"{origin}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise UsageError(f"{origin}: {exc}") from None


PRICE_SECTIONS = ("gpu_nodes", "kubernetes_control_plane_hourly", "block_storage_gb_month")


def _prices(
    data: dict[str, Any], origin: str, gpus: dict[str, Gpu]
) -> tuple[list[GpuPrice], dict[str, ProviderFee], dict[str, ProviderFee]]:
    """Validate every row of a price file; one bad row is one clear line naming it."""
    if "gpu_hourly" in data:
        raise UsageError(
            f"{origin}: 'gpu_hourly' is the old per-GPU layout; list whole nodes under "
            "'gpu_nodes' (gpu, provider, tier, instance, gpus, vcpu, ram_gib, node_hourly, "
            "source, as_of)"
        )
    unknown = set(data) - set(PRICE_SECTIONS) - {"hosted_apis"}
    if unknown:
        raise UsageError(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}")
    sections = {}
    for name in PRICE_SECTIONS:
        rows = data.get(name) or []
        if not isinstance(rows, list):
            raise UsageError(f"{origin}: {name} must be a list of rows")
        sections[name] = rows
    gpu_prices: list[GpuPrice] = []
    for i, row in enumerate(sections["gpu_nodes"]):
        price: GpuPrice = validated(GpuPrice, row, origin, "gpu_nodes", i)
        if price.gpu not in gpus:
            raise UsageError(
                f"{origin}: gpu_nodes row {i + 1}: field 'gpu': unknown GPU '{price.gpu}' "
                f"(known: {', '.join(sorted(gpus))})"
            )
        gpu_prices.append(price)
    fees = []
    for name in PRICE_SECTIONS[1:]:
        fees.append(
            {
                fee.provider: fee
                for fee in (
                    validated(ProviderFee, row, origin, name, i)
                    for i, row in enumerate(sections[name])
                )
            }
        )
    return gpu_prices, fees[0], fees[1]


def _hosted(rows: list[dict[str, Any]], origin: str) -> list[HostedApi]:
    return [_build(HostedApi, origin, **row) for row in rows]


def model_from_mapping(model_id: str, row: dict[str, Any], origin: str) -> ModelSpec:
    """A `ModelSpec` from one catalog entry (YAML mapping)."""
    spec: ModelSpec = _build(ModelSpec, f"{origin} [{model_id}]", id=model_id, **row)
    return spec


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with llmhost (read once per process)."""
    models = {
        mid: model_from_mapping(mid, row, "models.yaml")
        for mid, row in _data("models.yaml").items()
    }
    gpus = {}
    for gid, row in _data("gpus.yaml").items():
        row = {**row, "vllm_formats": tuple(row.get("vllm_formats", []))}
        gpus[gid] = _build(Gpu, f"gpus.yaml [{gid}]", id=gid, **row)
    fmt_data = _data("formats.yaml")
    formats = {
        fid: _build(
            WeightFormat,
            f"formats.yaml [{fid}]",
            id=fid,
            **{**row, "engines": tuple(row["engines"])},
        )
        for fid, row in fmt_data["formats"].items()
    }
    gguf_types = {
        tid: _build(GgufType, f"formats.yaml gguf_types [{tid}]", **row)
        for tid, row in fmt_data["gguf_types"].items()
    }
    engines = {
        eid: _build(EngineProfile, f"engines.yaml [{eid}]", id=eid, **row)
        for eid, row in _data("engines.yaml").items()
    }
    gpu_prices, control, storage = _prices(_data("prices.yaml"), "prices.yaml", gpus)
    checkpoints = tuple(
        validated(Checkpoint, r, "checkpoints.yaml", "checkpoints", i)
        for i, r in enumerate(_data("checkpoints.yaml")["checkpoints"])
    )
    for i, ck in enumerate(checkpoints):
        if ck.model not in models or ck.format not in formats:
            raise UsageError(f"checkpoints.yaml: checkpoints row {i + 1}: unknown model or format")
    hosted = _hosted(_data("hosted_apis.yaml"), origin="hosted_apis.yaml")
    nodes = [_build(NodeSize, "nodes.yaml", **row) for row in _data("nodes.yaml")["gpus_per_node"]]
    return Catalog(
        models=models,
        gpus=gpus,
        formats=formats,
        gguf_types=gguf_types,
        engines=engines,
        gpu_prices=tuple(gpu_prices),
        control_plane_hourly=control,
        storage_gb_month=storage,
        hosted_apis=tuple(hosted),
        node_sizes=tuple(nodes),
        bill=load_bill_data(_data("bill.yaml"), "bill.yaml"),
        owned_servers={
            row.gpu: row
            for row in (
                validated(OwnedServer, r, "owned.yaml", "servers", i)
                for i, r in enumerate(_data("owned.yaml")["servers"])
            )
        },
        checkpoints=checkpoints,
    )
