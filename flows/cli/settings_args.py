"""`dawnchorus run` options derived from the `RunSettings` fields: one flag per field, its help the
field's description, its default the model's, its type and choices the field's annotation.

Spelling, by rule (so nothing is spelled twice):

- a field `window_s` is `--window-s`;
- a collection field takes one item per flag, repeated, under its singular name:
  `tasks` -> `--task detect --task classify`, `deployments` -> `--deployment dep-a`;
  a mapping field takes `KEY=VALUE` (VALUE parsed as JSON when it is JSON, dotted keys nest):
  `model_options` -> `--model-option top_k=5`, `storage_options` ->
  `--storage-option client_kwargs.endpoint_url=http://minio:9000`;
- a collection of records (a field of pydantic models) takes JSON, one record or a list of
  them per flag: `cascade` -> `--cascade '[{"model": "naturelm", ...}]'`;
- a yes/no field is a switch with its negation: `--retry-failed` / `--no-retry-failed`.

A few older short spellings stay as aliases (`--option`, `--channels`). Bad values are refused in
one line that names the flag: argparse's own errors, and the model's validation errors with each
field turned back into its flag.
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from connectors.errors import ConfigError

#: Older spellings kept working beside the derived flag.
ALIASES: dict[str, tuple[str, ...]] = {"model_options": ("--option",),
                                       "channel_policy": ("--channels",)}


class WholeFlagsFormatter(argparse.HelpFormatter):
    """argparse's help wrapping, but a line never breaks inside a word at its hyphens: a flag
    named in a description (`--no-speech-gate`) stays whole, so it can be copied."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other user error,
    and help text keeps flags whole (every subcommand's parser is one of these)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", WholeFlagsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see {self.prog} --help)\n")


def _strip_optional(annotation: Any) -> Any:
    """`X | None` -> X (the fields' None means "not given")."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _base(annotation: Any) -> Any:
    """The plain type under Annotated[...] and Optional."""
    annotation = _strip_optional(annotation)
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return _strip_optional(annotation)


def field_kind(info: FieldInfo) -> tuple[str, Any]:
    """('literal', choices) | ('bool', None) | ('list', item type) | ('mapping', None) |
    ('scalar', type)."""
    annotation = _base(info.annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "literal", typing.get_args(annotation)
    if annotation is bool:
        return "bool", None
    if origin in (tuple, list):
        return "list", typing.get_args(annotation)[0]
    if origin is dict or annotation is dict:
        return "mapping", None
    return "scalar", annotation


def flag_name(name: str, info: FieldInfo) -> str:
    kind, _ = field_kind(info)
    if kind in ("list", "mapping") and name.endswith("s"):
        name = name[:-1]
    return "--" + name.replace("_", "-")


def _default_text(info: FieldInfo) -> str | None:
    if info.default is PydanticUndefined or info.default is None:
        return None
    if isinstance(info.default, tuple):
        return " ".join(str(v) for v in info.default)
    return str(info.default).lower() if isinstance(info.default, bool) else str(info.default)


def parse_key_value(text: str) -> tuple[list[str], Any]:
    """`a.b=VALUE` -> (["a", "b"], VALUE as JSON if it parses, else as text)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return [part.strip() for part in key.split(".")], parsed


def _is_record(annotation: Any) -> bool:
    annotation = _base(annotation)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def parse_json(text: str) -> Any:
    """A record or a list of records, as JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None


def _scalar_type(annotation: Any) -> Any:
    if annotation in (int, float):
        def convert(text: str) -> Any:
            try:
                return annotation(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"invalid {annotation.__name__} value: {text!r}") from None
        convert.__name__ = annotation.__name__
        return convert
    return str


def add_settings_arguments(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One option per field of `model` (see the module docstring); values land under dest =
    field name, None when not given (the model's default then applies)."""
    for name, info in model.model_fields.items():
        kind, detail = field_kind(info)
        flags = [flag_name(name, info), *ALIASES.get(name, ())]
        help_text = info.description or name
        default = _default_text(info)
        if default is not None and kind != "bool":
            help_text += f" (default: {default})"
        required = info.is_required()
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if kind == "bool":
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if kind == "literal":
            kwargs.update(choices=list(detail), metavar="{" + ",".join(map(str, detail)) + "}")
        elif kind == "list":
            kwargs.update(action="append", metavar=name[:-1].upper() if name.endswith("s") else "VALUE")
            if _is_record(detail):
                kwargs.update(type=parse_json, metavar="JSON")
            elif typing.get_origin(_base(detail)) is Literal:
                kwargs["choices"] = list(typing.get_args(_base(detail)))
        elif kind == "mapping":
            kwargs.update(action="append", type=parse_key_value, metavar="KEY=VALUE")
        else:
            metavar = {str: "TEXT", int: "INT", float: "NUMBER"}.get(detail, "VALUE")
            kwargs.update(type=_scalar_type(detail), metavar=metavar)
        parser.add_argument(*flags, required=required, **kwargs)


def _nest(pairs: list[tuple[list[str], Any]], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keys, value in pairs:
        node = out
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{flag} {'.'.join(keys)}: {key} is already a value, not a mapping")
            node = child
        node[keys[-1]] = value
    return out


def settings_values(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The fields given on the command line (others keep the model's defaults)."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        given = getattr(args, name, None)
        if given is None:
            continue
        kind, detail = field_kind(info)
        if kind == "mapping":
            given = _nest(given, flag_name(name, info))
        elif kind == "list" and _is_record(detail):
            given = tuple(item for value in given
                          for item in (value if isinstance(value, list) else [value]))
        elif kind == "list":
            given = tuple(given)
        values[name] = given
    return values


def build_settings(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """`model(**values)`; a validation error becomes one ConfigError line naming each flag."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error.get("loc") or ()
            field = str(loc[0]) if loc else ""
            info = model.model_fields.get(field)
            message = error["msg"].removeprefix("Value error, ")
            if info is None:  # a check across fields: name each field it mentions by its flag
                for other, other_info in model.model_fields.items():
                    message = re.sub(rf"\b{other}\b", flag_name(other, other_info), message)
            problems.append(f"{flag_name(field, info)}: {message}" if info else message)
        raise ConfigError("; ".join(problems)) from None
