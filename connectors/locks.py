"""One run at a time per results folder: an OS lock the kernel drops when its process dies.

The lock is `fcntl.flock` on `<results>/run.lock`. A second run fails fast naming the holder (run
id, host, pid, since when — written into the file by the holder). A process that dies, even by
SIGKILL, loses the lock with its last file descriptor, so a lock left by a dead process is simply
taken by the next run; the stale holder text it finds tells which run died.

The lock serialises runs (planning, committing, maintenance), not every catalog write: the review
page writes verdicts while a run goes on, which DuckLake's transactions make safe. It is local to
the machine: a team sharing one catalog from several machines uses a Postgres catalog's lease.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.errors import ConfigError

LOCK_FILE = "run.lock"

#: Locks this process holds, by lock-file path: taking a held lock again nests (the CLI takes the
#: lock before it starts Prefect, so a busy folder is refused at once; the flow then re-enters).
_HELD: dict[Path, "RunLock"] = {}


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a results folder's run lock."""

    run_id: str
    host: str
    pid: int
    since: str  # ISO 8601, UTC

    def describe(self) -> str:
        return f"run {self.run_id} (host {self.host}, pid {self.pid}, since {self.since})"


class ResultsBusy(ConfigError):
    """Another live run holds the results folder."""

    def __init__(self, results: str, holder: LockHolder | None):
        who = holder.describe() if holder else "another process"
        super().__init__(f"results folder {results} is in use by {who}; wait for it to finish")
        self.holder = holder


class RunLock:
    """`with RunLock(results, run_id) as lock:` — held until the block ends or the process dies.

    `lock.previous` is the holder text a dead holder left behind (None after a clean release).
    """

    def __init__(self, results: str | os.PathLike, run_id: str):
        self.results = Path(results)
        self.path = self.results / LOCK_FILE
        self.run_id = run_id
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
            raise ConfigError(f"results folder {self.results}: cannot create its lock file: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ResultsBusy(str(self.results), holder) from None
        self.previous = _read_holder(fd)
        me = LockHolder(self.run_id, socket.gethostname(), os.getpid(),
                        datetime.now(timezone.utc).isoformat(timespec="seconds"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
        self._fd = fd
        _HELD[self.path.resolve()] = self
        return self

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
