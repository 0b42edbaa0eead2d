"""Synthetic test audio with known content: signals, WAV writing with recorder metadata, broken files.

Tests never use real recordings: everything here is generated from numbers, so each test knows
exactly what is in the audio (which tone, at which offset, in which file) and what the header says.

Metadata facts followed here (from the AudioMoth firmware and the GUANO specification):
- AudioMoth names files ``YYYYMMDD_HHMMSS.WAV`` in the zone it was configured with (UTC by default)
  and writes a RIFF ``LIST``/``INFO`` chunk before ``data`` holding ``ICMT`` ("Recorded at HH:MM:SS
  DD/MM/YYYY (UTC+h[:mm]) by AudioMoth <serial> at <gain> gain while battery was <V> and
  temperature was <C>.") and ``IART`` ("AudioMoth <serial>"). The time in the comment is local
  to the configured zone.
- GUANO lives in a ``guan`` chunk (usually after ``data``): UTF-8 text, first line
  ``GUANO|Version: 1.0``, then ``Key: value`` lines, padded to an even length with a newline.
"""

from __future__ import annotations

import csv
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from connectors.synthetic import (  # noqa: F401  (the tests' helpers, from one place)
    DEFAULT_SERIAL,
    _chunk,
    _split_chunks,
    audiomoth_comment,
    audiomoth_name,
    guano_payload,
    read_chunks,
    read_info,
    write_wav,
)

EVENT_RAMP_S = 0.01  # fade in/out of synthetic events, so their edges do not click
DEPLOYMENT_COLUMNS = ("deployment_id", "site_id", "latitude", "longitude", "recorder", "timezone")


# --- signals --------------------------------------------------------------------------------------


def _n_samples(duration_s: float, sample_rate_hz: int) -> int:
    if duration_s < 0 or sample_rate_hz <= 0:
        raise ValueError(f"need duration_s >= 0 and sample_rate_hz > 0, got {duration_s}, {sample_rate_hz}")
    return int(round(duration_s * sample_rate_hz))


def tone(freq_hz: float, duration_s: float, sample_rate_hz: int, amplitude: float = 0.5) -> np.ndarray:
    """A sine of peak ``amplitude`` (full scale = 1.0), shape (S,), float32."""
    if not 0 < freq_hz < sample_rate_hz / 2:
        raise ValueError(f"freq_hz={freq_hz} must lie in (0, Nyquist={sample_rate_hz / 2})")
    t_s = np.arange(_n_samples(duration_s, sample_rate_hz)) / sample_rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t_s)).astype(np.float32)


def chirp(
    start_hz: float, end_hz: float, duration_s: float, sample_rate_hz: int, amplitude: float = 0.5
) -> np.ndarray:
    """A linear frequency sweep from ``start_hz`` to ``end_hz``, shape (S,), float32."""
    nyquist_hz = sample_rate_hz / 2
    if not (0 < start_hz < nyquist_hz and 0 < end_hz < nyquist_hz):
        raise ValueError(f"chirp {start_hz}->{end_hz} Hz must lie in (0, Nyquist={nyquist_hz})")
    n = _n_samples(duration_s, sample_rate_hz)
    t_s = np.arange(n) / sample_rate_hz
    # Phase is the integral of the instantaneous frequency f(t) = start + (end - start) * t / T.
    sweep_rate = (end_hz - start_hz) / max(duration_s, 1e-12)
    phase = 2 * np.pi * (start_hz * t_s + 0.5 * sweep_rate * t_s**2)
    return (amplitude * np.sin(phase)).astype(np.float32)


def noise(duration_s: float, sample_rate_hz: int, level_dbfs: float = -50, seed: int = 0) -> np.ndarray:
    """White Gaussian noise whose RMS is ``level_dbfs`` relative to 1.0, shape (S,), float32."""
    rng = np.random.default_rng(seed)
    rms = 10 ** (level_dbfs / 20)
    return (rng.standard_normal(_n_samples(duration_s, sample_rate_hz)) * rms).astype(np.float32)


