"""What every benchmark here shares: summaries of repeats, the machine, the load, process-tree
memory, and synthetic recordings named as recorders name them."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]

from bench.bench_decode import load_average, write_recording  # noqa: E402


def summary(values: Sequence[float]) -> dict:
    """A figure over repeats: its median, its range and every repeat."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "repeats": len(values), "values": values}


def ratio_summary(numerators: Sequence[float], denominators: Sequence[float]) -> dict:
    """Per-round ratios (each round's pair measured back to back), summarised."""
    return summary([n / d for n, d in zip(numerators, denominators)])


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gb": mem_gb, "machine": platform.machine(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}


class TreeMemory:
    """Peak memory of a process and all its descendants together, sampled while it runs.

    Sums PSS (proportional set size: a page shared by n processes counts 1/n in each), so Ray's
    shared object store and shared libraries count once, not once per worker.
    """

    def __init__(self, pid: int, interval_s: float = 0.5):
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total, count = 0, 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except self._psutil.Error:
            return
        for proc in procs:
            try:
                info = proc.memory_full_info()
                total += getattr(info, "pss", info.rss)
                count += 1
            except self._psutil.Error:
                continue
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_processes = total, count

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Timed:
    wall_s: float
    peak_mb: float | None = None
    processes: int | None = None
    stdout: str = ""
    load_before: float | None = None
    load_after: float | None = None
    extra: dict = field(default_factory=dict)


def run_process(cmd: list[str], env: dict[str, str] | None = None, memory: bool = False,
                timeout_s: float = 3600) -> Timed:
    """Run a command to completion: wall time (start to exit), and peak tree memory if asked."""
    load_before = load_average()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    monitor = TreeMemory(proc.pid) if memory else None
    if monitor:
        monitor.__enter__()
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if monitor:
            monitor.__exit__(None, None, None)
    wall_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed (exit {proc.returncode}):\n{err[-3000:]}")
    return Timed(wall_s, monitor.peak_bytes / 2**20 if monitor else None,
                 monitor.peak_processes if monitor else None, out, load_before, load_average())


START = datetime(2024, 6, 1, 20, 0, tzinfo=timezone.utc)


def write_source(root: Path, files: Sequence[tuple[str, float, str]], rate_hz: int = 48_000) -> list[Path]:
    """Recordings under `root/<deployment>/`, named as AudioMoths name them (their start, UTC).

    files: (deployment, hours, "WAV" | "FLAC"), written one after the other in time.
    """
    paths, start = [], START
    for deployment, hours, fmt in files:
        folder = root / deployment
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "WAV" if fmt == "WAV" else "flac"
        path = folder / f"{start:%Y%m%d_%H%M%S}.{suffix}"
        write_recording(path, hours * 3600, rate_hz, 1, fmt)
        paths.append(path)
        start += timedelta(hours=hours)
    return paths


def dawnchorus_env(tmp: Path) -> dict[str, str]:
    """Our CLI's environment: no Prefect API (a plain run), no stale Ray address, quiet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API") and k != "RAY_ADDRESS"}
    env.update(RAY_USAGE_STATS_ENABLED="0", DO_NOT_TRACK="1", PREFECT_HOME=str(tmp / "prefect-home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env
