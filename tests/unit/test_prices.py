"""Price rows: each with its tier and node shape; bad price files refused with one clear line."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.errors import UsageError
from llmhost.plan import cost, plan_for
from llmhost.plan.catalog import Catalog

ROW = (
    "{gpu: l4, provider: gcp, tier: on_demand, instance: g2-standard-4, gpus: 1, vcpu: 4, "
    "ram_gib: 16, node_hourly: 0.5, source: mine, as_of: '2026-11-23'}"
)


def _file(tmp_path: Path, row: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(f"gpu_nodes:\n  - {ROW}\n  - {row}\n")
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("node_hourly: 0.5", "node_hourly: '0.5'"), "row 2 (l4): field 'node_hourly': "),
        (("tier: on_demand", "tier: community_cloud"), "row 2 (l4): field 'tier': Input should"),
        (("gpu: l4", "gpu: l5"), "row 2: field 'gpu': unknown GPU 'l5'"),
        ((", as_of: '2026-11-23'", ""), "row 2 (l4): field 'as_of': Field required"),
        (("as_of: '2026-11-23'", "as_of: soon"), "row 2 (l4): field 'as_of': "),
        (("gpus: 1", "gpus: 1, price: 3"), "row 2 (l4): field 'price': Extra inputs"),
    ],
)
def test_bad_price_rows_name_file_row_and_field(
    catalog: Catalog, tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = _file(tmp_path, ROW.replace(*change))
    with pytest.raises(UsageError) as err:
        catalog.with_prices(path)
    line = str(err.value)
    assert line.startswith(f"{path}: gpu_nodes ") and message in line and "\n" not in line


def test_bad_price_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _file(tmp_path, ROW.replace("node_hourly: 0.5", "node_hourly: 'cheap'"))
    result = CliRunner().invoke(app, ["plan", "llama-3.1-8b", "--gpu", "l4", "--prices", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "gpu_nodes row 2 (l4): field 'node_hourly'" in result.output


def test_old_layout_is_refused_with_the_new_one_named(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("gpu_hourly:\n  - {gpu: l4, provider: gcp, on_demand: 1, source: s}\n")
    with pytest.raises(UsageError, match="gpu_nodes"):
        catalog.with_prices(path)


def test_every_row_has_tier_and_node_shape(catalog: Catalog) -> None:
    for p in catalog.gpu_prices:
        assert p.tier in ("on_demand", "spot", "community", "reserved_1y", "reserved_3y")
        assert p.gpus >= 1 and p.vcpu >= 1 and p.ram_gib > 0 and p.instance
    tiers = {(p.gpu, p.provider, p.tier) for p in catalog.gpu_prices}
    # the community cloud is never on-demand; CoreWeave and hyperscaler H200/L40S are listed
    assert ("h100-80gb", "runpod", "community") in tiers
    assert all(p.tier != "community" for p in catalog.gpu_prices if "secure" in p.instance)
    assert {("h200", "coreweave", "on_demand"), ("h200", "aws", "on_demand")} <= tiers
    assert ("l40s", "aws", "on_demand") in tiers
    # GCP's T4 is priced with the N1 VM it attaches to: GPU 0.35 + n1-standard-4 0.19
    t4 = next(p for p in catalog.gpu_prices if p.gpu == "t4" and p.provider == "gcp")
    assert t4.node_hourly == pytest.approx(0.35 + 0.19) and "n1-standard-4" in t4.instance


def test_whole_nodes_are_billed() -> None:
    assert cost.nodes_needed(8, 1, 1, 3) == 1  # three 1-GPU replicas share one 8-GPU node
    assert cost.nodes_needed(8, 2, 2, 6) == 2  # 12 GPUs -> two nodes
    assert cost.nodes_needed(8, 16, 8, 2) == 4  # PP 2 across nodes, TP 8 within each
    assert cost.nodes_needed(4, 8, 8, 1) is None  # TP 8 cannot span 4-GPU nodes
    assert cost.nodes_needed(1, 1, 1, 5) == 5


def test_price_tier_chooses_and_report_names_it(catalog: Catalog) -> None:
    on_demand = cost.choose_price(catalog, "h100-80gb", spot=False)
    assert on_demand and on_demand.tier == "on_demand"
    community = cost.choose_price(catalog, "h100-80gb", False, tiers=["community"])
    assert community and community.tier == "community" and community.spot
    with pytest.raises(UsageError, match="unknown price tier"):
        cost.allowed_tiers(False, ["cheapest"])
    plan = plan_for("llama-3.1-8b", gpus=["h100-80gb"], price_tiers=["community"])
    rec = plan.recommendation
    assert rec and rec.node_price and rec.node_price.tier == "community"
    assert plan.requirements.price_tiers == ["community"]
    out = CliRunner().invoke(
        app, ["plan", "llama-3.1-8b", "--gpu", "h100-80gb", "--price-tier", "spot", "--markdown"]
    )
    assert out.exit_code == 0, out.output
    assert "| price tier | spot/preemptible |" in out.output
    assert "2 x p5.48xlarge" not in out.output  # one replica, one node


def test_no_price_in_the_tier_says_so() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["l4"], price_tiers=["reserved_3y"])
    assert plan.recommendation is None
    assert any("reserved/committed 3 years" in r for c in plan.candidates for r in c.reasons)


def test_a_shape_wider_than_any_listed_node_says_so_not_no_price(catalog: Catalog) -> None:
    """T4s are priced, but no listed T4 node has 8 GPUs: TP 8 is refused for that reason."""
    largest = max(row.gpus for row in catalog.prices_for("t4", ["on_demand"]))
    assert largest < 8
    plan = plan_for("llama-3.1-70b", gpus=["t4"])
    tp8 = [c for c in plan.candidates if c.tensor_parallel == 8]
    assert tp8
    for cand in tp8:
        assert f"no t4 node in the catalog holds TP 8 (the largest has {largest} GPUs" in " ".join(
            cand.reasons
        )
        assert not any(r.startswith("no price for") for r in cand.reasons)
    priced = [c for c in plan.candidates if c.tensor_parallel <= largest and c.fits]
    assert priced and all(c.monthly_cost_usd for c in priced)