def fade(samples: np.ndarray, ramp_s: float, sample_rate_hz: int) -> np.ndarray:
    """A copy with raised-cosine fade-in and fade-out of ``ramp_s`` each (along axis 0)."""
    out = np.array(samples, dtype=np.float32, copy=True)
    n_ramp = min(_n_samples(ramp_s, sample_rate_hz), len(out) // 2)
    if n_ramp == 0:
        return out
    ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(n_ramp) / n_ramp)).astype(np.float32)
    if out.ndim == 2:
        ramp = ramp[:, None]  # (R, 1) broadcasts over channels
    out[:n_ramp] *= ramp
    out[len(out) - n_ramp :] *= ramp[::-1]
    return out


def place(background: np.ndarray, event: np.ndarray, offset_s: float, sample_rate_hz: int) -> np.ndarray:
    """A copy of ``background`` with ``event`` added starting at ``offset_s``.

    ``background`` is (S,) or (S, C); a mono ``event`` (E,) is added to every channel.
    """
    out = np.array(background, dtype=np.float32, copy=True)
    start = _n_samples(offset_s, sample_rate_hz)
    stop = start + len(event)
    if stop > len(out):
        raise ValueError(
            f"event of {len(event) / sample_rate_hz:.3f} s at offset_s={offset_s} ends past the "
            f"background ({len(out) / sample_rate_hz:.3f} s)"
        )
    if out.ndim == 2 and event.ndim == 1:
        event = event[:, None]  # (E, 1) broadcasts over channels
    out[start:stop] += event
    return out


# --- WAV writing and AudioMoth conventions: connectors.synthetic (shared with `dawnchorus demo`)


# --- broken files ---------------------------------------------------------------------------------


def zero_byte_file(path: str | Path) -> Path:
    """An empty file, as AudioMoth leaves behind when the battery dies at file creation."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def corrupt_file(path: str | Path, n_bytes: int = 64, seed: int = 0) -> Path:
    """Overwrite the first ``n_bytes`` (the header) with seeded random bytes; length unchanged."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    junk = np.random.default_rng(seed).integers(0, 256, size=min(n_bytes, len(data)), dtype=np.uint8)
    data[: len(junk)] = junk.tobytes()
    # A fixed non-audio magic, so no seed can make the junk look like a known format by chance.
    data[: min(4, len(data))] = b"JUNK"[: min(4, len(data))]
    path.write_bytes(bytes(data))
    return path


def truncate_wav(path: str | Path, keep_fraction: float) -> Path:
    """Cut the sample data to ``keep_fraction`` of its frames; the header still claims all of it.

    This is what an interrupted copy or a recorder losing power mid-file looks like. Chunks after
    ``data`` (e.g. ``guan``) are lost with the tail.
    """
    if not 0 <= keep_fraction < 1:
        raise ValueError(f"keep_fraction must lie in [0, 1), got {keep_fraction}")
    path = Path(path)
    data = path.read_bytes()
    block_align = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if chunk_id == b"fmt ":
            (block_align,) = struct.unpack("<H", data[pos + 20 : pos + 22])
        if chunk_id == b"data":
            if block_align is None:
                raise ValueError(f"{path}: 'data' chunk before 'fmt ' chunk")
            kept_frames = int(size // block_align * keep_fraction)
            with path.open("r+b") as f:
                f.truncate(pos + 8 + kept_frames * block_align)
            return path
        pos += 8 + size + (size % 2)
    raise ValueError(f"{path}: no 'data' chunk found")


def hostile_wav(
    path: str | Path,
    sample_rate_hz: int = 1,
    channels: int = 1,
    bits: int = 16,
    data_size: int = 0xFFFFFFF0,
    total_bytes: int = 144,
) -> Path:
    """A tiny WAV whose header lies: any rate and channel count, a data chunk claiming
    ``data_size`` bytes, and only ``total_bytes`` in the file (the rest of it is sample bytes).

    The issue's case is the default: 144 bytes claiming 1 Hz and a 0xFFFFFFF0-byte data chunk.
    """
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate_hz, sample_rate_hz * block_align,
                      block_align, bits)
    head = b"WAVE" + _chunk(b"fmt ", fmt) + b"data" + struct.pack("<I", data_size)
    samples = bytes(max(0, total_bytes - 8 - len(head)))
    riff_size = min(0xFFFFFFFF, len(head) + data_size)
    path = Path(path)
    path.write_bytes(b"RIFF" + struct.pack("<I", riff_size) + head + samples)
    return path


