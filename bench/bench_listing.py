"""Listing a local source: our symlink-following walker against fsspec's ``find``.

Run: `.venv/bin/python -m bench.bench_listing [--deployments 40] [--files 500] [--rounds 5]`.
Prints a table and writes `bench/results/listing.json`. Builds one tree in a temporary folder:
``--deployments`` folders of ``--files`` empty ``.WAV`` files each, every one with a ``.txt``
sidecar (AudioMoth cards carry CONFIG.TXT, Song Meters summary files), and times side by side:

- `fsspec_find` — `LocalFileSystem.find(root, detail=True)` plus the extension filter, what
  `list_recordings` did before it followed links (it dropped every link);
- `list_recordings` — `connectors.storage.list_recordings` on the same root: every entry
  stat-ed through links, each non-recording kept as a `SkippedPath`;
- `list_recordings_linked` — the same, with a quarter of the deployments reached through a
  symbolic link to a folder outside the root (fsspec's find lists none of their files).

Methods are interleaved round by round and each keeps its fastest round. The page cache is warm
for both (the tree was just written), which is the fair comparison of their CPU cost; a cold
listing of a field disk is dominated by the disk for either.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]

from fsspec.implementations.local import LocalFileSystem  # noqa: E402

from bench.bench_decode import load_average  # noqa: E402
from connectors.storage import AUDIO_EXTENSIONS, list_recordings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "listing.json"
FIRST_START = datetime(2024, 5, 1)


def build_tree(base: Path, deployments: int, files: int, linked: bool) -> Path:
    """``base/root`` with the deployments; with ``linked``, every fourth one lives in
    ``base/elsewhere`` and is linked into the root."""
    root = base / "root"
    root.mkdir(parents=True)
    for d in range(deployments):
        name = f"dep{d:03d}"
        if linked and d % 4 == 0:
            folder = base / "elsewhere" / name
            folder.mkdir(parents=True)
            (root / name).symlink_to(folder, target_is_directory=True)
        else:
            folder = root / name
            folder.mkdir()
        for f in range(files):
            stem = f"{FIRST_START + timedelta(minutes=10 * f):%Y%m%d_%H%M%S}"  # AudioMoth names
            (folder / f"{stem}.WAV").touch()
            (folder / f"{stem}.txt").touch()
    return root


def fsspec_find(root: str) -> int:
    listing = LocalFileSystem().find(root, detail=True)
    return sum(1 for path, info in listing.items()
               if info["type"] == "file" and path.lower().endswith(AUDIO_EXTENSIONS))


def ours(root: str) -> int:
    return len(list_recordings(LocalFileSystem(), root).objects)


def _timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    found = fn()
    return time.perf_counter() - started, found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=40)
    parser.add_argument("--files", type=int, default=500, help="recordings per deployment")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repeats; the fastest counts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.deployments, args.files, args.rounds) < 1:
        parser.error("--deployments, --files and --rounds must each be >= 1")

    with tempfile.TemporaryDirectory(prefix="dawnchorus-bench-") as tmp:
        plain = str(build_tree(Path(tmp) / "plain", args.deployments, args.files, linked=False))
        linked = str(build_tree(Path(tmp) / "linked", args.deployments, args.files, linked=True))
        methods: dict[str, Callable[[], int]] = {
            "fsspec_find": lambda: fsspec_find(plain),
            "list_recordings": lambda: ours(plain),
            "fsspec_find_linked": lambda: fsspec_find(linked),
            "list_recordings_linked": lambda: ours(linked),
        }
        load_before = load_average()
        times: dict[str, list[float]] = {name: [] for name in methods}
        found: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, fn in methods.items():
                seconds, found[name] = _timed(fn)
                times[name].append(seconds)
    best = {name: min(values) for name, values in times.items()}
    entries = 2 * args.deployments * args.files
    result = {
        "config": {
            "deployments": args.deployments, "files_per_deployment": args.files, "entries": entries,
            "rounds": args.rounds, "timing": "fastest of the interleaved rounds",
            "load_average_1min_before": load_before, "load_average_1min_after": load_average(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "recordings_found": found,
        "us_per_entry": {name: 1e6 * seconds / entries for name, seconds in best.items()},
        "list_recordings_over_fsspec_find": best["list_recordings"] / best["fsspec_find"],
        "seconds": times,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"{entries} entries ({args.deployments} deployments x {args.files} recordings + sidecars)")
    print(f"{'method':26} {'recordings':>10} {'us/entry':>9}")
    for name in methods:
        print(f"{name:26} {found[name]:>10} {result['us_per_entry'][name]:>9.2f}")
    print(f"list_recordings / fsspec_find time: {result['list_recordings_over_fsspec_find']:.2f}")
    return result


if __name__ == "__main__":
    main()
