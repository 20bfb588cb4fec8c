"""How the CLI's options read and parse: readable metavars, values with unit suffixes, the
`-o table|json|yaml` output choice and the options shared by several commands.

Typer shows Python types (`<list[str]>`, `<int>`, `<bool>`) where a metavar is not given; the
commands and groups of `Typer` give every parameter one (the option's own, else one from its
type), so `--help` and the generated reference read `--gpu GPU`, `--timeout DURATION`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
import yaml
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from llmhost.errors import UsageError
from llmhost.units import UnitError, parse_count, parse_duration

Output = Literal["table", "json", "yaml"]
F = TypeVar("F", bound=Callable[..., Any])
_BY_TYPE = {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}


class _Argument(TyperArgument):
    """An argument whose help shows only its metavar (Typer adds `<type>` beside it)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        """No separate type column: the metavar in the name column says it."""
        return None


def readable_metavar(param: Any) -> str:
    """The metavar `--help` shows for a parameter: its own, else one from its type."""
    if param.metavar is not None:
        return str(param.metavar)
    if isinstance(param, TyperOption) and param.is_flag:
        return ""
    if isinstance(param, TyperArgument):
        return (param.name or "value").upper()
    descriptor = param.type_descriptor
    if descriptor.is_choice:
        return "|".join(str(c) for c in descriptor.choices or ())
    annotation = descriptor.annotation
    if descriptor.is_list:
        annotation = annotation.__args__[0]
    return _BY_TYPE.get(annotation, "VALUE")


def _readable(params: list[Any]) -> list[Any]:
    """The parameters, each with a readable metavar (help and completion options included,
    which Typer adds after the command is built)."""
    for param in params:
        if isinstance(param, TyperOption | TyperArgument) and param.metavar is None:
            param.metavar = readable_metavar(param)
        if type(param) is TyperArgument:
            param.__class__ = _Argument  # Typer builds the argument itself; only help differs
    return params


class Command(TyperCommand):
    """A command whose help shows readable metavars."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, with readable metavars."""
        return _readable(super().get_params(ctx))


class Group(TyperGroup):
    """A command group whose help shows readable metavars."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, with readable metavars."""
        return _readable(super().get_params(ctx))


class Typer(typer.Typer):
    """`typer.Typer` whose groups and commands are `Group` and `Command`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        """Register a command (a `Command` unless `cls` says otherwise)."""
        kwargs.setdefault("cls", Command)
        return super().command(name, **kwargs)


class Count:
    """Parse a count with an SI suffix (`50M`, `1.5k`) for an option."""

    def __init__(self, integer: bool = True) -> None:
        self.integer = integer

    def __call__(self, value: str | float) -> float:
        """The count, an int for `integer` options; a bad value is a one-line usage error."""
        try:
            count = parse_count(value, self.integer)
        except UnitError as exc:
            raise typer.BadParameter(str(exc)) from None
        return int(count) if self.integer else count


class Duration:
    """Parse a duration with a suffix (`500ms`, `2s`, `5m`, `1h`, `90d`) into `unit`."""

    def __init__(self, unit: str = "s", integer: bool = False) -> None:
        self.unit = unit
        self.integer = integer

    def __call__(self, value: str | float) -> float:
        """The duration in the option's unit (a bare number is already in it)."""
        try:
            amount = parse_duration(value, self.unit)
        except UnitError as exc:
            raise typer.BadParameter(str(exc)) from None
        if self.integer:
            if amount != int(amount):
                names = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours"}
                whole = names.get(self.unit, "days")
                raise typer.BadParameter(f"'{value}': use a whole number of {whole}")
            return int(amount)
        return amount


def count_option(help: str, *decls: str, integer: bool = True) -> Any:
    """An option taking a count (`COUNT`: 50M, 1.5k, 300)."""
    return typer.Option(*decls, help=help, parser=Count(integer), metavar="COUNT")


def duration_option(help: str, *decls: str, unit: str = "s", integer: bool = False) -> Any:
    """An option taking a duration (`DURATION`: 500ms, 2s, 5m, 1h, 90d; bare: `unit`)."""
    return typer.Option(*decls, help=help, parser=Duration(unit, integer), metavar="DURATION")


OUTPUTS: tuple[Output, ...] = ("table", "json", "yaml")


def _output(value: str) -> Output:
    """An `-o` value, or a one-line usage error naming the choices."""
    for choice in OUTPUTS:
        if value == choice:
            return choice
    raise typer.BadParameter(f"'{value}': choose table, json or yaml")


OutputOption = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        metavar="table|json|yaml",
        parser=_output,
        help="Output format (default: table).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="The same as -o json.")]
NamespaceOption = Annotated[
    str, typer.Option("--namespace", "-n", metavar="NAMESPACE", help="Kubernetes namespace.")
]
KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        metavar="FILE",
        help="The kubeconfig to use (default: $KUBECONFIG, else ~/.kube/config).",
    ),
]
KubeContextOption = Annotated[
    str | None,
    typer.Option(
        "--context", metavar="NAME", help="The kubeconfig context (default: its current one)."
    ),
]


def output_format(output: Output | None, as_json: bool) -> Output:
    """The format asked for by `-o` and/or `--json` (table when neither)."""
    if as_json and output not in (None, "json"):
        raise UsageError(f"--json and -o {output}: choose one")
    return "json" if as_json else output or "table"


def emit(data: Any, fmt: Output) -> None:
    """Print plain data (a model's to_dict, dataclasses.asdict) as JSON or YAML."""
    if fmt == "yaml":
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
