"""The catalog read-only and locked down: one SELECT at a time, classified by DuckDB's own
parser; the analysis views and their variables; thresholds chosen per reader."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from typing import Any, Iterator, Sequence
import os

import duckdb
import pyarrow as pa

from connectors.analyses import (
    FINGERPRINT,
    all_analyses,
    load_analysis,
    resolve_fingerprint,
    state_default_fingerprint,
)
from connectors.catalog.connection import (
    LAKE,
    _attach,
    _first_line,
    _scrub,
    connect_duckdb,
    retry_while_busy,
)
from connectors.catalog.locks import ResultsBusy, run_lock
from connectors.catalog.schema import (
    DEFAULT_FINGERPRINT_KEY,
    DETECTION_THRESHOLD_KEY,
    DETECTION_THRESHOLD_SOURCE_KEY,
    LOCATION_THRESHOLD_KEY,
    SCHEMA_VERSION,
    _needs_upgrade,
    _refuse_newer,
    _schema_state,
    setting,
)
from connectors.catalog.sql_files import sql_text
from connectors.catalog.writer import Catalog
from connectors.errors import ConfigError
from connectors.location import ResultsLocation

log = logging.getLogger("connectors.catalog")

#: Table functions a read-only query may call; every other one is refused (sqlite_scan,
#: sqlite_attach, query, read_*, glob ... reach outside the catalog or run other SQL).
READ_ONLY_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "ducklake_snapshots", "ducklake_table_info",
    "duckdb_tables", "duckdb_columns", "duckdb_views",
})
#: Databases a read-only query may name (lake = the catalog; temp holds our analysis views).
READ_ONLY_DATABASES = frozenset({"", LAKE, "temp", "system"})
#: Table functions that list views: a query calling one gets every analysis view made first.
_VIEW_LISTINGS = re.compile(r"\bduckdb_(views|tables|columns)\b", re.IGNORECASE)
#: How long a reader waits for a run to upgrade an older catalog it holds.
UPGRADE_WAIT_S = 120.0


class QueryRefused(ConfigError):
    """A read-only query tried something outside the catalog, or failed; one readable line."""


class CatalogReader:
    """The catalog, read-only and locked down (see the module docstring).

    `threshold` replaces the catalog's detection threshold, and every species' calibrated one,
    for this reader's queries (detections then say threshold_source query), and
    `location_threshold` the location-and-season filter's (0 keeps every species). Files are
    readable only under the catalog's data path (a local folder or the S3 prefix); the S3 secret
    the data needs is a temporary one that no query can list or read.
    """

    def __init__(self, results: str | os.PathLike | ResultsLocation, *, catalog: str | None = None,
                 storage_options: dict[str, Any] | None = None, threshold: float | None = None,
                 location_threshold: float | None = None):
        self.location = ResultsLocation.resolve(results, catalog, storage_options)
        self.root = self.location.root
        self.catalog_path = self.location.catalog_path
        self._spill: str | None = None
        if self.location.exists() is False:
            raise ConfigError(f"no catalog at {self.catalog_path}: run `dawnchorus run` first")
        self.con = retry_while_busy(lambda: self._open(threshold, location_threshold),
                                    f"{self.location.describe()}: open")

    def _open(self, threshold: float | None, location_threshold: float | None
              ) -> duckdb.DuckDBPyConnection:
        self.con = connect_duckdb(self.location)
        try:
            _attach(self.con, self.location, read_only=True)
            state = _schema_state(self.con)
            _refuse_newer(state[0], self.location)
            if _needs_upgrade(self.con, state):
                self._upgrade_then_reattach()
            self._prepare(threshold, location_threshold)
        except BaseException:
            self.close()  # and its spill folder, so that a retry leaves none behind
            self._spill = None
            raise
        self._lock_down()
        return self.con

    def _upgrade_then_reattach(self) -> None:
        """Upgrade an older catalog before reading it, never beside another writer. A SQLite
        catalog is upgraded under its run lock; when a run holds it, the run upgrades the catalog
        as it opens it, and the reader waits for that. On Postgres, where runs lease deployments
        and not the catalog, the writer's schema lock (taken by `Catalog`) serialises upgrades."""
        self.con.execute("USE memory")
        self.con.execute(f"DETACH {LAKE}")
        deadline = time.monotonic() + UPGRADE_WAIT_S
        while True:
            try:
                if self.location.catalog_kind == "postgres":
                    Catalog(self.location).close()
                else:
                    with run_lock(self.location, "upgrade-before-reading"):
                        Catalog(self.location).close()
                break
            except ResultsBusy as busy:
                _attach(self.con, self.location, read_only=True)
                pending = _needs_upgrade(self.con)
                self.con.execute("USE memory")
                self.con.execute(f"DETACH {LAKE}")
                if not pending:
                    break
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"catalog {self.location.describe()} needs an upgrade to schema version "
                        f"{SCHEMA_VERSION}, and {busy.holder.describe() if busy.holder else 'a run'} "
                        "holds the folder without upgrading it: retry when it has finished"
                    ) from None
                time.sleep(0.5)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"catalog {self.location.describe()} needs an upgrade to schema version "
                    f"{SCHEMA_VERSION} and it could not be written here: "
                    f"{_scrub(_first_line(exc), self.location)}"
                ) from None
        _attach(self.con, self.location, read_only=True)

    def _prepare(self, threshold: float | None, location_threshold: float | None) -> None:
        con = self.con
        # A temporary `settings` shadows the catalog's for this connection only: the detections
        # view reads its thresholds from there, so a reader (or one analysis) can choose its own.
        con.execute(sql_text("reads/session/shadow_settings"))
        self._default_threshold = threshold
        self._set_threshold(threshold)
        self._set_threshold(location_threshold, LOCATION_THRESHOLD_KEY)
        self.fingerprints = [r[0] for r in con.execute(sql_text("reads/fingerprints")).fetchall()]
        # Analyses whose parameters all have defaults are views (`from species_by_night`), read
        # with the defaults: the variables below. config_fingerprint defaults to the only one;
        # with several, it stays NULL (the views show nothing) until a query chooses one.
        self._view_defaults: dict[str, Any] = {}
        self._variable_types = {p.name: p.type for a in all_analyses() for p in a.variables}
        # The analysis views are made on first use (`_make_views`): binding all of them took
        # most of a reader's open (about 10 ms each), and most readers use one or none.
        self._lazy_views: dict[str, str] = {}
        self._views_made: set[str] = set()
        for analysis in all_analyses():
            if any(p.required for p in analysis.parameters):
                continue
            for p in analysis.variables:
                self._view_defaults.setdefault(p.name, p.default)
            self._lazy_views[analysis.name] = analysis.sql
        self.default_fingerprint = self._default_fingerprint()
        if len(self.fingerprints) == 1:
            self._view_defaults[FINGERPRINT] = self.fingerprints[0]
        elif self.default_fingerprint is not None:
            # Stated when a query or an analysis first reads it (`_state_view_default`).
            self._view_defaults[FINGERPRINT] = self.default_fingerprint[0]
        self._set_variables(self._view_defaults)

    def _make_views(self, sql: str) -> None:
        """Make the analysis views that `sql` names (as a word, so a mention in a comment or a
        string makes one too: harmless), and the ones their bodies name; every one when `sql`
        lists views or tables, so a listing shows what it always showed."""
        if len(self._views_made) == len(self._lazy_views):
            return
        if _VIEW_LISTINGS.search(sql):
            wanted = list(self._lazy_views)
        else:
            wanted = [name for name in self._lazy_views if name not in self._views_made
                      and re.search(rf"\b{name}\b", sql, re.IGNORECASE)]
        for name in wanted:
            self._make_view(name, set())

    def _make_view(self, name: str, visiting: set[str]) -> None:
        if name in self._views_made or name in visiting:
            return
        visiting.add(name)
        body = self._lazy_views[name]
        for other in self._lazy_views:
            if other != name and re.search(rf"\b{other}\b", body, re.IGNORECASE):
                self._make_view(other, visiting)
        # Names are ours (file names checked as identifiers); a view body takes no parameters.
        self.con.execute(f"create temp view {name} as {body}")
        self._views_made.add(name)

    def _default_fingerprint(self) -> tuple[str, str] | None:
        """(fingerprint, why) commands read when none is named among several: the pinned one,
        else the one with the newest run; None with fewer than two."""
        if len(self.fingerprints) < 2:
            return None
        pinned = setting(self.con, DEFAULT_FINGERPRINT_KEY)
        if pinned in self.fingerprints:
            return pinned, f"pinned, of {len(self.fingerprints)}"
        row = self.con.execute(sql_text("reads/newest_fingerprint")).fetchone()
        newest = row[0] if row else self.fingerprints[-1]
        return newest, f"the newest of {len(self.fingerprints)}"

    def state_view_default(self) -> None:
        """Say which fingerprint the analysis views read when that is the default among several
        (free SQL through `dawnchorus query`)."""
        if (self.default_fingerprint is not None
                and self._view_defaults.get(FINGERPRINT) == self.default_fingerprint[0]):
            state_default_fingerprint(*self.default_fingerprint, "query")

    def _set_threshold(self, threshold: float | None, key: str = DETECTION_THRESHOLD_KEY) -> None:
        if threshold is not None and not (
                isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ConfigError(f"{key} {threshold}: expected a probability in [0, 1]")
        self.con.execute(sql_text("reads/session/reset_threshold"), {"key": key})
        if threshold is not None:
            self.con.execute(sql_text("reads/session/set_threshold"),
                             {"key": key, "value": str(float(threshold))})
        if key == DETECTION_THRESHOLD_KEY:
            # A threshold chosen here applies to every species: the detections view leaves the
            # calibrated ones aside while this connection's settings name the source "query".
            self.con.execute(sql_text("reads/session/unset_setting"),
                             {"key": DETECTION_THRESHOLD_SOURCE_KEY})
            if threshold is not None:
                self.con.execute(sql_text("reads/session/add_setting"),
                                 {"key": DETECTION_THRESHOLD_SOURCE_KEY, "value": "query"})

    def _set_variables(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            # Name and type are declared in an analysis header (an identifier and one of
            # connectors.analyses.TYPES, checked by its parser); the value is always bound. The
            # cast gives a NULL its type, so `lower(getvariable('species'))` binds.
            sql_type = self._variable_types.get(name, "varchar")
            self.con.execute(f"SET VARIABLE {name} = CAST(? AS {sql_type})", [value])

    def _lock_down(self) -> None:
        con = self.con
        # DuckDB always allows its own spill folder, by default `.tmp` under the working
        # directory — where anything else may lie. Give it an empty private folder instead.
        self._spill = tempfile.mkdtemp(prefix="dawnchorus-reader-")
        con.execute("SET temp_directory = ?", [self._spill])
        con.execute("SET allowed_directories = ?", [[self.location.data_path]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def close(self) -> None:
        self.con.close()
        if self._spill:
            shutil.rmtree(self._spill, ignore_errors=True)

    def __enter__(self) -> "CatalogReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------------
    def query(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> pa.Table:
        """Run one read-only SELECT; QueryRefused (one line) for anything else or any failure."""
        def run() -> pa.Table:
            check_read_only(self.con, sql)
            self._make_views(sql)
            cursor = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
            return cursor.to_arrow_table()

        try:
            return retry_while_busy(run, f"{self.location.describe()}: query")
        except duckdb.Error as exc:
            raise QueryRefused(f"query failed: {_first_line(exc)}") from None

    def set_view_parameters(self, params: dict[str, Any]) -> None:
        """Choose parameters for the analysis views of this reader (`--param` with free SQL)."""
        declared = {p.name: p for a in all_analyses() for p in a.parameters}
        values = {}
        params = dict(params)
        if "threshold" in params:
            threshold = params.pop("threshold")
            threshold = declared["threshold"].parse(threshold) if isinstance(threshold, str) else threshold
            self._default_threshold = threshold
            self._set_threshold(threshold)
        for name, value in params.items():
            if name not in declared:
                raise ConfigError(f"no analysis view takes a parameter {name!r} "
                                  f"(parameters: {', '.join(sorted(declared))})")
            values[name] = declared[name].parse(value) if isinstance(value, str) else value
        if FINGERPRINT in values:
            values[FINGERPRINT] = resolve_fingerprint(self.fingerprints, values[FINGERPRINT],
                                                      "analysis views", default=self.default_fingerprint)
        self._view_defaults.update(values)
        self._set_variables(values)

    def analysis(self, name: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run the analysis `sql/analyses/<name>.sql` with its parameters (text or typed values).

        `config_fingerprint` left at null means the catalog's only fingerprint (ConfigError when
        there are several); `threshold` applies to the detections view for this analysis only.
        """
        analysis = load_analysis(name)
        values = analysis.bind(params or {})
        if FINGERPRINT in values:
            values[FINGERPRINT] = resolve_fingerprint(
                self.fingerprints, values[FINGERPRINT], f"analysis {name}",
                default=self.default_fingerprint)
            if values[FINGERPRINT] is None:
                values[FINGERPRINT] = ""  # an empty catalog: no fingerprint, no rows
        threshold = values.pop("threshold", None)
        if threshold is not None:
            self._set_threshold(threshold)
        self._set_variables(values)
        try:
            self._make_views(analysis.sql)
            cursor = self.con.execute(analysis.sql)
            return cursor.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryRefused(f"analysis {name} failed: {_first_line(exc)}") from None
        finally:
            if threshold is not None:
                self._set_threshold(self._default_threshold)
            self._set_variables({k: self._view_defaults.get(k) for k in values})


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one SELECT that names only the catalog and allowed table functions.

    Classified by DuckDB's own parser (statement types, then the statement's syntax tree), never
    by matching text.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"query refused: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise QueryRefused(f"query refused: one statement at a time, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(
            f"query refused: only SELECT queries may run here, got {kind.name} "
            "(the catalog is read-only; nothing else can be attached, set or written)"
        )
    tree = json.loads(con.execute("select json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        raise QueryRefused("query refused: only plain SELECT queries may run here "
                           f"({tree.get('error_message', 'not a SELECT')})")
    other_databases = {
        name for (name,) in con.execute("select database_name from duckdb_databases()").fetchall()
    } - READ_ONLY_DATABASES
    for node in _nodes(tree):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = (node.get("function") or {}).get("function_name", "?")
            if name not in READ_ONLY_TABLE_FUNCTIONS:
                raise QueryRefused(
                    f"query refused: table function {name}() is not allowed "
                    f"(allowed: {', '.join(sorted(READ_ONLY_TABLE_FUNCTIONS))})"
                )
        elif kind == "BASE_TABLE":
            # A quoted path in FROM is a file scan. Refused outright: an S3 path is checked
            # against allowed_directories as text, so `<data>/../elsewhere` would pass.
            if any(c in node.get("table_name", "") for c in "/\\:."):
                raise QueryRefused(
                    f"query refused: {node.get('table_name')} is a file; only the catalog's "
                    "tables and views can be read here"
                )
            # `a.b` names schema a (or database a); either must not be another database.
            named = {node.get("catalog_name", ""), node.get("schema_name", "")}
            hidden = any(n.startswith("__ducklake_metadata") for n in named)  # DuckLake's own
            if hidden or named & other_databases or node.get("catalog_name", "") not in READ_ONLY_DATABASES:
                raise QueryRefused(
                    f"query refused: {node.get('table_name', '?')} is not in the catalog"
                )


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a json_serialize_sql tree."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
