"""The results catalog: DuckLake (Parquet data files + a SQLite or Postgres catalog) via DuckDB.

Why DuckLake: a unit's rows commit in one transaction (exactly-once without a home-made commit
protocol), and readers in other processes (the `duckdb` CLI, `dawnchorus query`) work while a run
writes — a plain `.duckdb` file locks every other process out. The catalog is SQLite (the
embedded default) or Postgres (a team's, with several writers); the data files sit in a local
folder or on S3. `connectors.location.ResultsLocation` says which; every door takes one (or a
results folder, which means the embedded default).

Layout of the embedded default, under the results folder::

    catalog.sqlite      the DuckLake catalog (metadata, snapshots)
    data/<table>/deployment_id=…/date=…/*.parquet
    run.lock            the run lock (`connectors.catalog.locks`)
    catalog.sqlite.lock held while a writer creates or migrates the catalog

Several writers on one Postgres catalog: DuckLake retries a commit that lost a race when the two
changes do not conflict (appends never do); when they do (two transactions deleting from one data
file, e.g. two runs upserting deployments), the whole transaction is run again here on the new
snapshot — every write is a replace-by-key, so running it again is safe.

Two doors, one contract:

- :class:`Catalog` writes. Its typed methods take and return the row dataclasses of
  `connectors.tables` (one definition per table); callers never spell a column or write SQL.
  Opening it upgrades an older catalog (`sql/migrations/`, versioned) and refreshes the views;
  a catalog newer than this code is refused.
- :class:`CatalogReader` reads, locked down: one SELECT statement at a time, classified by
  DuckDB's own parser; no table function outside a short allow-list (the sqlite extension opens
  files through SQLite itself, outside DuckDB's file-system guard); no file outside the data
  folder; configuration locked. `dawnchorus query`, reports and exports go through it.

Statements live in `.sql` files of the `dawnchorus_sql` package (`sql_files`); Python registers
Arrow tables and binds parameters. The embedded default's data path is always its own folder, so a results
folder that is moved or copied still opens; every other catalog keeps its data path.

The package, one job a module (each imports only those above it; nothing imports this door):

- `guard`: refuse a lost catalog beside existing data files (no import of the others);
- `sql_files`: the text and statements of a `.sql` file;
- `connection`: a DuckDB connection with the extensions, ATTACH, transactions, retry-while-busy;
- `locks`: the run lock, Postgres leases and the schema lock;
- `schema`: migrations, views and the settings that record them (upgrade on open);
- `maintenance`: merge files, expire snapshots, delete dead and orphaned files;
- `writer`: :class:`Catalog`;
- `reader`: :class:`CatalogReader` and its lock-down.
"""

from connectors.catalog.connection import (  # noqa: F401
    LAKE,
    _attach,
    _extension_dir,
    _Transaction,
    connect_duckdb,
    results_root,
    retry_while_busy,
)
from connectors.catalog.maintenance import DataFiles, MaintenanceReport  # noqa: F401
from connectors.catalog.reader import CatalogReader, QueryRefused, check_read_only  # noqa: F401
from connectors.catalog.maintenance import SNAPSHOT_RETENTION_KEY  # noqa: F401
from connectors.catalog.schema import (  # noqa: F401
    DETECTION_THRESHOLD_KEY,
    LOCATION_THRESHOLD_KEY,
    MIGRATIONS,
    SCHEMA_VERSION,
    VIEWS,
    _schema_version,
    views_digest,
)
from connectors.catalog.sql_files import sql_statements, sql_text  # noqa: F401
from connectors.catalog.writer import (  # noqa: F401
    CascadeWindow,
    Catalog,
    ClassifierTodo,
    check_embeddings,
    check_review,
)
# CATALOG_FILE and DATA_DIR stay importable from here, where they used to be defined.
from connectors.location import CATALOG_FILE, DATA_DIR  # noqa: F401
