"""DuckDB's extension signature check runs once per extension file and process: a later catalog
connection loads the same, unchanged file without hashing it again, and a file that changed
since (or was never checked) is checked, so a tampered one is still refused."""

from __future__ import annotations

import os

import duckdb
import pytest

from connectors.catalog import connection


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty extension folder and nothing checked yet in this process."""
    monkeypatch.setenv("DAWNCHORUS_DUCKDB_EXTENSIONS", str(tmp_path / "extensions"))
    monkeypatch.setattr(connection, "_VERIFIED", {})
    return tmp_path


def unsigned_allowed(con) -> bool:
    return con.execute("select current_setting('allow_unsigned_extensions')").fetchone()[0]


def loaded(con) -> set[str]:
    return {r[0] for r in con.execute("select extension_name from duckdb_extensions() where loaded").fetchall()}


def test_the_first_connection_checks_and_a_later_one_reuses_the_check(fresh):
    first = connection.connect_duckdb()
    assert not unsigned_allowed(first)
    assert {"ducklake", "sqlite_scanner"} <= loaded(first)
    checked = dict(connection._VERIFIED)
    assert set(checked) == {"ducklake", "sqlite"}
    assert all(str(fresh / "extensions") in path for path, _ in checked.values())

    second = connection.connect_duckdb()
    assert unsigned_allowed(second)
    assert {"ducklake", "sqlite_scanner"} <= loaded(second)
    first.close(), second.close()


def test_a_changed_file_is_checked_again_and_a_tampered_one_is_refused(fresh):
    connection.connect_duckdb().close()
    path = connection._VERIFIED["ducklake"][0]

    os.utime(path, ns=(1, 1))  # the same bytes, another file as far as the cache knows
    again = connection.connect_duckdb()
    assert not unsigned_allowed(again)
    again.close()

    with open(path, "r+b") as fh:  # one byte of the code changed
        fh.seek(4096)
        byte = fh.read(1)
        fh.seek(4096)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(duckdb.Error, match="(?i)signature|signed"):
        connection.connect_duckdb()
