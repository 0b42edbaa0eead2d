"""Who may write what, and when: locks the operating system or the database drops when their
holder dies, so a dead run's lock is simply taken by the next one.

Two kinds, one interface (`acquire`/`release`, `claim(deployments)`, `alive(run_id)`):

- :class:`RunLock`, for a SQLite catalog: `fcntl.flock` on ``run.lock`` beside the catalog file
  (``<results>/run.lock`` for the embedded default). One run at a time per catalog: a run that
  holds it covers every deployment, so `claim` has nothing to add, and every other run still
  marked `running` is dead (`alive` is false for all but the holder).
- :class:`CatalogLease`, for a Postgres catalog: session-level advisory locks in the catalog's
  own database, held on one connection for the run's life. The run takes a lock on its run id;
  once discovery knows which deployments it covers, it claims one lock per deployment. Runs on
  different deployments write at once; runs that would cover the same units queue (or give up,
  naming the holder, after `wait_s`). Postgres drops a session's advisory locks when the session
  ends - a clean exit, a SIGKILL, or (with the TCP keepalives set here) a vanished machine - so a
  lease whose holder died is taken over by the next run, and `alive(run_id)` asks Postgres
  whether that run's session still holds its lock.

Either refuses at once by default (`wait_s` = 0) and names the holder: run id, host, pid, since.
The locks serialise runs (planning, committing), not every catalog write: the review page writes
verdicts while a run goes on, which DuckLake's transactions make safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from connectors.catalog.sql_files import sql_text
from connectors.errors import ConfigError
from connectors.location import LOCK_FILE, ResultsLocation, masked_url

log = logging.getLogger(__name__)

POLL_S = 0.25
SCHEMA_LOCK_TIMEOUT_S = 300
#: Server-side keepalives of a lease's session: a machine that vanishes without closing its
#: connection loses its leases after about idle + interval * count seconds.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 30, 10, 3
APPLICATION_PREFIX = "dawnchorus:"

#: Locks this process holds, by identity: taking a held lock again nests (the CLI takes the lock
#: before it starts Prefect, so a busy catalog is refused at once; the flow then re-enters).
_HELD: dict[Any, Any] = {}


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a lock."""

    run_id: str
    host: str
    pid: int
    since: str  # ISO 8601, UTC

    def describe(self) -> str:
        return f"run {self.run_id} (host {self.host}, pid {self.pid}, since {self.since})"


class ResultsBusy(ConfigError):
    """Another live run holds what this run needs."""

    def __init__(self, what: str, holder: LockHolder | None, waited_s: float = 0.0):
        who = holder.describe() if holder else "another process"
        waited = f" (waited {waited_s:g} s)" if waited_s else ""
        super().__init__(f"{what} is in use by {who}{waited}; wait for it to finish, "
                         "or give the run a lease_wait_s")
        self.holder = holder


def schema_lock_path(location: ResultsLocation) -> Path:
    """The schema-lock file of a SQLite catalog."""
    assert location.catalog_path is not None
    return location.catalog_path.with_name(location.catalog_path.name + ".lock")


def run_lock(location: ResultsLocation, run_id: str, *, wait_s: float = 0.0
             ) -> "RunLock | CatalogLease":
    """The lock of the catalog at `location`: a flock for SQLite, a lease for Postgres."""
    if location.catalog_kind == "postgres":
        return CatalogLease(location.catalog, run_id, wait_s=wait_s)
    assert location.lock_path is not None
    what = (f"results folder {location.results}" if location.is_default
            else f"catalog {location.catalog}")
    return RunLock(location.lock_path.parent, run_id, wait_s=wait_s, what=what)


def _me(run_id: str) -> LockHolder:
    return LockHolder(run_id, socket.gethostname(), os.getpid(),
                      datetime.now(timezone.utc).isoformat(timespec="seconds"))


# -------------------------------------------------------------------------------- flock


