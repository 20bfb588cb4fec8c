"""`llmhost catalog KIND`: the catalog as rows a person can read, each with its source and date.

Kinds: models, gpus, formats, prices, apis, checkpoints. Filters narrow the rows (a filter a
kind has no column for is refused, so a typo never silently shows everything).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmhost.errors import UnknownChoiceError, UsageError
from llmhost.plan.catalog import GIB, Catalog

KINDS = ("models", "gpus", "formats", "prices", "apis", "checkpoints")


@dataclass(frozen=True)
class Filters:
    """Row filters: only rows whose column equals the value (case-insensitive)."""

    gpu: str | None = None
    provider: str | None = None
    tier: str | None = None
    model: str | None = None
    format: str | None = None


def _models(c: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "model": m.id,
            "params_b": round(m.total_params / 1e9, 2),
            "active_b": round(m.active_params / 1e9, 2),
            "layers": m.layers,
            "max_context": m.max_context,
            "hf_repo": m.hf_repo,
            "checkpoints": ", ".join(k.format for k in c.checkpoints if k.model == m.id),
            "source": m.source,
            "as_of": m.as_of,
        }
        for m in c.models.values()
    ]


def _gpus(c: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "gpu": g.id,
            "name": g.name,
            "memory_gib": round(g.memory_mib * 1024**2 / GIB, 1) if g.memory_mib else None,
            "bandwidth_gbs": g.bandwidth_gbs,
            "tflops_bf16": g.tflops_bf16,
            "tflops_fp8": g.tflops_fp8,
            "compute_capability": g.compute_capability,
            "formats": ", ".join(g.vllm_formats),
            "source": g.source,
            "as_of": g.as_of,
        }
        for g in c.gpus.values()
    ]


def _formats(c: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "format": f.id,
            "engines": ", ".join(f.engines),
            "compute": f.compute,
            "precision_rank": f.precision_rank,
            "source": f.source,
            "as_of": f.as_of,
        }
        for f in c.formats.values()
    ]


def _prices(c: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "gpu": p.gpu,
            "provider": p.provider,
            "tier": p.tier,
            "instance": p.instance,
            "gpus": p.gpus,
            "vcpu": p.vcpu,
            "ram_gib": p.ram_gib,
            "node_hourly": p.node_hourly,
            "per_gpu_hour": round(p.per_gpu_hour, 4),
            "note": p.note,
            "source": p.source,
            "as_of": p.as_of,
        }
        for p in c.gpu_prices
    ]


def _apis(c: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "provider": h.provider,
            "api_model": h.api_model,
            "model": h.model,
            "input_per_1m": h.input,
            "output_per_1m": h.output,
            "source": h.source,
            "as_of": h.as_of,
        }
        for h in c.hosted_apis
    ]


def _checkpoints(c: Catalog) -> list[dict[str, Any]]:
    return [
        {"model": k.model, "format": k.format, "repo": k.repo, "source": k.source, "as_of": k.as_of}
        for k in c.checkpoints
    ]


BUILDERS = {
    "models": _models,
    "gpus": _gpus,
    "formats": _formats,
    "prices": _prices,
    "apis": _apis,
    "checkpoints": _checkpoints,
}


def catalog_rows(catalog: Catalog, kind: str, filters: Filters) -> list[dict[str, Any]]:
    """The rows of one kind of catalog data, filtered; every row carries source and as_of."""
    if kind not in BUILDERS:
        raise UnknownChoiceError("catalog kind", kind, KINDS)
    rows = BUILDERS[kind](catalog)
    wanted = {k: v.lower() for k, v in vars(filters).items() if v is not None}
    columns = set(rows[0]) if rows else set()
    for name, value in wanted.items():
        if name not in columns:
            raise UsageError(f"--{name} does not filter {kind} (its columns: {', '.join(rows[0])})")
        rows = [r for r in rows if str(r[name]).lower() == value]
    return rows
