"""The named analyses of `sql/analyses/`: their headers, parameters and how values bind.

Each analysis is one `.sql` file whose header says what it is, in lines a machine reads::

    -- purpose: species heard per site and night
    -- grain: one row per site, night and species
    -- inputs: detections, windows, deployments
    -- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one)
    -- param: threshold double = null -- detection threshold (default: the catalog's)

A parameter line is `-- param: NAME TYPE = DEFAULT -- description`; TYPE is one of
:data:`TYPES`, DEFAULT a literal (`null`, a number, `true`/`false`, `'text'`) or absent (then
the parameter is required). The body reads a parameter as `getvariable('NAME')`: the reader sets
each one with a bound value (`SET VARIABLE NAME = ?`), never by formatting it into SQL. One
mechanism serves `dawnchorus query NAME --param k=v`, the analysis views a reader offers
(`from species_by_night`, with the defaults), and the `duckdb` command line (`SET VARIABLE`).

Two parameter names have a meaning of their own:

- `config_fingerprint`: every analysis reads one fingerprint. Left at null it resolves to the
  catalog's default one: the only one, else the pinned one (`dawnchorus thresholds
  --fingerprint`), else the one with the newest run, said in one note line on the terminal
  (see `resolve_fingerprint`).
- `threshold`: the detection threshold of the `detections` view for this reader (the view reads
  it; the analysis body does not), as `dawnchorus query --threshold`.
"""

from __future__ import annotations

import difflib
import importlib.resources
import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from connectors.errors import ConfigError

#: Parameter types an analysis may declare -> how a command-line value becomes a Python value.
TYPES = ("varchar", "double", "integer", "boolean", "date")
#: Parameters the reader applies itself (through the detections view), not the analysis body.
READER_PARAMETERS = ("threshold",)
#: Parameters read by views (sql/views/) that the body uses, not by the body itself: set as
#: variables like the others; the body must read one of the views named.
VIEW_PARAMETERS = {"qc": ("qc_choice", "qc_failed_windows")}
FINGERPRINT = "config_fingerprint"
#: Where a command says which fingerprint it read when the user named none among several (the
#: CLI prints these records as "dawnchorus: note: ..." lines).
NOTES = logging.getLogger("dawnchorus.note")


def state_default_fingerprint(fingerprint: str, why: str, where: str) -> None:
    """A note saying which fingerprint a command read (the CLI prints each note once)."""
    NOTES.warning("reading fingerprint %s (%s); another with --fingerprint PREFIX, "
                  "`dawnchorus query \"from fingerprints\"` describes them", fingerprint, why)

_PARAM = re.compile(
    r"^--\s*param:\s*(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>\w+)"
    r"(?:\s*=\s*(?P<default>'[^']*'|[^\s-][^\s]*))?\s*(?:--\s*(?P<doc>.*))?$"
)
_FIELD = re.compile(r"^--\s*(?P<key>purpose|grain|inputs):\s*(?P<value>.*)$")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    required: bool
    doc: str

    def parse(self, text: str) -> Any:
        """A command-line value (`--param name=text`) as this parameter's type; ConfigError if not."""
        return _convert(self, text)

    def describe(self) -> str:
        default = "required" if self.required else f"default {_literal(self.default)}"
        return f"{self.name} ({self.type}, {default})" + (f": {self.doc}" if self.doc else "")


