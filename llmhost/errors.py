"""Errors a user can act on. The CLI prints their message on one line and exits with `exit_code`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LlmhostError(Exception):
    """An error caused by the user's input or environment, not by a bug."""

    exit_code = 1


class UsageError(LlmhostError):
    """Bad input on the command line or in a config file."""

    exit_code = 2


class UnknownChoiceError(UsageError):
    """A name that is not in a catalog; the message offers the closest valid names."""

    def __init__(self, kind: str, value: str, choices: Iterable[str]) -> None:
        options = sorted(choices)
        close = difflib.get_close_matches(value.lower(), options, n=3, cutoff=0.4)
        hint = close or options[:6]
        label = "did you mean" if close else "valid choices include"
        super().__init__(f"unknown {kind} '{value}'; {label}: {', '.join(hint)}")
        self.kind = kind
        self.value = value


class ModelFileError(UsageError):
    """A config.json or GGUF file that cannot describe a model."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
