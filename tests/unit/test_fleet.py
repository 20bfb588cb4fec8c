"""Fleets: each model for its share, the summed bill, the largest-model comparison, the levers."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.errors import UsageError
from llmhost.plan import plan_for
from llmhost.plan.fleet import FleetFile, FleetModel, plan_fleet, read_fleet

COMMON = {"gpus": ["h100-80gb"], "quantizations": ["fp8"], "provider": "aws"}


def _fleet(active_hours: float | None = None) -> FleetFile:
    return FleetFile(
        tokens_per_day=1e9,
        models=[
            FleetModel(model="llama-3.1-8b", share=0.6, tier="fast"),
            FleetModel(model="llama-3.1-70b", share=0.4, tier="smart"),
        ],
        active_hours=active_hours,
    )


def test_fleet_sums_the_bills_counting_cluster_lines_once() -> None:
    fleet = plan_fleet(_fleet(), plan_for, **COMMON)
    small, large = fleet.members
    assert (small.tokens_per_day, large.tokens_per_day) == (6e8, 4e8)
    bills = [m.plan.bill for m in fleet.members]
    assert all(b and b.provider == "aws" for b in bills)
    # both run on AWS: one cluster, so one control plane ($73) and one set of system nodes
    system = max(
        line.monthly_usd for b in bills if b for line in b.lines if line.item == "system nodes"
    )
    twice = sum(
        line.monthly_usd
        for b in bills
        if b
        for line in b.lines
        if line.item in ("system nodes", "Kubernetes control plane")
    )
    assert fleet.shared_lines_deducted_usd == pytest.approx(twice - system - 73.0, abs=0.01)
    total = sum(b.monthly_usd for b in bills if b) - fleet.shared_lines_deducted_usd
    assert fleet.monthly_usd == pytest.approx(total, abs=0.01)
    alone = plan_for("llama-3.1-70b", tokens_per_day=1e9, **COMMON)  # type: ignore[arg-type]
    assert alone.bill and fleet.largest_model == "llama-3.1-70b"
    assert fleet.largest_model_monthly_usd == alone.bill.monthly_usd
    assert fleet.tiers == {"fast": ["llama-3.1-8b"], "smart": ["llama-3.1-70b"]}


def test_savings_by_lever_walk_from_the_baseline() -> None:
    fleet = plan_fleet(_fleet(active_hours=300), plan_for, **COMMON)
    names = [lever.lever for lever in fleet.levers]
    assert names == ["baseline", "spot", "quantization", "batching", "routing", "scale to zero"]
    base = plan_for(
        "llama-3.1-70b",
        tokens_per_day=1e9,
        gpus=["h100-80gb"],
        provider="aws",
        quantizations=["bf16"],
        price_tiers=["on_demand"],
        concurrency=1,
    )  # type: ignore[arg-type]
    assert base.bill and fleet.levers[0].monthly_usd == base.bill.monthly_usd
    for before, after in zip(fleet.levers, fleet.levers[1:], strict=False):
        assert before.monthly_usd is not None and after.monthly_usd is not None
        assert after.saving_usd == pytest.approx(before.monthly_usd - after.monthly_usd)
        assert after.share_of_baseline == pytest.approx(after.monthly_usd / base.bill.monthly_usd)
    assert fleet.levers[-1].monthly_usd < fleet.levers[-2].monthly_usd  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens_per_day: 1e6\nmodels:\n  - {model: llama-3.1-8b, share: 0.5}\n", "add up to 0.5"),
        ("tokens_per_day: '1e6'\nmodels:\n  - {model: llama-3.1-8b, share: 1}\n", "tokens_per_day"),
        ("tokens_per_day: 1e6\nmodels:\n  - {model: llama-3.1-8b, share: 1, x: 1}\n", "models.0.x"),
    ],
)
def test_bad_fleet_files_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as err:
        read_fleet(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_cli_fleet_and_model_are_exclusive(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plan"])
    assert result.exit_code == 2 and "--fleet" in result.output
    path = tmp_path / "fleet.yaml"
    path.write_text("tokens_per_day: 1e6\nmodels:\n  - {model: llama-3.1-9b, share: 1}\n")
    result = CliRunner().invoke(app, ["plan", "--fleet", str(path)])
    assert result.exit_code == 2 and "unknown model" in result.output.lower()