# --- deployments ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One synthetic call: a tone of ``freq_hz`` in ``file`` from ``offset_s`` for ``duration_s``."""

    file: Path
    offset_s: float
    duration_s: float
    freq_hz: float


def _resolve_tz(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return timezone.utc
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def make_deployment(
    root: str | Path,
    deployment_id: str,
    starts_utc: list[datetime],
    duration_s: float,
    sample_rate_hz: int,
    events: dict[int, list[tuple[float, float, float]]] | None = None,
    channels: int = 1,
    tz: str | tzinfo | None = None,
    serial: str = DEFAULT_SERIAL,
    level_dbfs: float = -50,
) -> list[Path]:
    """Write one AudioMoth deployment folder ``root/deployment_id`` and return its files in order.

    Recording ``i`` starts at ``starts_utc[i]`` (aware, or naive meaning UTC), holds seeded noise at
    ``level_dbfs`` and, for each ``(offset_s, duration_s, freq_hz)`` in ``events[i]``, a tone of
    amplitude 0.5 in every channel. ``tz`` (IANA name or tzinfo) plays the recorder's configured
    zone: it sets both the file name's clock and the comment's "(UTC+h)"; None means UTC.
    """
    events = events or {}
    unknown = sorted(set(events) - set(range(len(starts_utc))))
    if unknown:
        raise ValueError(f"events given for recordings {unknown}, but only {len(starts_utc)} starts")
    zone = _resolve_tz(tz)
    folder = Path(root) / deployment_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, start in enumerate(starts_utc):
        start_utc = start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start
        local_start = start_utc.astimezone(zone)
        # zlib.crc32 rather than hash(): stable across processes, so files are reproducible.
        seed = zlib.crc32(f"{deployment_id}/{index}".encode())
        audio = noise(duration_s, sample_rate_hz, level_dbfs=level_dbfs, seed=seed)
        if channels > 1:
            extra = [noise(duration_s, sample_rate_hz, level_dbfs, seed + c) for c in range(1, channels)]
            audio = np.stack([audio, *extra], axis=1)  # (S, C)
        for offset_s, event_s, freq_hz in events.get(index, []):
            call = fade(tone(freq_hz, event_s, sample_rate_hz, amplitude=0.5), EVENT_RAMP_S, sample_rate_hz)
            audio = place(audio, call, offset_s, sample_rate_hz)
        path = folder / audiomoth_name(local_start)
        write_wav(
            path,
            audio,
            sample_rate_hz,
            comment=audiomoth_comment(local_start, serial=serial),
            artist=f"AudioMoth {serial}",
        )
        paths.append(path)
    return paths


def deployment_events(
    paths: list[Path], events: dict[int, list[tuple[float, float, float]]]
) -> list[Event]:
    """The ``events`` given to :func:`make_deployment` as :class:`Event` rows, keyed by file."""
    return [
        Event(file=paths[index], offset_s=offset_s, duration_s=duration_s, freq_hz=freq_hz)
        for index in sorted(events)
        for offset_s, duration_s, freq_hz in events[index]
    ]


def write_deployments_csv(root: str | Path, rows: list[dict[str, object]]) -> Path:
    """Write ``root/deployments.csv`` with the columns of ``DEPLOYMENT_COLUMNS`` (missing = empty)."""
    path = Path(root) / "deployments.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    for row in rows:
        extra = sorted(set(row) - set(DEPLOYMENT_COLUMNS))
        if extra:
            raise ValueError(f"deployments.csv row has unknown columns {extra}; known: {DEPLOYMENT_COLUMNS}")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=DEPLOYMENT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path
