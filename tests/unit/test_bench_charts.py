"""The bench charts, read back from the matplotlib Figures they are built as: integer
concurrency ticks on a log2 axis, y from zero, a title that says what was measured, the SLO
lines, a CDF from zero, and words instead of blank axes when nothing succeeded."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from llmhost.bench.charts import NO_SUCCESS, ChartContext, draw, figures
from llmhost.bench.metrics import Slo
from tests.support.bench import failed, level, record, sweep

CTX = ChartContext("gemma-3-270m", "cpu / llamacpp", "2026-12-02", Slo(0.2, 0.01, 0.9))


def rendered(fig: Figure) -> Figure:
    fig.draw_without_rendering()  # lays out ticks and their labels
    return fig


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def slo_lines(ax: Axes) -> list[Line2D]:
    return [line for line in ax.get_lines() if str(line.get_label()).startswith("SLO")]


def test_concurrency_is_a_log2_axis_with_integer_ticks_and_y_starts_at_zero() -> None:
    levels = sweep([1, 2, 4, 8, 10])
    for name, fig in figures(levels, CTX).items():
        rendered(fig)
        for ax in fig.axes:
            assert ax.get_ylim()[0] == 0, name
            if name == "latency_cdf.png":
                assert ax.get_xlim()[0] == 0  # latency from zero too
                continue
            assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
            assert list(ax.get_xticks()) == [1, 2, 4, 8, 10]
            assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8", "10"]
            assert list(ax.xaxis.get_minorticklocs()) == []  # no 3, 5, 6 ... nor fractions


def test_a_rate_sweep_keeps_a_linear_axis_from_zero() -> None:
    levels = [level([record(0.0, 0.1, 0.5)], rate=r, wall_s=1 / r) for r in (0.5, 1.5, 3.0)]
    fig = rendered(figures(levels, CTX)["throughput.png"])
    (ax,) = fig.axes
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0 and ax.get_ylim()[0] == 0
    assert ax.get_xlabel() == "requests/s"


def test_every_chart_is_titled_with_model_hardware_and_date() -> None:
    for fig in figures(sweep([1, 2]), CTX).values():
        title = fig.get_suptitle()
        assert "gemma-3-270m" in title and "cpu / llamacpp" in title and "2026-12-02" in title


def test_the_title_falls_back_to_the_endpoints_host() -> None:
    meta = {"model": "m", "url": "http://user:pw@10.0.0.7:8000/v1", "date": "2026-12-02T01:02:03"}
    ctx = ChartContext.from_meta(meta)
    assert ctx.title == "m · 10.0.0.7:8000 · 2026-12-02"  # no credentials in a chart
    known = ChartContext.from_meta({**meta, "gpu": "h100", "engine": "vllm", "slo": {"ttft_s": 1}})
    assert known.hardware == "h100 / vllm" and known.slo == Slo(ttft_s=1)


def test_the_slos_given_are_drawn_where_they_belong() -> None:
    charts = figures(sweep([1, 2, 4]), CTX)
    ttft, tpot = charts["latency_percentiles.png"].axes
    (ttft_slo,) = slo_lines(ttft)
    assert list(ttft_slo.get_ydata()) == pytest.approx([200, 200])  # 0.2 s in ms
    assert ttft_slo.get_label() == "SLO 200 ms"
    (tpot_slo,) = slo_lines(tpot)
    assert list(tpot_slo.get_ydata()) == pytest.approx([10, 10])
    (cdf,) = charts["latency_cdf.png"].axes
    (latency_slo,) = slo_lines(cdf)
    assert list(latency_slo.get_xdata()) == pytest.approx([0.9, 0.9])  # a vertical line
    assert not slo_lines(charts["throughput.png"].axes[0])
    none = figures(sweep([1, 2]), ChartContext("m", "h", "d"))
    assert not any(slo_lines(ax) for fig in none.values() for ax in fig.axes)


def test_the_latency_cdf_starts_at_zero_and_reaches_one() -> None:
    levels = sweep([1, 4], n=4)
    (ax,) = figures(levels, CTX)["latency_cdf.png"].axes
    curves = [line for line in ax.get_lines() if not str(line.get_label()).startswith("SLO")]
    assert len(curves) == 2
    for curve, lv in zip(curves, levels, strict=True):
        xs, ys = list(curve.get_xdata()), list(curve.get_ydata())
        assert (xs[0], ys[0]) == (0.0, 0.0) and ys[-1] == 1.0
        assert xs[1:] == sorted(r.latency for r in lv.run.records)
        assert ys[1] == 0.25  # the first request's step, not the line's start


def test_when_every_request_failed_each_chart_says_so_instead_of_blank_axes() -> None:
    levels = [level([failed(0.0), failed(0.1, "timeout")], concurrency=c) for c in (1, 2)]
    for name, fig in figures(levels, CTX).items():
        assert fig.axes, name
        assert all(not ax.axison for ax in fig.axes), name  # no empty frame with ticks
        assert all(ax.get_lines() == [] for ax in fig.axes), name
        assert texts(fig).count(NO_SUCCESS) == len(fig.axes), name
        assert "gemma-3-270m" in fig.get_suptitle()


def test_a_level_without_successes_is_named_and_the_others_drawn() -> None:
    levels = [*sweep([1, 2]), level([failed(0.0)], concurrency=4)]
    charts = figures(levels, CTX)
    for name, fig in charts.items():
        assert [ax for ax in fig.axes if ax.axison], name  # a real chart
        assert f"{NO_SUCCESS}: concurrency 4" in texts(fig), name
    (cdf,) = charts["latency_cdf.png"].axes
    assert [line.get_label() for line in cdf.get_lines()][:2] == ["concurrency 1", "concurrency 2"]


def test_draw_writes_a_png_per_chart(tmp_path: Path) -> None:
    paths = draw(sweep([1, 2]), tmp_path, CTX)
    assert [p.name for p in paths] == [
        "throughput.png",
        "latency_percentiles.png",
        "latency_cdf.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
