"""The init script of the `duckdb` command line on a catalog (`dawnchorus duckdb`): extensions
installed from the `duckdb-extension-*` wheels' files, the catalog attached READ_ONLY with its
own data folder, the analysis variables at their defaults (`config_fingerprint` = the one every
command reads: the only one, else the pinned one, else the newest) and the named analyses as
temporary views. No credential is ever written into it: a Postgres password comes from
PGPASSWORD or ~/.pgpass, S3 keys from the AWS_* variables."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from connectors.analyses import FINGERPRINT, all_analyses
from connectors.catalog.connection import _extension_dir
from connectors.catalog.sql_files import sql_text
from connectors.errors import ConfigError
from connectors.location import ResultsLocation

DUCKDB_VERSION = "v1.5.5"
EXTENSIONS = ("ducklake", "sqlite")
#: httpfs settings the script sets for data on S3, from the S3 secret parameters the run uses
#: (`ResultsLocation.s3_secret`); the credentials among those parameters are left out.
S3_SETTINGS = {"REGION": "s3_region", "ENDPOINT": "s3_endpoint", "USE_SSL": "s3_use_ssl",
               "URL_STYLE": "s3_url_style"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def extension_file(name: str) -> Path:
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the duckdb-extension-{name} package is not installed")
    path = Path(spec.submodule_search_locations[0]) / "extensions" / DUCKDB_VERSION / f"{name}.duckdb_extension"
    if not path.is_file():
        raise ConfigError(f"{path}: extension file missing from duckdb-extension-{name}")
    return path


def _literal(value: Any, sql_type: str) -> str:
    if value is None:
        return f"CAST(NULL AS {sql_type})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"CAST({value!r} AS {sql_type})"
    return f"CAST({_quote(str(value))} AS {sql_type})"


def init_script(results: "str | ResultsLocation", catalog: str | None = None) -> str:
    """The SQL the CLI runs first: extensions from the wheels, the catalog, the analysis views."""
    location = ResultsLocation.resolve(results, catalog)
    if location.exists() is False:
        raise ConfigError(f"no catalog at {location.catalog}: run `dawnchorus run` first")
    extensions = list(EXTENSIONS)
    if location.catalog_kind == "postgres":
        extensions.append("postgres")
    if location.data_on_s3:
        extensions.append("httpfs")
    lines = [
        "-- dawnchorus: the catalog, read-only, in the duckdb command line",
        "SET autoinstall_known_extensions = false;",
        "SET autoload_known_extensions = false;",
        f"SET extension_directory = {_quote(_extension_dir())};",
    ]
    for name in extensions:
        lines.append(f"INSTALL {_quote(str(extension_file(name)))};")
        lines.append(f"LOAD {name};")
    if location.data_on_s3:
        params = location.s3_secret()
        for key, setting in S3_SETTINGS.items():
            if key in params:
                value = params[key]
                text = ("true" if value else "false") if isinstance(value, bool) else _quote(str(value))
                lines.append(f"SET {setting} = {text};")
    options = ["READ_ONLY", f"DATA_PATH {_quote(location.data_path)}"]
    if location.is_default:
        options.append("OVERRIDE_DATA_PATH true")  # a moved results folder still opens
    lines.append(f"ATTACH {_quote(location.attach_target())} AS lake ({', '.join(options)});")
    lines.append("USE lake;")
    lines.append("-- analysis parameters (SET VARIABLE name = value; to choose others)")
    defaults: dict[str, tuple[Any, str]] = {}
    for analysis in all_analyses():
        for p in analysis.variables:
            defaults.setdefault(p.name, (p.default, p.type))
    for name, (value, sql_type) in sorted(defaults.items()):
        if name == FINGERPRINT:
            chosen = " ".join(line.strip() for line in sql_text("reads/default_fingerprint").splitlines()
                              if line.strip() and not line.strip().startswith("--")).rstrip(";")
            lines.append(f"SET VARIABLE {name} = ({chosen});")
        else:
            lines.append(f"SET VARIABLE {name} = {_literal(value, sql_type)};")
    for analysis in all_analyses():
        if any(p.required for p in analysis.parameters):
            continue
        body = analysis.sql.strip().rstrip(";")
        lines.append(f"CREATE TEMP VIEW {analysis.name} AS\n{body};")
    return "\n".join(lines) + "\n"
