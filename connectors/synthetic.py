"""Synthetic recordings as recorders write them: a WAV with AudioMoth's RIFF metadata (a
``LIST``/``INFO`` chunk before ``data`` holding ``ICMT`` and ``IART``) and, optionally, a GUANO
``guan`` chunk. One writer, shared by `dawnchorus demo` and the tests (`tests/support/`).

Metadata facts followed here (from the AudioMoth firmware and the GUANO specification):
- AudioMoth names files ``YYYYMMDD_HHMMSS.WAV`` in the zone it was configured with (UTC by default)
  and writes ``ICMT`` ("Recorded at HH:MM:SS DD/MM/YYYY (UTC+h[:mm]) by AudioMoth <serial> at
  <gain> gain while battery was <V> and temperature was <C>.") and ``IART`` ("AudioMoth
  <serial>"). The time in the comment is local to the configured zone.
- GUANO: UTF-8 text, first line ``GUANO|Version: 1.0``, then ``Key: value`` lines, padded to an
  even length with a newline.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile as sf

DEFAULT_SERIAL = "24E1440360379295"


# --- WAV writing with RIFF metadata chunks --------------------------------------------------------


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) % 2 else b""
    return chunk_id + struct.pack("<I", len(payload)) + payload + pad


def _split_chunks(data: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """The top-level chunks of a RIFF/WAVE file as (id, payload) pairs."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{where}: not a RIFF/WAVE file")
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        chunks.append((chunk_id, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size % 2)
    return chunks


def _info_payload(fields: dict[str, str]) -> bytes:
    body = b"".join(
        _chunk(key.encode("ascii"), value.encode("utf-8") + b"\x00") for key, value in fields.items()
    )
    return b"INFO" + body


def guano_payload(guano: dict[str, object]) -> bytes:
    """GUANO text for a ``guan`` chunk: version line first, UTF-8, newline-padded to even length."""
    lines = ["GUANO|Version: 1.0"]
    lines += [f"{key}: {value}" for key, value in guano.items() if key != "GUANO|Version"]
    payload = "\n".join(lines).encode("utf-8")
    return payload + b"\n" if len(payload) % 2 else payload


def write_wav(
    path: str | Path,
    samples: np.ndarray,
    sample_rate_hz: int,
    subtype: str = "PCM_16",
    comment: str | None = None,
    guano: dict[str, object] | None = None,
    artist: str | None = None,
) -> Path:
    """Write ``samples`` (S,) or (S, C) as a WAV, then add recorder metadata chunks.

    ``comment``/``artist`` go into a ``LIST``/``INFO`` chunk (``ICMT``/``IART``) placed before
    ``data``, as AudioMoth does; ``guano`` goes into a ``guan`` chunk after ``data``. The RIFF
    size is rewritten so that the result is a valid WAV soundfile still reads.
    """
    path = Path(path)
    sf.write(path, samples, sample_rate_hz, subtype=subtype, format="WAV")
    if comment is None and guano is None and artist is None:
        return path
    chunks = _split_chunks(path.read_bytes(), str(path))
    info = {}
    if comment is not None:
        info["ICMT"] = comment
    if artist is not None:
        info["IART"] = artist
    out = []
    for chunk_id, payload in chunks:
        if chunk_id == b"data" and info:
            out.append(_chunk(b"LIST", _info_payload(info)))
        out.append(_chunk(chunk_id, payload))
    if guano is not None:
        out.append(_chunk(b"guan", guano_payload(guano)))
    body = b"WAVE" + b"".join(out)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def read_chunks(path: str | Path) -> list[tuple[str, bytes]]:
    """Top-level RIFF chunks of a WAV file as (id, payload): an oracle independent of libsndfile."""
    chunks = _split_chunks(Path(path).read_bytes(), str(path))
    return [(chunk_id.decode("latin-1"), payload) for chunk_id, payload in chunks]


def read_info(path: str | Path) -> dict[str, str]:
    """The ``LIST``/``INFO`` fields of a WAV (e.g. ``{"ICMT": ..., "IART": ...}``), NULs stripped."""
    fields: dict[str, str] = {}
    for chunk_id, payload in read_chunks(path):
        if chunk_id != "LIST" or payload[:4] != b"INFO":
            continue
        pos = 4
        while pos + 8 <= len(payload):
            key = payload[pos : pos + 4].decode("ascii")
            (size,) = struct.unpack("<I", payload[pos + 4 : pos + 8])
            fields[key] = payload[pos + 8 : pos + 8 + size].rstrip(b"\x00").decode("utf-8")
            pos += 8 + size + (size % 2)
    return fields


# --- AudioMoth conventions ------------------------------------------------------------------------


def _utc_offset_text(offset: timedelta) -> str:
    """AudioMoth's zone suffix: "" for UTC, "+8", "-5", "+10:30", "-3:30" (hours unpadded)."""
    total_min = int(offset.total_seconds() // 60)
    if total_min == 0:
        return ""
    sign = "+" if total_min > 0 else "-"
    hours, minutes = divmod(abs(total_min), 60)
    return f"{sign}{hours}" + (f":{minutes:02d}" if minutes else "")


def audiomoth_comment(
    start: datetime,
    serial: str = DEFAULT_SERIAL,
    gain: str = "medium",
    battery_v: float = 4.2,
    temperature_c: float = 12.5,
) -> str:
    """The ICMT comment AudioMoth firmware (1.5+) writes, for a recording starting at ``start``.

    ``start`` must be time-zone aware; the comment shows its local time and UTC offset, exactly as
    a recorder configured with that offset would, e.g. "Recorded at 05:00:00 15/05/2024 (UTC+1) by
    AudioMoth 24E1440360379295 at medium gain while battery was 4.2V and temperature was 12.5C.".
    """
    offset = start.utcoffset()
    if offset is None:
        raise ValueError(f"audiomoth_comment needs an aware datetime, got naive {start!r}")
    return (
        f"Recorded at {start:%H:%M:%S %d/%m/%Y} (UTC{_utc_offset_text(offset)}) by AudioMoth {serial} "
        f"at {gain} gain while battery was {battery_v:.1f}V and temperature was {temperature_c:.1f}C."
    )


def audiomoth_name(start_utc: datetime) -> str:
    """AudioMoth file name "YYYYMMDD_HHMMSS.WAV", in ``start_utc``'s own zone (naive = as given)."""
    return f"{start_utc:%Y%m%d_%H%M%S}.WAV"
