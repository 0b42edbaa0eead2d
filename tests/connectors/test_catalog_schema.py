"""The catalog owns its contract: every table's one definition (`connectors.tables`) equals what a
catalog at the newest schema version holds, for a new catalog and for one upgraded from version 1;
views reach old catalogs; a catalog newer than the code is refused; docs/tables.md names every
column. Each contract test runs against every catalog kind (`lake`: the embedded SQLite default,
and a Postgres catalog with its data on S3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors.catalog import (
    SCHEMA_VERSION,
    Catalog,
    CatalogReader,
    _attach,
    _schema_version,
    connect_duckdb,
    sql_statements,
    views_digest,
)
from connectors.errors import ConfigError
from connectors.location import ResultsLocation
from connectors.tables import TABLES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tables.md"


def catalog_columns(catalog: Catalog, table: str) -> list[tuple[str, str, bool]]:
    rows = catalog.con.execute(f"describe lake.{table}").fetchall()  # name, type, null, ...
    return [(r[0], r[1], r[2] == "YES") for r in rows]


def defined_columns(table: str) -> list[tuple[str, str, bool]]:
    return [(c.name, c.sql_type, c.nullable) for c in TABLES[table].columns]


def make_version_1_catalog(location: ResultsLocation) -> None:
    """A catalog as the first release left it: version-1 tables, no version recorded, an old view,
    and a readable recording that version 1 had marked failed because one window failed."""
    if location.root is not None:
        (location.root / "data").mkdir(parents=True)
    con = connect_duckdb(location)
    _attach(con, location, read_only=False)  # attached as it is, without any migration
    for statement in sql_statements("migrations/0001_initial"):
        con.execute(statement)
    con.execute("create view detections as select 1 as stale")
    con.execute("""insert into recordings (recording_id, deployment_id, uri, object_key,
                   duration_s, status, error, run_id)
                   values ('r1', 'd', '/a.wav', 'd/a.wav', 30.0, 'failed', 'window 2 failed', 'old'),
                          ('r2', 'd', '/b.wav', 'd/b.wav', null, 'failed', 'not audio', 'old')""")
    con.close()


def test_a_new_catalog_holds_exactly_the_defined_columns(lake):
    with Catalog(lake()) as catalog:
        for table in sorted(TABLES):
            assert catalog_columns(catalog, table) == defined_columns(table), table


def test_a_version_1_catalog_is_upgraded_to_the_definitions(lake):
    root = lake("old")
    make_version_1_catalog(root)
    with Catalog(root) as catalog:
        assert catalog.schema_version == SCHEMA_VERSION
        for table in TABLES:
            assert catalog_columns(catalog, table) == defined_columns(table), table
        recordings = {r.recording_id: r for r in catalog.known_recordings()}
        detections = catalog.con.execute("describe detections").fetchall()
    # A readable recording is ok again (its windows keep their own failures); an unreadable
    # one stays failed with its reason.
    assert (recordings["r1"].status, recordings["r1"].error) == ("ok", None)
    assert (recordings["r2"].status, recordings["r2"].error) == ("failed", "not audio")
    # The stale view was replaced by the current one.
    assert "stale" not in [r[0] for r in detections] and "score" in [r[0] for r in detections]


def schema_of(catalog: Catalog) -> dict[str, object]:
    con = catalog.con
    return {
        "columns": {t: catalog_columns(catalog, t) for t in sorted(TABLES)},
        "views": sorted(con.execute("select view_name, sql from duckdb_views() "
                                    "where database_name = 'lake'").fetchall()),
        "settings": sorted(con.execute("select key, value from lake.settings").fetchall()),
    }


def test_a_new_catalog_made_at_once_equals_one_upgraded_migration_by_migration(tmp_path):
    """A new catalog gets every migration and view in one transaction: the same columns, views
    and settings as a version-1 catalog upgraded step by step."""
    stepwise = ResultsLocation.resolve(tmp_path / "stepwise")
    make_version_1_catalog(stepwise)
    with Catalog(stepwise) as catalog:
        upgraded = schema_of(catalog)
    with Catalog(tmp_path / "new") as catalog:
        new = schema_of(catalog)
        snapshots = catalog.con.execute("select count(*) from lake.snapshots()").fetchone()[0]
    assert new == upgraded
    assert "detections" in dict(new["views"]) and ("schema_version", str(SCHEMA_VERSION)) in new["settings"]
    assert snapshots <= 2  # made at once, not one snapshot per migration


def test_a_reader_upgrades_an_old_catalog_before_it_reads(lake):
    root = lake("old")
    make_version_1_catalog(root)
    with CatalogReader(root) as reader:
        assert reader.query("select count(*) as n from detections").to_pylist() == [{"n": 0}]
        settings = {r["key"]: r["value"]
                    for r in reader.query("select key, value from settings").to_pylist()}
    assert settings["schema_version"] == str(SCHEMA_VERSION)
    assert settings["views_sha256"] == views_digest()


def test_a_catalog_newer_than_the_code_is_refused(lake):
    root = lake()
    with Catalog(root) as catalog:
        catalog.set_setting("schema_version", str(SCHEMA_VERSION + 1))
    for opener in (Catalog, CatalogReader):
        with pytest.raises(ConfigError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade dawnchorus"):
            opener(root)


def test_a_results_path_that_is_a_file_is_a_config_error(tmp_path):
    path = tmp_path / "results"
    path.write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        Catalog(path)


def test_docs_name_every_column_of_every_table():
    text = DOCS.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (\w+)[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    for name, table in TABLES.items():
        assert name in sections, f"docs/tables.md has no section for {name}"
        documented = set(re.findall(r"\w+", " ".join(
            line.split("|")[1] for line in sections[name].splitlines() if line.startswith("| ")
        )))
        missing = [c.name for c in table.columns if c.name not in documented]
        assert not missing, f"docs/tables.md, {name}: undocumented columns {missing}"


def _open_writer(root: str) -> int:
    with Catalog(root) as catalog:
        return catalog.schema_version


def _open_reader(root: str) -> int:
    import time as _time

    from connectors.catalog import CATALOG_FILE

    while not (Path(root) / CATALOG_FILE).exists():
        _time.sleep(0.01)
    with CatalogReader(root) as reader:
        return int(reader.query("select value from settings where key = 'schema_version'")
                   .to_pylist()[0]["value"])


def test_processes_opening_one_new_catalog_at_once_all_see_the_newest_schema(tmp_path):
    """Writers creating one catalog together, and readers polling it while it is created (as a
    test polls a run it is about to kill), must neither fail nor migrate twice."""
    import multiprocessing

    root = str(tmp_path / "r")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(5) as pool:
        readers = [pool.apply_async(_open_reader, (root,)) for _ in range(2)]
        writers = [pool.apply_async(_open_writer, (root,)) for _ in range(3)]
        versions = [w.get(timeout=300) for w in writers] + [r.get(timeout=300) for r in readers]
    assert versions == [SCHEMA_VERSION] * 5
    with Catalog(root) as catalog:
        assert catalog.setting("schema_version") == str(SCHEMA_VERSION)
        for table in TABLES:
            assert catalog_columns(catalog, table) == defined_columns(table)


def version_on_disk(location: ResultsLocation) -> int:
    """The catalog's schema version, read without upgrading anything."""
    con = connect_duckdb(location)
    try:
        _attach(con, location, read_only=True)
        return _schema_version(con)
    finally:
        con.close()