class RunLock:
    """`with RunLock(folder, run_id) as lock:` — `folder/run.lock`, held until the block ends or
    the process dies. `lock.previous` is the holder text a dead holder left behind (None after a
    clean release)."""

    def __init__(self, folder: str | os.PathLike, run_id: str, *, wait_s: float = 0.0,
                 what: str | None = None):
        self.results = Path(folder)
        self.path = self.results / LOCK_FILE
        self.run_id = run_id
        self.wait_s = wait_s
        self.what = what or f"results folder {self.results}"
        self.previous: LockHolder | None = None
        self._fd: int | None = None
        self._nested = False

    def acquire(self) -> "RunLock":
        outer = _HELD.get(self.path.resolve())
        if outer is not None:
            self.previous, self._nested = outer.previous, True
            return self
        try:
            self.results.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"{self.what}: cannot create its lock file {self.path}: "
                              f"{exc.strerror or exc}") from None
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= self.wait_s:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise ResultsBusy(self.what, holder, round(waited) if self.wait_s else 0) from None
                time.sleep(POLL_S)
        self.previous = _read_holder(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(_me(self.run_id))).encode(), 0)
        self._fd = fd
        _HELD[self.path.resolve()] = self
        return self

    def claim(self, deployment_ids: Iterable[str]) -> None:
        """Nothing to add: the lock already covers every deployment of its catalog."""

    def alive(self, run_id: str) -> bool:
        """While this lock is held, no other run of its catalog is alive."""
        return run_id == self.run_id

    def release(self) -> None:
        if self._nested:
            self._nested = False
            return
        if self._fd is None:
            return
        _HELD.pop(self.path.resolve(), None)
        os.ftruncate(self._fd, 0)  # a clean release leaves no holder behind
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_holder(fd: int) -> LockHolder | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        return LockHolder(**data) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None


# -------------------------------------------------------------------------------- Postgres


def _sql(name: str) -> str:
    return sql_text(f"postgres/{name}")


def lease_key(kind: str, name: str) -> int:
    """The advisory-lock key (a signed 64-bit integer) of one leased thing."""
    digest = hashlib.sha256(f"dawnchorus/{kind}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _connect(url: str, application_name: str) -> Any:
    import psycopg

    try:
        con = psycopg.connect(url, autocommit=True, application_name=application_name[:63],
                              connect_timeout=30)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"catalog {masked_url(url)}: cannot connect: {first}") from None
    # Server-side keepalives: the server notices a vanished client and ends its session, and
    # with it the session's leases.
    con.execute(_sql("session"), [str(KEEPALIVE_IDLE_S), str(KEEPALIVE_INTERVAL_S),
                                  str(KEEPALIVE_COUNT)])
    return con


def _try_lock(con: Any, key: int) -> bool:
    return bool(con.execute(_sql("try_lock"), [key]).fetchone()[0])


def _unlock(con: Any, key: int) -> None:
    con.execute(_sql("unlock"), [key])


def _holder(con: Any, key: int) -> LockHolder | None:
    """The session holding advisory lock `key`, as the application name it gave describes it."""
    row = con.execute(_sql("holder"), [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF]).fetchone()
    if row is None:
        return None
    name, since, client = row
    run_id, host, pid = "?", client or "local socket", 0
    if name.startswith(APPLICATION_PREFIX):
        run_id, _, where = name[len(APPLICATION_PREFIX):].partition(":")
        pid_text, _, named_host = where.partition("@")
        pid = int(pid_text) if pid_text.isdigit() else 0
        host = named_host or host
    return LockHolder(run_id, host, pid, since.astimezone(timezone.utc).isoformat(timespec="seconds"))


