"""Where a catalog lives and where its data files go: one small value, used by every door to it.

Three shapes, one rule each:

==========================================  ===========================  ==========================
results / catalog                           catalog                      Parquet data files
==========================================  ===========================  ==========================
``results/`` (the embedded default)         ``results/catalog.sqlite``   ``results/data/``
``s3://bucket/prefix`` + ``--catalog F``    SQLite file F (local disk)   ``s3://bucket/prefix/data/``
any results + ``--catalog postgresql://…``  DuckLake's Postgres catalog  ``<results>/data/``
==========================================  ===========================  ==========================

Only the embedded default is a movable folder (its data path follows the folder: DuckLake's
``OVERRIDE_DATA_PATH``). Every other catalog keeps the data path it was created with, and DuckLake
refuses to open it with another one, so two runs can never scatter one catalog's files over two
places.

Data on ``s3://`` is written and read by DuckDB itself (its httpfs extension), with an S3 secret
built from the same credentials and endpoint as the sources: the ``AWS_*`` variables
(``AWS_ENDPOINT_URL`` included) overridden by the run's ``storage_options``. The secret is a
temporary one of this connection: it is never written to disk, and a reader's lock-down keeps it
out of every query (`connectors.catalog.CatalogReader`).

A Postgres catalog URL names no password: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass``
(DuckDB's postgres extension and psycopg both use libpq). A password written into the URL still
works, and is masked wherever the URL is shown (`masked_url`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connectors.errors import ConfigError
from connectors.storage import bucket_problem, check_bucket
from connectors.storage import open_root

CATALOG_FILE = "catalog.sqlite"
DATA_DIR = "data"
LOCK_FILE = "run.lock"

POSTGRES_SCHEMES = ("postgresql", "postgres")
S3_SCHEMES = ("s3", "s3a")


def masked_url(url: str) -> str:
    """A URL with its password (if any) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


