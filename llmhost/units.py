"""Numbers with unit suffixes, as people type them: counts (`50M`, `1.5k`), durations (`500ms`,
`2s`, `5m`, `1h`, `90d`) and byte sizes (`16Gi`, `500M`).

One parser per kind, shared by the CLI's options and the configuration file, so `--timeout 2m`
and `total_timeout_s: 2m` mean the same. A bare number keeps the unit the option or field
already had; anything else (negative, not finite, too large, a space inside, an unknown suffix)
is a `UnitError` that says what was expected.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"

COUNT_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}
DURATION_UNITS = {
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
SIZE_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}
MAX_COUNT = 1e15  # a quadrillion tokens or requests: anything above is a typo
MAX_SECONDS = 100 * 365 * 86400.0  # a century
MAX_BYTES = 2**60


class UnitError(ValueError):
    """A value that is not a count, duration or size of the expected form."""


def _split(text: str | float, pattern: str, what: str) -> tuple[float, str]:
    """The number and the suffix of `text` (a bare int or float has no suffix)."""
    if isinstance(text, bool):
        raise UnitError(f"'{text}': {what}")
    if isinstance(text, int | float):
        number, suffix = float(text), ""
    else:
        raw = text.strip()
        if raw.startswith("-"):
            raise UnitError(f"'{text}': must not be negative")
        match = re.fullmatch(_NUMBER + pattern, raw)
        if match is None:
            raise UnitError(f"'{text}': {what}")
        number, suffix = float(match["number"]), match["suffix"]
    if math.isnan(number) or math.isinf(number):
        raise UnitError(f"'{text}': too large")
    if number < 0:
        raise UnitError(f"'{text}': must not be negative")
    return number, suffix


def parse_count(text: str | float, integer: bool = False) -> float:
    """A count with an optional SI suffix: `300k`, `50M`, `1.2B` (or `G`), `2T`, or a plain
    number; `integer` refuses what is not a whole number once scaled (`1.5` tokens)."""
    what = "a number, optionally with k, M, B or T (50M, 1.5k)"
    number, suffix = _split(text, r"(?P<suffix>[kKmMgGbBtT]?)", what)
    value = number * COUNT_SUFFIXES[suffix.lower()]
    if value > MAX_COUNT:
        raise UnitError(f"'{text}': too large (at most {MAX_COUNT:.0e})")
    if integer and value != int(value):
        raise UnitError(f"'{text}': must be a whole number")
    return value


def parse_duration(text: str | float, unit: str = "s") -> float:
    """A duration in `unit` (`s`, `ms`, `m`, `h` or `d`): `500ms`, `2s`, `5m`, `1h`, `90d`, `2w`;
    a bare number is already in `unit`."""
    if unit not in DURATION_UNITS:
        raise ValueError(f"unknown duration unit {unit!r}")
    what = "a duration such as 500ms, 2s, 5m, 1h or 90d"
    number, suffix = _split(text, r"(?P<suffix>ms|min|[smhdw]?)", what)
    seconds = number * DURATION_UNITS[suffix or unit]
    if seconds > MAX_SECONDS:
        raise UnitError(f"'{text}': too long (at most 100 years)")
    return seconds / DURATION_UNITS[unit]


def parse_size(text: str | float) -> int:
    """A size in bytes: `16Gi`, `512Mi`, `500M`, `1.5G`, `64k` (a trailing `B` is allowed:
    `16GiB`), or a plain number of bytes."""
    what = "a size such as 512Mi, 16Gi, 500M or 1.5G"
    number, suffix = _split(text, r"(?P<suffix>(?:[kKmMgGtT]i?)?)B?", what)
    value = number * SIZE_SUFFIXES[suffix.lower()]
    if value > MAX_BYTES:
        raise UnitError(f"'{text}': too large")
    if value != int(value):
        raise UnitError(f"'{text}': must be a whole number of bytes")
    return int(value)
