"""Counts, durations and sizes with suffixes: what people type, and what they must not."""

from __future__ import annotations

import pytest

from llmhost.units import UnitError, parse_count, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50M", 50e6),
        ("1.5k", 1500),
        ("1.2B", 1.2e9),
        ("2G", 2e9),
        ("300", 300),
        (" 7k ", 7000),
        ("5e7", 5e7),
        (".5k", 500),
        (12, 12),
    ],
)
def test_counts(text: str, value: float) -> None:
    assert parse_count(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("500ms", "s", 0.5),
        ("2s", "s", 2),
        ("5m", "s", 300),
        ("1h", "s", 3600),
        ("90d", "s", 90 * 86400),
        ("2w", "d", 14),
        ("1.5h", "s", 5400),
        ("30", "s", 30),  # a bare number keeps the option's unit
        ("30", "d", 30),
        ("36h", "d", 1.5),
        ("250", "ms", 250),
        (600.0, "s", 600),  # an option's default arrives as a number
    ],
)
def test_durations(text: str, unit: str, value: float) -> None:
    assert parse_duration(text, unit) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16Gi", 16 * 2**30),
        ("512Mi", 512 * 2**20),
        ("500M", 500 * 10**6),
        ("1.5G", 1_500_000_000),
        ("16GiB", 16 * 2**30),
        ("64k", 64_000),
        ("1024", 1024),
    ],
)
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1s", "negative"),
        ("1e400", "too large"),
        ("abc", "a duration such as"),
        ("5 m", "a duration such as"),
        ("", "a duration such as"),
        ("5M", "a duration such as"),  # months or minutes? neither: say so
        ("1e12d", "too long"),
        ("nan", "a duration such as"),
        ("inf", "a duration such as"),
        ("2s5", "a duration such as"),
    ],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-3k", "negative"),
        ("1e400", "too large"),
        ("9e15", "too large"),
        ("abc", "a number"),
        ("5 M", "a number"),
        ("5MB", "a number"),
        ("0x10", "a number"),
        ("1,000", "a number"),
    ],
)
def test_bad_counts(text: str, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        parse_count(text)


def test_whole_counts_and_sizes() -> None:
    assert parse_count("1.5k", integer=True) == 1500
    with pytest.raises(UnitError, match="whole number"):
        parse_count("1.2345k", integer=True)
    with pytest.raises(UnitError, match="whole number of bytes"):
        parse_size("0.5")
    for bad in ("-1Gi", "16 Gi", "16Gb!", "2**60", "1e30"):
        with pytest.raises(UnitError):
            parse_size(bad)


def test_bools_are_not_numbers() -> None:
    with pytest.raises(UnitError):
        parse_count(True)