@dataclass(frozen=True)
class Analysis:
    name: str
    purpose: str
    grain: str
    inputs: str
    parameters: tuple[Parameter, ...]
    sql: str

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.parameters) or "none"
        raise ConfigError(f"analysis {self.name}: no parameter {name!r} (parameters: {known})")

    @property
    def variables(self) -> tuple[Parameter, ...]:
        """The parameters the body reads with getvariable (all but the reader's own)."""
        return tuple(p for p in self.parameters if p.name not in READER_PARAMETERS)

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value: the given ones (text is parsed), defaults for the rest."""
        values: dict[str, Any] = {}
        for name in given:
            self.parameter(name)  # unknown names are refused, naming the known ones
        for p in self.parameters:
            if p.name in given:
                value = given[p.name]
                values[p.name] = p.parse(value) if isinstance(value, str) else value
            elif p.required:
                raise ConfigError(f"analysis {self.name}: parameter {p.name} is required "
                                  f"(--param {p.name}=...)")
            else:
                values[p.name] = p.default
        return values


def parse_header(name: str, sql: str) -> Analysis:
    """An analysis from its file text; ConfigError naming the file and line for a bad header."""
    fields: dict[str, str] = {}
    params: list[Parameter] = []
    for number, line in enumerate(sql.splitlines(), 1):
        stripped = line.strip()
        if not stripped.startswith("--"):
            if stripped:
                break  # the header ends at the first line of SQL
            continue
        if re.match(r"^--\s*param:", stripped):
            match = _PARAM.match(stripped)
            if not match or match["type"] not in TYPES:
                raise ConfigError(f"sql/analyses/{name}.sql, line {number}: expected "
                                  f"'-- param: NAME TYPE = DEFAULT -- description' with TYPE one "
                                  f"of {', '.join(TYPES)}, got {stripped!r}")
            required = match["default"] is None
            p = Parameter(match["name"], match["type"], None, required, (match["doc"] or "").strip())
            default = None if required else _convert(p, match["default"], literal=True)
            params.append(Parameter(p.name, p.type, default, required, p.doc))
            continue
        field = _FIELD.match(stripped)
        if field:
            fields[field["key"]] = (fields.get(field["key"], "") + " " + field["value"]).strip()
    for key in ("purpose", "grain"):
        if key not in fields:
            raise ConfigError(f"sql/analyses/{name}.sql: the header has no '-- {key}:' line")
    for p in params:
        if re.search(rf"getvariable\('{p.name}'\)", sql) or p.name in READER_PARAMETERS:
            continue
        views = VIEW_PARAMETERS.get(p.name, ())
        if views and any(re.search(rf"\b{v}\b", sql) for v in views):
            continue
        raise ConfigError(f"sql/analyses/{name}.sql: parameter {p.name} is declared but the "
                          f"body never reads getvariable('{p.name}')"
                          + (f" nor the view {' or '.join(views)}" if views else ""))
    return Analysis(name, fields["purpose"], fields["grain"], fields.get("inputs", ""),
                    tuple(params), sql)


def _folder() -> Any:
    return importlib.resources.files("dawnchorus_sql").joinpath("analyses")


def analysis_names() -> tuple[str, ...]:
    return tuple(sorted(p.name[:-4] for p in _folder().iterdir() if p.name.endswith(".sql")))


def looks_like_a_name(what: str) -> bool:
    """True when `what` is one word (an analysis name, or a mistyped one), not SQL."""
    return re.fullmatch(r"\s*[A-Za-z_][A-Za-z0-9_\-]*\s*", what) is not None


def unknown_analysis(name: str) -> ConfigError:
    """The one-line error for an analysis name that is not one: the closest name, if any."""

    close = difflib.get_close_matches(name.strip().lower().replace("-", "_"), analysis_names(),
                                      n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"no analysis named {name.strip()!r}{hint} (analyses: "
                       f"{', '.join(analysis_names())}; dawnchorus query --list describes them)")


def check_analysis_name(what: str) -> None:
    """Before any SQL runs: a single word that names no analysis is a typo, never SQL."""
    if looks_like_a_name(what) and what.strip() not in analysis_names():
        raise unknown_analysis(what)


def load_analysis(name: str) -> Analysis:
    """The analysis `sql/analyses/<name>.sql`; ConfigError naming the closest one if none."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name not in analysis_names():
        raise unknown_analysis(name)
    return parse_header(name, _folder().joinpath(name + ".sql").read_text(encoding="utf-8"))


def all_analyses() -> list[Analysis]:
    return [load_analysis(n) for n in analysis_names()]


def resolve_fingerprint(fingerprints: list[str], chosen: str | None, where: str,
                        flag: str = "--fingerprint", default: tuple[str, str] | None = None
                        ) -> str | None:
    """The fingerprint an analysis reads: `chosen` (a full fingerprint or a unique prefix of
    one), else the only one, else `default` (fingerprint, why: the pinned one or the newest),
    stated in a note line; None when there is none.

    Results of two fingerprints never mix: with several, none chosen and no default this is a
    ConfigError that lists them and names `flag`, the caller's way to choose.
    """
    if chosen is not None:
        if not fingerprints or chosen in fingerprints:
            return chosen
        matches = [f for f in fingerprints if f.startswith(chosen)] if chosen else []
        if len(matches) == 1:
            return matches[0]
        what = "matches several fingerprints" if matches else "is not in the catalog"
        raise ConfigError(f"{where}: fingerprint {chosen!r} {what} "
                          f"(fingerprints: {', '.join(matches or fingerprints)}; the view "
                          "fingerprints describes them)")
    if len(fingerprints) > 1:
        if default is not None and default[0] in fingerprints:
            state_default_fingerprint(default[0], default[1], where)
            return default[0]
        raise ConfigError(f"{where}: the catalog holds {len(fingerprints)} fingerprints "
                          f"({', '.join(fingerprints)}); choose one with {flag} (a unique "
                          "prefix will do; the view fingerprints describes them)")
    return fingerprints[0] if fingerprints else None


# -------------------------------------------------------------------------------- values


def _convert(p: Parameter, text: str, literal: bool = False) -> Any:
    raw = text.strip()
    if raw.lower() == "null" and (literal or not p.required):
        return None
    if literal and raw.startswith("'") and raw.endswith("'"):
        raw = raw[1:-1]
    try:
        if p.type == "varchar":
            return raw
        if p.type == "double":
            return float(raw)
        if p.type == "integer":
            return int(raw)
        if p.type == "boolean":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if p.type == "date":
            return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"parameter {p.name}: {text!r} is not a {p.type}") from None
    raise ConfigError(f"parameter {p.name}: unknown type {p.type}")


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)
