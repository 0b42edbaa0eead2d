"""Data files outlive a lost catalog: a writer refuses a SQLite catalog that is missing, empty or
not SQLite while the results' data folder holds files.

DuckLake would happily create a fresh catalog there (SQLite takes a 0-byte file for an empty
database), and that catalog's maintenance would then see every earlier data file as an orphan.
So `dawnchorus run`, `maintain` and every `Catalog` open stop first, in one line naming the
catalog, the data folder and the way back (docs/operations.md, "A lost catalog"). Readers need no
guard: they never create a catalog.

A Postgres catalog cannot be told missing from a file; its data files are guarded by
`maintenance`, which deletes only orphans written since the catalog was created.
"""

from __future__ import annotations

from pathlib import Path

from connectors.errors import ConfigError
from connectors.location import ResultsLocation

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
RECOVERY_DOC = "docs/operations.md, 'A lost catalog'"


def catalog_state(path: Path) -> str | None:
    """Why the SQLite catalog at `path` cannot be the one that wrote the data ("missing",
    "empty (0 bytes)", "not a SQLite database"), or None when it looks like one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "a folder, not a SQLite database"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "empty (0 bytes)"
    if head != SQLITE_MAGIC:
        return "not a SQLite database"
    return None


def data_files(location: ResultsLocation, limit: int = 1000) -> int:
    """How many files the data folder holds (counting stops at `limit`)."""
    if location.data_on_s3:
        fs = location.s3_filesystem()
        prefix = location.data_path.removeprefix("s3://").rstrip("/")
        try:
            return min(limit, len(fs.find(prefix, maxdepth=None)))
        except FileNotFoundError:
            return 0
    folder = Path(location.data_path)
    count = 0
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file():
                count += 1
                if count >= limit:
                    break
    return count


def refuse_lost_catalog(location: ResultsLocation) -> None:
    """ConfigError (one line) when the SQLite catalog is missing or unreadable beside data files;
    nothing when there is no data yet (a first run creates its catalog) or the catalog is fine."""
    path = location.catalog_path
    if path is None:  # Postgres: see the module docstring
        return
    state = catalog_state(path)
    if state is None:
        return
    files = data_files(location)
    if not files:
        return
    count = f"{files}+" if files >= 1000 else str(files)
    data = location.data_path.rstrip("/")
    raise ConfigError(
        f"catalog {path} is {state}, but {data} holds {count} data files of the catalog that "
        f"was there: refusing to start a new catalog over them; restore {path.name} from a backup (or a copy taken with "
        f"the run lock free), or move {data} aside to start afresh ({RECOVERY_DOC})"
    )
