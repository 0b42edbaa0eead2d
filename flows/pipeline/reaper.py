"""Nothing of a run's local Ray outlives its driver, even a driver killed with SIGKILL.

A local Ray cluster is a tree of processes under the driver (GCS, raylet, workers, the dashboard
and runtime-env agents). `ray.shutdown()` stops them when the driver exits, even on SIGTERM or
SIGINT (`flows.pipeline.signals`); after a SIGKILL nothing runs in the driver, and some of them (the
agents) keep running for good. So the CLI starts a reaper beside a run that starts a local
cluster: a small process in a session of its own that notes the driver's descendants every
`POLL_S` while the driver lives, and once it is gone, stops those still running (SIGTERM, then
SIGKILL after `GRACE_S`) and exits. Processes are recognised by pid and start time, so a pid
reused by another program is never touched. Linux only (/proc); elsewhere it does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 3.0


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        out[int(entry.name)] = int(text[text.rfind(")") + 2 :].split()[1])
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid` now (children, their children ...)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    out, todo = [], list(children.get(pid, ()))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def watch(driver: int) -> int:
    """Follow `driver`'s descendants until it is gone, then stop them; how many were stopped."""
    me = os.getpid()
    born = start_time(driver)
    tracked: dict[int, int] = {}
    while born is not None and start_time(driver) == born:
        for pid in descendants(driver):
            if pid != me and pid not in tracked:
                started = start_time(pid)
                if started is not None:
                    tracked[pid] = started
        time.sleep(POLL_S)
    left = [pid for pid, started in tracked.items() if start_time(pid) == started]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            left = [pid for pid in left if start_time(pid) == tracked[pid]]
            if not left:
                break
            time.sleep(0.1)
        if not left:
            break
    return len(tracked)


def start_reaper() -> int | None:
    """Start the reaper for this process (the driver); its pid, None where there is no /proc.

    Spawned, not kept as a `subprocess.Popen`: it outlives the driver by design, and a Popen
    object still running when the interpreter exits prints a ResourceWarning on the terminal."""
    global _started
    if not Path("/proc/self/stat").exists():
        return None
    if _started is not None and _started[0] == os.getpid():
        return _started[1]  # one reaper per driver process, however many runs it starts
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    # Run as a plain script (the standard library only): nothing of the package is imported.
    pid = os.posix_spawn(sys.executable, [sys.executable, "-I", str(Path(__file__).resolve()),
                                          str(os.getpid())],
                         os.environ, file_actions=devnull, setsid=True)
    _started = (os.getpid(), pid)
    return pid


#: (driver pid, reaper pid) of the reaper this process started, if any.
_started: tuple[int, int] | None = None


if __name__ == "__main__":
    watch(int(sys.argv[1]))
