"""Fleets: several models sharing the traffic (`llmhost plan --fleet fleet.yaml`).

Each model is planned for its share; the fleet's bill is the sum of their bills with the
cluster lines (system nodes, control plane) counted once per provider. It is compared with
serving all traffic on the largest model, and a "savings by lever" table walks from a baseline
(largest model, bf16, on-demand, one request at a time, 24/7) through spot, quantization,
batching, routing and scale to zero, each step re-planned (modelled, not measured).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmhost.errors import UsageError
from llmhost.plan.catalog import load_catalog
from llmhost.plan.types import Plan

FLEET_SCHEMA_VERSION = 1
SHARED_LINES = ("system nodes", "Kubernetes control plane")


class FleetModel(BaseModel):
    """One model of a fleet file: its share of the traffic and its gateway tier name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1)
    share: float = Field(gt=0, le=1)
    tier: str | None = Field(default=None, min_length=1)


class FleetFile(BaseModel):
    """A fleet file: the whole traffic and the models that split it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tokens_per_day: float = Field(gt=0)
    models: list[FleetModel] = Field(min_length=1)
    prompt_tokens: int = Field(default=1024, ge=1)
    output_tokens: int = Field(default=256, ge=1)
    active_hours: float | None = Field(default=None, gt=0, le=730)

    @model_validator(mode="after")
    def _shares(self) -> FleetFile:
        total = sum(m.share for m in self.models)
        if abs(total - 1) > 1e-6:
            raise ValueError(f"the models' shares add up to {total:g}, not 1")
        names = [m.model for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("a model is listed twice")
        return self


class _Loader(yaml.SafeLoader):
    """YAML with 1.2-style floats, so `5e7` is a number (PyYAML's 1.1 rules read it as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_fleet(path: Path) -> FleetFile:
    """The fleet file at `path`, or one clear line naming the file and the field."""
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)  # _Loader is a SafeLoader
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc})") from None
    try:
        return FleetFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "file"
        raise UsageError(f"{path}: {where}: {err['msg']}") from None


@dataclass
class FleetMember:
    """One model of the fleet and its plan for its share of the traffic."""

    model: str
    share: float
    tier: str | None
    tokens_per_day: float
    plan: Plan


@dataclass
class Lever:
    """One step of the savings table: the bill with this lever added to the ones above."""

    lever: str
    monthly_usd: float | None
    saving_usd: float | None  # against the step above
    share_of_baseline: float | None  # this step's bill / the baseline's
    basis: str


