"""Short spans of one recording, for people to hear and see (the review page's audio and
spectrograms): open a recording by its catalog uri, read a few seconds by seeking, write them
as a WAV.

Nothing here is analysis: a span is read at the file's own rate, with no resampling, and a
non-finite sample (a float file can hold NaN) is played as silence.
"""

from __future__ import annotations

import io
import math
import posixpath
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import soundfile as sf

from connectors.errors import ConfigError, InputError
from connectors.storage import object_version, open_root

#: The longest span served: a window plus its context, never a whole recording.
MAX_SPAN_S = 120.0


class SourceMissing(InputError):
    """The recording is no longer where the catalog says it is."""


class SourceChanged(InputError):
    """The recording was rewritten since it was analysed."""


@dataclass(frozen=True)
class Span:
    """A stretch of one channel of a recording."""

    samples: np.ndarray  # (F,) float32, full scale 1.0
    sample_rate_hz: int
    start_s: float  # from the start of the file
    channel: int  # 0 = mean of all channels; 1..N = that channel

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


def open_recording(uri: str, storage_options: dict[str, Any] | None = None
                   ) -> tuple[fsspec.AbstractFileSystem, str]:
    """(fs, path) for a recording's catalog uri: an absolute local path, file:// or s3://."""
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme not in ("", "file", "s3", "s3a"):
        raise InputError(uri, f"unsupported scheme {scheme!r}")
    try:
        if scheme in ("s3", "s3a"):
            fs, _ = open_root(f"s3://{rest.split('/', 1)[0]}", storage_options)
            return fs, rest
        path = rest if scheme == "file" else uri
        fs, folder = open_root(posixpath.dirname(path) or "/", storage_options)
    except ConfigError as exc:
        raise SourceMissing(uri, f"not reachable: {exc}") from None
    return fs, f"{folder}/{posixpath.basename(path)}"


def check_unchanged(fs: fsspec.AbstractFileSystem, path: str, uri: str, size_bytes: int | None,
                    version_tag: str) -> None:
    """InputError unless the file is still the version the catalog analysed."""
    try:
        size, tag = object_version(fs, path)
    except FileNotFoundError:
        raise SourceMissing(uri, "file not found") from None
    if (size, tag) != (size_bytes, version_tag):
        raise SourceChanged(uri, f"file changed since it was analysed (size {size_bytes} -> {size} "
                              "bytes); the next run analyses the new version")


def read_span(fs: fsspec.AbstractFileSystem, path: str, start_s: float, end_s: float,
              channel: int, uri: str | None = None) -> Span:
    """Channel `channel` (0 = the mean of all channels) from `start_s` to `end_s`, clipped to the
    file; InputError for a file that cannot be read."""
    uri = uri or path
    if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
        raise ValueError(f"span {start_s}..{end_s} s: expected 0 <= start < end")
    if end_s - start_s > MAX_SPAN_S:
        raise ValueError(f"span of {end_s - start_s:.1f} s: at most {MAX_SPAN_S:.0f} s is served")
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError:
        raise SourceMissing(uri, "file not found") from None
    except OSError as exc:
        raise InputError(uri, f"cannot open: {exc}") from exc
    with handle:
        try:
            with sf.SoundFile(handle) as snd:
                rate, channels = snd.samplerate, snd.channels
                if not 0 <= channel <= channels:
                    raise InputError(uri, f"channel {channel}: the file has {channels}")
                first = min(round(start_s * rate), snd.frames)
                last = min(round(end_s * rate), snd.frames)
                snd.seek(first)
                frames = snd.read(last - first, dtype="float32", always_2d=True)  # (F, C)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InputError(uri, f"cannot decode: {exc}") from exc
    mono = frames.mean(axis=1) if channel == 0 else frames[:, channel - 1]  # (F,)
    mono = np.where(np.isfinite(mono), mono, np.float32(0)).astype(np.float32)
    return Span(samples=mono, sample_rate_hz=rate, start_s=first / rate, channel=channel)


def wav_bytes(span: Span, slower: int = 1) -> bytes:
    """The span as a 16-bit PCM WAV file (what every browser's audio element plays).

    `slower` > 1 is time expansion, as bat detectors do it: the same samples under a sample rate
    that many times lower, so the clip plays that many times longer and every frequency is that
    many times lower (a 45 kHz call sounds at 4.5 kHz when 10 times slower)."""
    if slower < 1:
        raise ValueError(f"slower must be a whole number >= 1, got {slower}")
    out = io.BytesIO()
    sf.write(out, np.clip(span.samples, -1.0, 1.0), max(1, round(span.sample_rate_hz / slower)),
             format="WAV", subtype="PCM_16")
    return out.getvalue()
