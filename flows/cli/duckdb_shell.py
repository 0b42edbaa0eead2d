"""`dawnchorus duckdb --results R [--catalog C]`: the `duckdb` command line on the catalog,
read-only, with the views and the named analyses working.

The `duckdb-cli` package (same version as the extension wheels, 1.5.5) installs the `duckdb`
binary beside Python; it cannot download extensions here, so the init script installs the
ducklake and sqlite extensions from the files inside the `duckdb-extension-*` wheels
(`INSTALL '<file>'`), then attaches the catalog read-only with its own data folder
(`DATA_PATH '<results>/data/'`, `OVERRIDE_DATA_PATH true`: a moved folder still opens). The
named analyses become temporary views reading `getvariable(...)`; their defaults are set first
(`config_fingerprint` = the one every command reads: the only one, else the pinned one, else
the newest), and `SET VARIABLE` changes them.
`--print` writes the init script to standard output instead, to keep or adapt.

Any catalog `dawnchorus run` writes opens here (`connectors.location.ResultsLocation`): a
Postgres catalog loads the postgres extension (the password, if any, from PGPASSWORD or
~/.pgpass, as libpq reads it); data on S3 loads httpfs, which takes its credentials from the
AWS_* variables itself, and the script sets only the endpoint, region and URL style - no key is
ever written into it.

This is the user's own shell on the catalog, not the locked-down reader: it is read-only
because the catalog is attached READ_ONLY.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from connectors.catalog.shell_script import init_script
from connectors.errors import ConfigError


def duckdb_binary() -> str:
    beside = Path(sys.executable).parent / "duckdb"
    if beside.is_file():
        return str(beside)
    found = shutil.which("duckdb")
    if not found:
        raise ConfigError("the duckdb command line is not installed (pip install duckdb-cli==1.5.5)")
    return found


def cmd_duckdb(args: argparse.Namespace) -> int:
    script = init_script(args.results, args.catalog)
    if args.print:
        sys.stdout.write(script)
        return 0
    extra = list(args.duckdb_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    with tempfile.TemporaryDirectory(prefix="dawnchorus-duckdb-") as folder:
        init = Path(folder) / "init.sql"
        init.write_text(script, encoding="utf-8")
        env = dict(os.environ)
        return subprocess.call([duckdb_binary(), "-init", str(init), *extra], env=env)


def add_duckdb_parser(sub: Any) -> None:
    p = sub.add_parser("duckdb", help="the duckdb command line on the catalog (read-only, views "
                                      "and analyses ready)")
    p.add_argument("--results", required=True, help="results root: a local folder or s3://...")
    p.add_argument("--catalog", help="the catalog, as the run named it (default: "
                                     "<results>/catalog.sqlite)")
    p.add_argument("--print", action="store_true", help="print the init script instead")
    p.add_argument("duckdb_args", nargs=argparse.REMAINDER,
                   help="arguments for duckdb after --, e.g. -- -csv -c 'from species_by_night'")
    p.set_defaults(func=cmd_duckdb)