@dataclass
class FleetPlan:
    """The fleet's plans, its summed bill, the largest-model comparison and the levers."""

    members: list[FleetMember]
    monthly_usd: float
    shared_lines_deducted_usd: float
    largest_model: str
    largest_model_monthly_usd: float | None
    levers: list[Lever] = field(default_factory=list)
    tiers: dict[str, list[str]] = field(default_factory=dict)
    schema_version: int = FLEET_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (each member's plan in full)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The fleet plan as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def _bill_total(plan: Plan) -> float | None:
    return plan.bill.monthly_usd if plan.bill else None


def fleet_bill(members: list[FleetMember]) -> tuple[float, float]:
    """Sum of the members' bills, counting cluster lines once per provider; and the deduction."""
    total = 0.0
    shared: dict[str, dict[str, float]] = {}
    counted = 0.0
    for m in members:
        bill = m.plan.bill
        if bill is None:
            raise UsageError(
                f"fleet: {m.model} has no recommendation: {m.plan.recommendation_reason}"
            )
        total += bill.monthly_usd
        for line in bill.lines:
            if line.item in SHARED_LINES:
                counted += line.monthly_usd
                mine = shared.setdefault(bill.provider, {})
                mine[line.item] = max(mine.get(line.item, 0.0), line.monthly_usd)
    once = sum(v for per in shared.values() for v in per.values())
    deduction = counted - once
    return round(total - deduction, 2), round(deduction, 2)


Planner = Callable[..., Plan]


def plan_fleet(fleet: FleetFile, planner: Planner, **common: Any) -> FleetPlan:
    """Plan each model for its share, sum the bill, compare and walk the levers."""
    catalog = load_catalog()
    for m in fleet.models:
        catalog.model(m.model)  # a clear error for an unknown model id
    traffic = {
        "prompt_tokens": fleet.prompt_tokens,
        "output_tokens": fleet.output_tokens,
        **common,
    }
    members = [
        FleetMember(
            model=m.model,
            share=m.share,
            tier=m.tier,
            tokens_per_day=fleet.tokens_per_day * m.share,
            plan=planner(
                m.model,
                tokens_per_day=fleet.tokens_per_day * m.share,
                active_hours=fleet.active_hours,
                **traffic,
            ),
        )
        for m in fleet.models
    ]
    total, deduction = fleet_bill(members)
    largest = max(fleet.models, key=lambda m: catalog.model(m.model).total_params).model
    alone = planner(
        largest, tokens_per_day=fleet.tokens_per_day, active_hours=fleet.active_hours, **traffic
    )
    tiers: dict[str, list[str]] = {}
    for m in fleet.models:
        if m.tier:
            tiers.setdefault(m.tier, []).append(m.model)
    return FleetPlan(
        members=members,
        monthly_usd=total,
        shared_lines_deducted_usd=deduction,
        largest_model=largest,
        largest_model_monthly_usd=_bill_total(alone),
        levers=levers(fleet, largest, planner, traffic, members),
        tiers=tiers,
    )


def levers(
    fleet: FleetFile,
    largest: str,
    planner: Planner,
    traffic: dict[str, Any],
    members: list[FleetMember],
) -> list[Lever]:
    """Baseline, then each lever added to those above it, each step planned again."""
    base = {k: v for k, v in traffic.items() if k not in ("spot", "quantizations", "price_tiers")}
    day = fleet.tokens_per_day

    def step(**extra: Any) -> float | None:
        return _bill_total(planner(largest, tokens_per_day=day, **{**base, **extra}))

    bf16 = {"quantizations": ["bf16"], "price_tiers": ["on_demand"], "concurrency": 1}
    what = f"{largest} for all traffic, bf16, on-demand, one request at a time per replica, 24/7"
    steps: list[tuple[str, float | None, str]] = [("baseline", step(**bf16), what)]
    spot = {**bf16, "price_tiers": ["on_demand", "spot", "community"]}
    steps.append(("spot", step(**spot), "spot and community nodes allowed"))
    quant = {k: v for k, v in spot.items() if k != "quantizations"}
    steps.append(("quantization", step(**quant), "any weight format the GPU runs"))
    batched = {k: v for k, v in quant.items() if k != "concurrency"}
    steps.append(
        ("batching", step(**batched), "continuous batching at the planned operating point")
    )
    routed = sum(
        _bill_total(planner(m.model, tokens_per_day=m.tokens_per_day, **{**base, **batched})) or 0.0
        for m in members
    )
    shares = ", ".join(f"{m.share:.0%} to {m.model}" for m in members)
    steps.append(("routing", round(routed, 2), f"traffic split by the fleet file: {shares}"))
    if fleet.active_hours:
        idle = sum(
            _bill_total(
                planner(
                    m.model,
                    tokens_per_day=m.tokens_per_day,
                    active_hours=fleet.active_hours,
                    **{**base, **batched},
                )
            )
            or 0.0
            for m in members
        )
        steps.append(
            ("scale to zero", round(idle, 2), f"engines run {fleet.active_hours:g} h a month")
        )
    else:
        steps.append(("scale to zero", None, "not modelled: the fleet file gives no active_hours"))
    out: list[Lever] = []
    baseline = steps[0][1]
    previous = baseline
    for name, monthly, basis in steps:
        saving = previous - monthly if previous is not None and monthly is not None else None
        share = monthly / baseline if monthly is not None and baseline else None
        how = basis + (" (modelled by the planner)" if monthly is not None else "")
        out.append(Lever(name, monthly, saving, share, how))
        if monthly is not None:
            previous = monthly
    return out