def someone_waits_for_the_schema_lock(location: ResultsLocation) -> bool:
    """Whether another process is blocked on this catalog's schema lock: a waiting flock in
    /proc/locks (SQLite), an ungranted advisory lock in pg_locks (Postgres)."""
    if location.catalog_kind == "sqlite":
        from connectors.catalog.locks import schema_lock_path

        inode = schema_lock_path(location).stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
        return any("->" in line and line.split()[6].endswith(f":{inode}") for line in lines)
    import psycopg

    with psycopg.connect(location.catalog, autocommit=True) as con:
        return con.execute("select count(*) from pg_locks where locktype = 'advisory' "
                           "and not granted").fetchone()[0] > 0


def test_an_upgrade_waits_for_a_writer_that_is_creating_or_upgrading_the_catalog(lake):
    """A reader that finds a catalog half-made (a run is creating it) sets out to upgrade it; it
    must wait for that writer instead of migrating beside it."""
    import subprocess
    import sys
    import time

    from connectors.catalog.locks import schema_lock

    root = lake("old")
    make_version_1_catalog(root)
    reader = [sys.executable, "-c",
              "import sys\nfrom connectors.catalog import CatalogReader\n"
              "from connectors.location import ResultsLocation\n"
              "with CatalogReader(ResultsLocation.resolve(sys.argv[1], sys.argv[2])) as r:\n"
              "    print(r.query('select count(*) as n from settings').to_pylist()[0]['n'])\n",
              root.results, root.catalog]
    with schema_lock(root):  # as a writer holds it while it creates or migrates the catalog
        proc = subprocess.Popen(reader, cwd=Path(__file__).resolve().parents[2],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while not someone_waits_for_the_schema_lock(root):
            assert proc.poll() is None, ("the reader did not wait for the writer",
                                         proc.communicate())
            assert time.monotonic() < deadline, "the reader never waited for the schema lock"
            time.sleep(0.2)
        assert version_on_disk(root) == 1  # nothing migrated while the writer holds it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert version_on_disk(root) == SCHEMA_VERSION
