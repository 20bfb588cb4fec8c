"""Calibration: efficiency factors fitted to a benchmark reproduce what it measured, and
`llmhost plan --calibrate` shows prediction against measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmhost.errors import UsageError
from llmhost.plan.calibrate import fit, measurement_from, predict
from llmhost.plan.catalog import load_catalog
from llmhost.plan.host import cpu_gpu
from llmhost.plan.sources import resolve_model


def results(
    tpot: float = 0.02, ttft: float = 0.5, prompt: int = 200, output: int = 50, **meta: str
) -> dict[str, Any]:
    """A results document as `llmhost bench --out` writes it, one-at-a-time level only."""
    requests = [
        {
            "error": None,
            "tpot": tpot,
            "ttft": ttft,
            "prompt_tokens": prompt,
            "output_tokens": output,
        }
        for _ in range(3)
    ]
    return {
        "meta": {
            "catalog_model": "gemma-3-270m",
            "gpu": "cpu",
            "engine": "llamacpp",
            "quantization": "q4_k_m",
            **meta,
        },
        "levels": [
            {
                "concurrency": 1,
                "requests": requests,
                "summary": {"tpot_s": {"median": tpot}, "ttft_s": {"median": ttft}},
            }
        ],
    }


def test_fitted_factors_reproduce_the_measurement() -> None:
    catalog = load_catalog()
    spec = resolve_model("gemma-3-270m", catalog).spec
    fmt, gpu = catalog.format("q4_k_m"), cpu_gpu(catalog.gpu("cpu"), memory_mib=8192)
    profile = catalog.engine("llamacpp")
    m = measurement_from(results(), "synthetic")
    assert m.decode_tokens_per_s == pytest.approx(50.0) and m.prefill_tokens_per_s == 400.0
    fitted = fit(spec, fmt, catalog, gpu, profile, m)
    after = predict(spec, fmt, catalog, gpu, fitted, m.prompt_tokens, m.output_tokens)
    assert after.decode_tokens_per_s == pytest.approx(50.0, rel=0.01)
    assert after.prefill_tokens_per_s == pytest.approx(400.0, rel=1e-6)
    assert fitted.step_overhead_ms == profile.step_overhead_ms  # only the efficiencies move


def test_a_benchmark_that_does_not_say_what_it_ran_on_is_refused() -> None:
    with pytest.raises(UsageError, match="does not say its gpu"):
        measurement_from(results(gpu=""), "r.json")
    data = results()
    data["levels"][0]["concurrency"] = 4
    with pytest.raises(UsageError, match="no level with concurrency 1"):
        measurement_from(data, "r.json")


def test_plan_calibrate_prints_prediction_against_measurement(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results()))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmhost",
            "plan",
            "gemma-3-270m",
            "--calibrate",
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "decode, one stream" in done.stderr and "fitted: bandwidth_efficiency" in done.stderr
    plan = json.loads(done.stdout)
    assert plan["recommendation"]["gpu"] == "cpu"  # planned on the measured hardware
    # The plan's own workload (1,024-token prompts) decodes a little slower than the fit's.
    assert 45 < plan["recommendation"]["decode_tokens_per_s_single"] <= 50.0
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    done = subprocess.run(
        [sys.executable, "-m", "llmhost", "plan", "gemma-3-270m", "--calibrate", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "is not JSON written by `llmhost bench --out`" in done.stderr


def vllm_results(tpot: float, ttft: float, busy_tpot: float) -> dict[str, Any]:
    """A vLLM benchmark on an L4 with a one-at-a-time level and a 16-concurrent level."""
    data = results(
        tpot=tpot,
        ttft=ttft,
        prompt=1000,
        output=200,
        catalog_model="llama-3.1-8b",
        gpu="l4",
        engine="vllm",
        quantization="fp8",
    )
    data["levels"].append(
        {
            "concurrency": 16,
            "requests": [],
            "summary": {"tpot_s": {"median": busy_tpot}, "ttft_s": {"median": 1}},
        }
    )
    return data


def test_vllm_fit_reproduces_decode_ttft_and_the_busy_step() -> None:
    catalog = load_catalog()
    spec = catalog.model("llama-3.1-8b")
    fmt, gpu, profile = catalog.format("fp8"), catalog.gpu("l4"), catalog.engine("vllm")
    m = measurement_from(vllm_results(tpot=0.05, ttft=0.4, busy_tpot=0.09), "synthetic")
    assert (m.busy_concurrency, m.busy_tpot_s) == (16, 0.09)
    fitted = fit(spec, fmt, catalog, gpu, profile, m)
    after = predict(spec, fmt, catalog, gpu, fitted, m.prompt_tokens, m.output_tokens)
    assert after.decode_tokens_per_s == pytest.approx(20.0, rel=1e-3)
    assert after.ttft_s == pytest.approx(0.4, rel=1e-3)
    assert fitted.step_overhead_per_seq_us != profile.step_overhead_per_seq_us
    from llmhost.plan.step import Replica, model_cost, step_seconds

    step = step_seconds(
        model_cost(spec, fmt, catalog), fmt, Replica(gpu, fitted), 16, 1100, 15 * 1000 / 200, 500
    )
    assert step == pytest.approx(0.09, rel=1e-3)