class CatalogLease:
    """A run's leases on a Postgres catalog: its run id, then the deployments it claims."""

    def __init__(self, url: str, run_id: str, *, wait_s: float = 0.0):
        self.url, self.run_id, self.wait_s = url, run_id, wait_s
        self.previous: LockHolder | None = None  # a dead run's lease leaves nothing behind
        self.deployments: set[str] = set()
        self._con: Any = None
        self._nested = False
        self._identity = ("postgres", masked_url(url), run_id)

    @property
    def application_name(self) -> str:
        return f"{APPLICATION_PREFIX}{self.run_id}:{os.getpid()}@{socket.gethostname()}"

    def acquire(self) -> "CatalogLease":
        outer = _HELD.get(self._identity)
        if outer is not None:
            self._con, self._nested, self.deployments = outer._con, True, outer.deployments
            return self
        self._con = _connect(self.url, self.application_name)
        key = lease_key("run", self.run_id)
        if not _try_lock(self._con, key):
            holder = _holder(self._con, key)
            self._con.close()
            raise ResultsBusy(f"run id {self.run_id} on catalog {masked_url(self.url)}", holder)
        _HELD[self._identity] = self
        return self

    def claim(self, deployment_ids: Iterable[str]) -> None:
        """Lease these deployments, all or none at a time (sorted, so waiters never deadlock);
        wait up to `wait_s` for those another live run holds, then refuse naming its holder."""
        wanted = sorted(set(deployment_ids) - self.deployments)
        if not wanted:
            return
        started = time.monotonic()
        logged = False
        while True:
            taken, busy = [], None
            for dep in wanted:
                key = lease_key("deployment", dep)
                if _try_lock(self._con, key):
                    taken.append(key)
                else:
                    busy = (dep, key)
                    break
            if busy is None:
                self.deployments.update(wanted)
                return
            for key in taken:  # none at a time: never sit on some while waiting for others
                _unlock(self._con, key)
            holder = _holder(self._con, busy[1])
            waited = time.monotonic() - started
            what = f"deployment {busy[0]} of catalog {masked_url(self.url)}"
            if waited >= self.wait_s:
                raise ResultsBusy(what, holder, round(waited) if self.wait_s else 0)
            if not logged:
                log.warning("%s is in use by %s; waiting up to %g s", what,
                            holder.describe() if holder else "another run", self.wait_s)
                logged = True
            time.sleep(POLL_S * 4)

    def alive(self, run_id: str) -> bool:
        """Whether run `run_id`'s session still holds its lease."""
        if run_id == self.run_id:
            return True
        key = lease_key("run", run_id)
        if _try_lock(self._con, key):
            _unlock(self._con, key)
            return False
        return True

    def release(self) -> None:
        if self._nested:
            self._nested = False
            return
        if self._con is None:
            return
        _HELD.pop(self._identity, None)
        try:
            self._con.execute(_sql("unlock_all"))
        finally:
            self._con.close()
            self._con = None
            self.deployments = set()

    def __enter__(self) -> "CatalogLease":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


@contextlib.contextmanager
def schema_lock(location: ResultsLocation) -> Iterator[None]:
    """Held while a writer opens (creates, migrates) a catalog: two writers opening a fresh or
    older catalog at once - two runs on Postgres, or a run and a reader that found the catalog
    half-created and set out to upgrade it - must not both create or migrate it. A Postgres
    advisory lock, or for SQLite an flock on `<catalog file>.lock` beside it (not the run lock,
    which a run holds for its whole length). Both wait: a migration takes seconds."""
    if location.catalog_kind != "postgres":
        assert location.catalog_path is not None
        path = schema_lock_path(location)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"catalog {location.catalog}: cannot create {path}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock
        return
    con = _connect(location.catalog, f"{APPLICATION_PREFIX}schema:{os.getpid()}@{socket.gethostname()}")
    try:
        con.execute(_sql("lock_timeout"), [f"{SCHEMA_LOCK_TIMEOUT_S}s"])
        con.execute(_sql("wait_lock"), [lease_key("schema", "catalog")])
        yield
    finally:
        con.close()  # ends the session, and with it the lock