@dataclass(frozen=True)
class ResultsLocation:
    """Where a run's catalog is (SQLite file or Postgres URL) and where its data files go.

    Build one with :meth:`resolve`; it validates what it is given and says what is wrong in one
    line (ConfigError).
    """

    results: str  # an absolute local folder, or s3://bucket/prefix (no trailing slash)
    catalog: str  # an absolute SQLite file path, or a postgresql:// URL
    catalog_kind: str  # "sqlite" or "postgres"
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def resolve(cls, results: "str | os.PathLike | ResultsLocation", catalog: str | None = None,
                storage_options: dict[str, Any] | None = None) -> "ResultsLocation":
        if isinstance(results, ResultsLocation):
            return results
        text = str(results).strip()
        if not text:
            raise ConfigError("results folder is empty")
        if text.startswith("file://"):
            text = text[len("file://"):]
        scheme, sep, rest = text.partition("://")
        if sep:
            if scheme.lower() not in S3_SCHEMES:
                raise ConfigError(f"results {results!r}: unsupported scheme {scheme!r} "
                                  "(use a local folder or s3://bucket/prefix)")
            if not rest.split("/", 1)[0]:
                raise ConfigError(f"results {results!r}: no bucket name")
            root = "s3://" + rest.strip("/")
        else:
            path = Path(text).expanduser().resolve()
            if path.exists() and not path.is_dir():
                raise ConfigError(f"results folder {path} is a file, not a folder")
            root = str(path)
        kind, where = _catalog(root, catalog)
        return cls(root, where, kind, dict(storage_options or {}))

    # -- what it is ----------------------------------------------------------------------------
    @property
    def data_on_s3(self) -> bool:
        return self.results.startswith("s3://")

    @property
    def root(self) -> Path | None:
        """The local results folder; None when results are on object storage."""
        return None if self.data_on_s3 else Path(self.results)

    @property
    def data_path(self) -> str:
        return f"{self.results}/{DATA_DIR}/"

    @property
    def is_default(self) -> bool:
        """The embedded default: catalog.sqlite inside a local results folder (movable)."""
        return (self.catalog_kind == "sqlite" and not self.data_on_s3
                and Path(self.catalog) == Path(self.results) / CATALOG_FILE)

    @property
    def catalog_path(self) -> Path | None:
        return Path(self.catalog) if self.catalog_kind == "sqlite" else None

    @property
    def lock_path(self) -> Path | None:
        """The run-lock file of a SQLite catalog (beside it); None for Postgres (leases)."""
        return self.catalog_path.parent / LOCK_FILE if self.catalog_path else None

    def describe(self) -> str:
        """The catalog, as messages show it (never a password)."""
        return masked_url(self.catalog) if self.catalog_kind == "postgres" else self.catalog

    def exists(self) -> bool | None:
        """Whether a SQLite catalog file exists; None when only connecting can tell (Postgres)."""
        return self.catalog_path.exists() if self.catalog_path else None

    def attach_target(self) -> str:
        """What follows ATTACH: the DuckLake metadata location."""
        if self.catalog_kind == "postgres":
            return f"ducklake:postgres:{self.catalog}"
        return f"ducklake:sqlite:{self.catalog}"

    def secrets(self) -> set[str]:
        """Secret strings this location carries, for log scrubbing."""
        found = set()
        password = url_password(self.catalog) if self.catalog_kind == "postgres" else None
        if password:
            found.add(password)
        for name in ("key", "secret", "token"):
            value = self.storage_options.get(name)
            if isinstance(value, str) and value:
                found.add(value)
        return found

    # -- object storage ------------------------------------------------------------------------
    def check_reachable(self) -> None:
        """Results on object storage: their bucket exists and takes these credentials (one
        request; ConfigError naming the bucket). Local results need nothing checked here."""
        if self.data_on_s3:

            bucket_problem(self.results, "results")
            check_bucket(self.s3_filesystem(), self.results, "results")

    def s3_filesystem(self) -> Any:
        """The s3fs filesystem of the results prefix (same credentials as the sources)."""

        fs, _ = open_root(self.results, self.storage_options)
        return fs

    def s3_secret(self) -> dict[str, Any]:
        """DuckDB S3 secret parameters for the results prefix (httpfs), from s3fs's settings."""
        fs = self.s3_filesystem()
        client = dict(getattr(fs, "client_kwargs", None) or {})
        params: dict[str, Any] = {"SCOPE": self.results + "/"}
        if getattr(fs, "key", None) and getattr(fs, "secret", None):
            params.update(PROVIDER="config", KEY_ID=fs.key, SECRET=fs.secret)
            if getattr(fs, "token", None):
                params["SESSION_TOKEN"] = fs.token
        else:
            params["PROVIDER"] = "credential_chain"  # instance role, profile, web identity ...
        region = (client.get("region_name") or os.environ.get("AWS_REGION")
                  or os.environ.get("AWS_DEFAULT_REGION"))
        if region:
            params["REGION"] = region
        endpoint = client.get("endpoint_url")
        if endpoint:
            parts = urlsplit(endpoint)
            if not parts.hostname:
                raise ConfigError(f"S3 endpoint {endpoint!r}: expected a URL like http://host:port")
            params["ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
            params["USE_SSL"] = parts.scheme != "http"
            params["URL_STYLE"] = "path"  # S3-compatible servers (MinIO, moto, Ceph)
        return params


def _catalog(root: str, catalog: str | None) -> tuple[str, str]:
    if catalog is None or not str(catalog).strip():
        if root.startswith("s3://"):
            raise ConfigError(
                f"results {root} are on object storage: name the catalog with --catalog "
                "(a local SQLite file, or postgresql://user@host:port/db for a team)"
            )
        return "sqlite", str(Path(root) / CATALOG_FILE)
    text = str(catalog).strip()
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() in POSTGRES_SCHEMES:
        parts = urlsplit(text)
        database = parts.path.lstrip("/")
        if not database or "/" in database:
            raise ConfigError(f"catalog {masked_url(text)}: name the database, "
                              "postgresql://user@host:port/db")
        return "postgres", text
    if text.startswith("sqlite:"):
        text = text[len("sqlite:"):]
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise ConfigError(f"catalog {masked_url(text)}: unsupported (use a local SQLite file "
                          "path or postgresql://user@host:port/db)")
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"catalog {path} is a folder: name the SQLite file, "
                          f"e.g. {path / CATALOG_FILE}")
    return "sqlite", str(path)
