"""Audio headers, window planning and streaming window decode.

- :func:`read_header` reads only a recording's header (format, rate, channels, length, the
  AudioMoth comment, GUANO metadata) - discovery calls it for every file, so it never touches
  sample data.
- :func:`plan_windows` cuts a recording's duration into analysis windows with an explicit tail
  policy; :func:`plan_windows_frames` does the same in exact integer frames.
- :func:`iter_windows` decodes just the requested windows, mixes or splits channels, and
  resamples each to the model's rate. By default a unit's windows are read in one forward pass
  (one seek to the first, then sequential reads: compressed formats never re-read or re-seek);
  ``read_mode="seek"`` is the plain reference path, one seek + read per window. Both hand every
  window exactly the same samples.

Files are opened through fsspec, so local files and s3fs objects (HTTP range reads) work alike.
Window and hop lengths come from the caller (the model decides them); nothing here is
model-specific.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec
import guano
import numpy as np
import soundfile as sf
import soxr
from fsspec.spec import AbstractBufferedFile

from connectors.audio_qc import WindowQuality, full_scale, measure
from connectors.errors import InputError

log = logging.getLogger(__name__)

HEADER_BLOCK_SIZE_BYTES = 64 * 1024
"""fsspec read block when reading headers: s3fs's default (50 MiB read-ahead) would download
most of a recording just to learn its length."""
WINDOW_BLOCK_SIZE_BYTES = 1024 * 1024
"""Largest read-ahead block when decoding windows of a remote file (one ranged GET each)."""
FIRST_BLOCK_SIZE_BYTES = 64 * 1024
"""Read-ahead block after a seek (the header, the first window): it doubles while reads stay
sequential, up to WINDOW_BLOCK_SIZE_BYTES, so a unit that starts mid-file fetches neither a
megabyte of header nor a megabyte of the wrong place."""
RESAMPLE_MARGIN_S = 0.1
"""Native audio read on each side of a window, so the resampler's filter sees real neighbours
and a window decodes the same whatever other windows are requested with it."""
SEQUENTIAL_GAP_S = 10.0
"""In a sequential pass, a gap of at most this much audio between two requested windows (a unit
planned around already committed windows) is read through; a longer one is seeked over."""
READ_MODES = ("sequential", "seek")
#: How windows are brought to the model's rate: "soxr" (soxr's very-high-quality filter, the
#: default) or "polyphase" (scipy's resample_poly with its default Kaiser window: what librosa's
#: "polyphase" and so BatDetect2 use). A backend names the one its reference implementation uses
#: (`ModelBackend.resampler`), so its answers match the reference's.
RESAMPLERS = ("soxr", "polyphase")
MAX_METADATA_CHUNK_BYTES = 1024 * 1024
"""Larger LIST/guan chunks are skipped rather than read (they are a few hundred bytes)."""
# Headers are not trusted: every value that sizes work is checked before anything is planned or
# allocated, so a file whose header lies (a 144-byte WAV claiming 1 Hz and a 4 GB data chunk)
# fails with its reason instead of planning hundreds of millions of windows.
MIN_SAMPLE_RATE_HZ = 100
"""Lowest native rate accepted (infrasound recorders go down to a few hundred Hz)."""
MAX_SAMPLE_RATE_HZ = 2_000_000
"""Highest native rate accepted (ultrasonic bat recorders reach 500 kHz-1 MHz)."""
MAX_CHANNELS = 64
"""Most channels accepted (microphone arrays; libsndfile itself allows 1024)."""
MAX_DURATION_S = 31 * 24 * 3600.0
"""Longest recording a header may declare: 31 days. It bounds the windows planned (and the
effort rows written) per recording, whatever a truncated file's header claims."""
MAX_SPAN_BYTES = 1024**3
"""Most float32 bytes one window's read span (all channels, with its resampling margins) may
take: a window of ``window_s`` at a header's rate and channel count beyond it fails the file
rather than allocating it."""
_MAX_RIFF_CHUNKS = 4096  # bound on the chunk walk, against corrupt size fields that loop
_RIFF_SIZE_PLACEHOLDERS = (0, 0xFFFFFFFF)  # written by recorders before the size is known

TAIL_POLICIES = ("pad", "drop", "shift")
CHANNEL_POLICIES = ("mean", "each")


@dataclass(frozen=True)
class AudioHeader:
    """What a recording's header says about it."""

    frames: int
    """Frames per channel the header declares (for a truncated WAV, more than the file holds)."""
    sample_rate_hz: int
    channels: int
    duration_s: float
    format: str
    """libsndfile's major format: ``WAV``, ``WAVEX``, ``RF64``, ``FLAC``, ``OGG``, ``MP3``."""
    subtype: str
    """Sample encoding: ``PCM_16``, ``FLOAT``, ``VORBIS``, ``MPEG_LAYER_III`` ..."""
    comment: str | None
    """RIFF LIST/INFO ICMT (where AudioMoth writes its comment), else the file's comment tag."""
    guano: dict[str, Any] | None
    """GUANO metadata (``{"GUANO|Version": "1.0", "Timestamp": "2024-05-01T07:00:00+02:00", ...}``)
    if present; the Timestamp is kept as written."""
    truncated: bool = False
    """True when the file holds fewer sample bytes than its header declares."""


def read_header(fs: fsspec.AbstractFileSystem, path: str, uri: str | None = None) -> AudioHeader:
    """Read a recording's header through ``fs``; never reads sample data.

    Raises InputError(uri, reason) for an empty, corrupt or unrecognised file, or one with no
    frames or channels.
    """
    uri = uri or path
    try:
        handle = fs.open(path, "rb", block_size=HEADER_BLOCK_SIZE_BYTES)
    except FileNotFoundError:
        raise InputError(uri, "file not found") from None
    except OSError as exc:
        raise InputError(uri, f"cannot open: {exc}") from exc
    with handle:
        size_bytes = _size(handle)
        if size_bytes == 0:
            raise InputError(uri, "empty file (0 bytes)")
        handle.seek(0)
        source = _Remembering(handle)
        try:
            with sf.SoundFile(source) as snd:
                frames, sample_rate_hz, channels = snd.frames, snd.samplerate, snd.channels
                major, subtype, tag_comment = snd.format, snd.subtype, snd.comment
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            source.raise_if_failed(uri)  # a read that failed is not a bad format
            raise InputError(uri, f"not a recognised audio format: {_libsndfile_reason(exc)}") from exc
        source.raise_if_failed(uri)
        riff = _walk_riff(handle, size_bytes, uri) if major in ("WAV", "WAVEX", "RF64") else None

    if sample_rate_hz <= 0:
        raise InputError(uri, f"invalid sample rate {sample_rate_hz} Hz")
    if not MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise InputError(uri, f"header sample rate {sample_rate_hz} Hz is outside "
                              f"{MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ} Hz")
    if channels <= 0:
        raise InputError(uri, "no audio channels (0 channels)")
    if channels > MAX_CHANNELS:
        raise InputError(uri, f"header declares {channels} channels (at most {MAX_CHANNELS})")
    truncated = False
    if riff is not None and riff.declared_frames is not None and riff.declared_frames > frames:
        log.warning(
            "%s: header declares %d frames, file holds %d (truncated)", uri, riff.declared_frames, frames
        )
        frames, truncated = riff.declared_frames, True
    if frames <= 0:
        raise InputError(uri, "no audio frames (0 frames)")
    if frames / sample_rate_hz > MAX_DURATION_S:
        held = f", the file holds {size_bytes} bytes" if truncated else ""
        raise InputError(uri, f"header declares {frames} frames at {sample_rate_hz} Hz "
                              f"({frames / sample_rate_hz / 86400:.0f} days{held}); "
                              f"at most {MAX_DURATION_S / 86400:.0f} days per recording")
    comment = riff.comment if riff is not None and riff.comment else ((tag_comment or "").strip() or None)
    return AudioHeader(
        frames=frames,
        sample_rate_hz=sample_rate_hz,
        channels=channels,
        duration_s=frames / sample_rate_hz,
        format=major,
        subtype=subtype,
        comment=comment,
        guano=riff.guano if riff is not None else None,
        truncated=truncated,
    )


def check_recording_rate(uri: str, sample_rate_hz: int, min_rate_hz: int | None) -> None:
    """Refuse a recording too slow for the model's band (an ultrasonic model's
    `min_recording_rate_hz`): resampling up adds no frequencies, so its windows would be effort
    over a band the file never held. InputError naming the file and both rates."""
    if min_rate_hz is not None and sample_rate_hz < min_rate_hz:
        raise InputError(uri, f"recorded at {sample_rate_hz / 1000:g} kHz, below the "
                              f"{min_rate_hz / 1000:g} kHz the model needs to hear its band: "
                              "not resampled up, not analysed")


def _size(handle: BinaryIO) -> int:
    handle.seek(0, 2)
    return handle.tell()


def _libsndfile_reason(exc: Exception) -> str:
    # libsndfile messages start "Error opening <repr of the file object>: "; keep the reason.
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


@dataclass(frozen=True)
class _RiffInfo:
    declared_frames: int | None
    comment: str | None
    guano: dict[str, Any] | None


def _walk_riff(handle: BinaryIO, size_bytes: int, uri: str) -> _RiffInfo:
    """Walk a WAV's chunk headers, seeking over the data chunk, for metadata and declared length.

    Tolerant: a short read or a bad chunk ends the walk with what was found so far, since
    libsndfile has already accepted the file.
    """
    handle.seek(0)
    riff_id, _, wave_id = struct.unpack("<4sI4s", _read_exact(handle, 12) or b"\0" * 12)
    if riff_id not in (b"RIFF", b"RF64") or wave_id != b"WAVE":
        return _RiffInfo(None, None, None)
    block_align = None
    data_size = None
    data_start = None
    ds64_data_size = None
    comment = None
    guano_meta = None
    position = 12
    for _ in range(_MAX_RIFF_CHUNKS):
        if position + 8 > size_bytes:
            break
        handle.seek(position)
        chunk_header = _read_exact(handle, 8)
        if chunk_header is None:
            break
        chunk_id, chunk_size = struct.unpack("<4sI", chunk_header)
        body_start = position + 8
        if chunk_id == b"fmt " and chunk_size >= 16:
            body = _read_exact(handle, 16)
            if body is not None:
                block_align = struct.unpack("<HHIIH", body[:14])[4]
        elif chunk_id == b"ds64" and chunk_size >= 16:
            body = _read_exact(handle, 16)
            if body is not None:
                ds64_data_size = struct.unpack("<QQ", body)[1]
        elif chunk_id == b"data":
            data_start = body_start
            data_size = ds64_data_size if (riff_id == b"RF64" and ds64_data_size is not None) else chunk_size
            if data_size in _RIFF_SIZE_PLACEHOLDERS:
                data_size = None
            if data_size is None or body_start + data_size > size_bytes:
                break  # the data runs to the end of the file: nothing after it to read
            chunk_size = data_size if riff_id == b"RF64" else chunk_size
        elif chunk_id == b"LIST" and 4 <= chunk_size <= MAX_METADATA_CHUNK_BYTES:
            body = _read_exact(handle, chunk_size)
            if body is not None and body[:4] == b"INFO":
                comment = _info_comment(body[4:]) or comment
        elif chunk_id == b"guan" and chunk_size <= MAX_METADATA_CHUNK_BYTES:
            body = _read_exact(handle, chunk_size)
            if body is not None:
                guano_meta = _parse_guano(body, uri)
        # Chunks are word-aligned: an odd size is followed by one pad byte.
        position = body_start + chunk_size + (chunk_size & 1)

    declared_frames = None
    if block_align and data_size is not None and data_start is not None:
        declared_frames = data_size // block_align
    return _RiffInfo(declared_frames, comment, guano_meta)


def _read_exact(handle: BinaryIO, count: int) -> bytes | None:
    data = handle.read(count)
    return data if len(data) == count else None


def _info_comment(body: bytes) -> str | None:
    """The ICMT entry of a LIST/INFO body, decoded."""
    position = 0
    while position + 8 <= len(body):
        entry_id, entry_size = struct.unpack("<4sI", body[position : position + 8])
        value = body[position + 8 : position + 8 + entry_size]
        if entry_id == b"ICMT":
            text = _decode_text(value).strip("\x00").strip()
            return text or None
        position += 8 + entry_size + (entry_size & 1)
    return None


def _decode_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _parse_guano(body: bytes, uri: str) -> dict[str, Any] | None:

    text = _decode_text(body).strip("\x00")
    try:
        parsed = guano.GuanoFile.from_string(text)
    except (ValueError, TypeError) as exc:
        log.warning("%s: unreadable GUANO metadata ignored: %s", uri, exc)
        return None
    meta = dict(parsed.items())
    # The Timestamp as written: guano folds an offset such as +05:75 into +06:15, and the time
    # rule must see the digits to refuse them (connectors.timeparse).
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("Timestamp", "GUANO|Timestamp") and "Timestamp" in meta:
            meta["Timestamp"] = value.strip()
    return meta or None


@dataclass(frozen=True)
class WindowSpec:
    """One planned analysis window of a recording."""

    index: int
    offset_s: float
    """Start of the window from the start of the recording."""
    duration_s: float
    """Seconds of real audio in the window (less than the window length when padded)."""
    padded: bool
    """True when the window runs past the end of the recording and is zero-padded."""


def plan_windows(
    duration_s: float, window_s: float = 10.0, hop_s: float | None = None, tail: str = "pad"
) -> list[WindowSpec]:
    """Cut ``duration_s`` of audio into windows of ``window_s`` starting every ``hop_s``.

    ``hop_s`` defaults to ``window_s`` (no overlap). Tail policies:

    - ``"pad"``: cover everything; the last window is zero-padded if it runs past the end
      (a recording shorter than one window gives one padded window).
    - ``"drop"``: full windows only.
    - ``"shift"``: full windows, plus - if audio remains after the last - one full window
      ending exactly at the end (overlapping its predecessor). A recording shorter than one
      window gives none.

    Computed on a microsecond grid, so 10 s windows over 30 s give exactly 3. Use
    :func:`plan_windows_frames` when the frame count is known.
    """
    _check_window_args(window_s, hop_s, tail)
    if not math.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    ticks_per_s = 1_000_000
    hop = window_s if hop_s is None else hop_s
    total, window, hop_ticks = (round(value * ticks_per_s) for value in (duration_s, window_s, hop))
    return _plan(total, window, hop_ticks, tail, ticks_per_s)


def plan_windows_frames(
    frames: int, sample_rate_hz: int, window_s: float = 10.0, hop_s: float | None = None, tail: str = "pad"
) -> list[WindowSpec]:
    """:func:`plan_windows` in whole frames: window starts fall exactly on sample boundaries."""
    _check_window_args(window_s, hop_s, tail)
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz!r}")
    if frames < 0:
        raise ValueError(f"frames must be >= 0, got {frames!r}")
    hop = window_s if hop_s is None else hop_s
    window_frames = round(window_s * sample_rate_hz)
    hop_frames = round(hop * sample_rate_hz)
    if window_frames < 1 or hop_frames < 1:
        raise ValueError(f"window_s and hop_s must each cover at least one frame at {sample_rate_hz} Hz")
    return _plan(frames, window_frames, hop_frames, tail, sample_rate_hz)


def _check_window_args(window_s: float, hop_s: float | None, tail: str) -> None:
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
    if hop_s is not None and not (isinstance(hop_s, (int, float)) and math.isfinite(hop_s) and hop_s > 0):
        raise ValueError(f"hop_s must be a finite number > 0, got {hop_s!r}")
    if tail not in TAIL_POLICIES:
        raise ValueError(f"tail must be one of {', '.join(TAIL_POLICIES)}, got {tail!r}")


def _plan(total: int, window: int, hop: int, tail: str, ticks_per_s: int) -> list[WindowSpec]:
    """Window plan in integer ticks (frames, or microseconds); times converted once at the end."""
    if total <= 0 or window <= 0 or hop <= 0:
        return []
    full = (total - window) // hop + 1 if total >= window else 0
    starts = [k * hop for k in range(full)]
    if tail == "pad":
        count = 1 if total <= window else -(-(total - window) // hop) + 1  # ceil division
        starts = [k * hop for k in range(count)]
    elif tail == "shift" and full > 0 and starts[-1] + window < total:
        starts.append(total - window)
    return [
        WindowSpec(
            index=index,
            offset_s=start / ticks_per_s,
            duration_s=min(window, total - start) / ticks_per_s,
            padded=start + window > total,
        )
        for index, start in enumerate(starts)
    ]


@dataclass
class DecodedWindow:
    """One window's samples at the target rate, for one channel or the channel mean."""

    index: int
    channel: int
    """0 = mean of all channels; 1..N = that channel (Raven's 1-based numbering)."""
    samples: np.ndarray
    """float32, exactly ``round(window_s * target_rate_hz)`` samples, zero-padded."""
    valid_samples: int
    """How many leading samples are real audio; the rest is padding."""
    status: str
    """``"ok"``; ``"empty"``: no real samples decoded (past the real end of a truncated file)
    or digital silence (every sample exactly 0); ``"failed"``: the audio holds NaN or infinite
    samples (``error`` says so, and the samples are zeroed, never handed to a model)."""
    duration_s: float
    """Seconds of real audio in the window, counted in native frames (0 when nothing decoded)."""
    padded: bool
    """True when the window runs past the real end of the audio (zero-padded)."""
    error: str | None = None
    quality: WindowQuality | None = None
    """Level, peak, clipping, dropouts and the verdict (`connectors.audio_qc`), measured on the
    window's native samples before mixing and resampling; None when status is not ``"ok"``."""


def iter_windows(
    fs: fsspec.AbstractFileSystem,
    path: str,
    header: AudioHeader,
    windows: Sequence[WindowSpec],
    window_s: float,
    target_rate_hz: int,
    channel_policy: str = "mean",
    uri: str | None = None,
    read_mode: str = "sequential",
    resampler: str = "soxr",
) -> Iterator[DecodedWindow]:
    """Decode ``windows`` of one recording, reading only what each needs.

    Each window is read with :data:`RESAMPLE_MARGIN_S` of native audio on both sides (clipped to
    the file), resampled (``resampler``, one of :data:`RESAMPLERS`) and trimmed, so its samples do not depend on which other
    windows are requested. ``read_mode="sequential"`` (default) reads windows given in ascending
    order in one forward pass, keeping the overlap of neighbouring spans (margins, hops shorter
    than the window) instead of reading it twice; ``"seek"`` seeks and reads each window's span. ``channel_policy="mean"`` yields one window (channel 0) per spec,
    ``"each"`` one per channel (1..N). Audio past the real end of a file shorter than its header
    declares is zero, with ``valid_samples`` counting only what was decoded.

    Raises InputError naming the window's offset if libsndfile fails to decode it.
    """
    uri = uri or path
    if channel_policy not in CHANNEL_POLICIES:
        raise ValueError(f"channel_policy must be one of {', '.join(CHANNEL_POLICIES)}, got {channel_policy!r}")
    if read_mode not in READ_MODES:
        raise ValueError(f"read_mode must be one of {', '.join(READ_MODES)}, got {read_mode!r}")
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {', '.join(RESAMPLERS)}, got {resampler!r}")
    if not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
    if not target_rate_hz or target_rate_hz <= 0:
        raise ValueError(f"target_rate_hz must be > 0, got {target_rate_hz!r}")
    native_hz = header.sample_rate_hz
    window_frames = round(window_s * native_hz)
    out_samples = round(window_s * target_rate_hz)
    # The margin is a whole number of resampling periods, so the window start maps to an exact
    # output sample and trimming never shifts the window by a fraction of a sample.
    period = native_hz // math.gcd(native_hz, int(target_rate_hz))
    margin_frames = (round(RESAMPLE_MARGIN_S * native_hz) // period) * period
    if native_hz == target_rate_hz:
        margin_frames = 0  # nothing is resampled, so no filter needs context
    span_bytes = (window_frames + 2 * margin_frames) * header.channels * 4
    if span_bytes > MAX_SPAN_BYTES:
        raise InputError(uri, f"a {window_s:g} s window at {native_hz} Hz x {header.channels} channels "
                              f"needs {span_bytes / 1024**3:.1f} GiB (at most "
                              f"{MAX_SPAN_BYTES / 1024**3:.0f} GiB per window)")

    try:
        handle = _open_for_windows(fs, path)
    except OSError as exc:
        raise InputError(uri, f"cannot open: {exc}") from exc
    with handle:
        source = _Remembering(handle)
        try:
            snd = sf.SoundFile(source)
        except (sf.LibsndfileError, RuntimeError) as exc:
            source.raise_if_failed(uri)
            raise InputError(uri, f"not a recognised audio format: {_libsndfile_reason(exc)}") from exc
        source.raise_if_failed(uri)
        with snd:
            if snd.samplerate != native_hz or snd.channels != header.channels:
                raise InputError(
                    uri,
                    f"file changed since its header was read: {snd.samplerate} Hz x {snd.channels} ch,"
                    f" header said {native_hz} Hz x {header.channels} ch",
                )
            # libsndfile reports what it can actually read; a truncated file holds less than
            # its header declared.
            readable_frames = min(snd.frames, header.frames)
            reader = (_SequentialReader(snd, max_gap_frames=round(SEQUENTIAL_GAP_S * native_hz))
                      if read_mode == "sequential" else _SeekReader(snd))
            for spec in windows:
                yield from _decode_window(
                    reader, spec, readable_frames, window_frames, margin_frames, period,
                    native_hz, int(target_rate_hz), out_samples, channel_policy, header.channels, uri,
                    source, full_scale(header.subtype), resampler,
                )


def _open_for_windows(fs: fsspec.AbstractFileSystem, path: str) -> BinaryIO:
    """The recording opened for decoding: a remote file behind a ramping read-ahead."""

    handle = fs.open(path, "rb", block_size=WINDOW_BLOCK_SIZE_BYTES, cache_type="none")
    if isinstance(handle, AbstractBufferedFile):  # s3fs and friends: every miss is one GET
        return _RampingReadahead(handle)
    return handle


class _Remembering(io.RawIOBase):
    """A file as libsndfile reads it, remembering the first read that failed.

    libsndfile reads a Python file through callbacks, and an exception raised inside one (a
    storage error, a timeout) is printed and taken for the end of the file: a truncated window,
    or "not a recognised format". Callers ask `raise_if_failed` after each libsndfile call, so
    such a failure surfaces with its cause (which `connectors.errors.transient_reason` reads).
    """

    def __init__(self, raw: Any):
        super().__init__()
        self.raw = raw
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.raw.tell()

    # An exception raised into libsndfile's callback would be printed as "Exception ignored
    # from cffi callback" with its traceback: it is kept here instead, and libsndfile sees the
    # end of the file.
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self.raw.seek(offset, whence)
        except Exception as exc:
            self.error = self.error or exc
            return self.raw.tell()

    def readinto(self, target: Any) -> int:
        if self.error is not None:
            return 0
        try:
            if hasattr(self.raw, "readinto"):
                return self.raw.readinto(target)
            data = self.raw.read(len(target))
            memoryview(target).cast("B")[: len(data)] = data
            return len(data)
        except Exception as exc:
            self.error = exc
            return 0

    def raise_if_failed(self, uri: str) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise InputError(uri, f"read failed: {type(error).__name__}: {error}") from error

    def close(self) -> None:  # the caller closes the file it opened
        super().close()


class _RampingReadahead(io.RawIOBase):
    """A remote file read through a read-ahead that ramps up while reads are sequential.

    After a seek the next miss fetches FIRST_BLOCK_SIZE_BYTES; each further sequential miss
    doubles the fetch, up to WINDOW_BLOCK_SIZE_BYTES. The block before the current one is kept,
    since decoders step back a few kilobytes now and then (libsndfile's FLAC reader does). So a
    forward pass costs few requests and a seek costs little: what a unit does not need is at
    most one (small, or last) block.
    """

    def __init__(self, raw: Any):
        super().__init__()
        self.raw = raw  # an fsspec file with cache_type="none": raw.read(n) fetches exactly n
        self.size = raw.size
        self.pos = 0
        self.blocks: list[tuple[int, bytes]] = []  # (start, data): the previous and current block
        self.block_size = FIRST_BLOCK_SIZE_BYTES

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def _block_at(self, pos: int) -> tuple[int, bytes] | None:
        for start, data in self.blocks:
            if start <= pos < start + len(data):
                return start, data
        return None

    def _fetch(self) -> tuple[int, bytes]:
        last_end = self.blocks[-1][0] + len(self.blocks[-1][1]) if self.blocks else None
        sequential = self.pos == last_end
        self.block_size = (min(2 * self.block_size, WINDOW_BLOCK_SIZE_BYTES) if sequential
                           else FIRST_BLOCK_SIZE_BYTES)
        self.raw.seek(self.pos)
        block = (self.pos, self.raw.read(min(self.block_size, self.size - self.pos)))
        self.blocks = (self.blocks[-1:] if sequential else []) + [block]
        return block

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        done = 0
        while done < len(view) and self.pos < self.size:
            start, data = self._block_at(self.pos) or self._fetch()
            if not data:
                break
            offset = self.pos - start
            take = min(len(view) - done, len(data) - offset)
            view[done : done + take] = data[offset : offset + take]
            done += take
            self.pos += take
        return done

    def close(self) -> None:
        self.raw.close()
        super().close()


class _SeekReader:
    """The reference read path: every span is a seek and a read."""

    def __init__(self, snd: sf.SoundFile):
        self.snd = snd

    def read(self, start: int, end: int) -> np.ndarray:
        self.snd.seek(start)
        # Plain seek + read, not blocks(): blocks() repeats stale samples at the end of MP3s.
        return self.snd.read(end - start, dtype="float32", always_2d=True)  # (F, C)


class _SequentialReader:
    """Spans of one file in ascending order, in one forward pass.

    Holds the frames from the last span's start to the file position; a span that starts inside
    them reuses them and reads only what follows. A span before them, or one more than
    `max_gap_frames` past the file position, is a seek (the reference path's read, exactly).
    """

    def __init__(self, snd: sf.SoundFile, max_gap_frames: int):
        self.snd = snd
        self.max_gap_frames = max_gap_frames
        self.kept = np.zeros((0, snd.channels), np.float32)  # (F, C) frames [kept_start, position)
        self.kept_start = 0
        self.position: int | None = None  # the file's read position; None = not positioned yet

    def read(self, start: int, end: int) -> np.ndarray:
        if self.position is None or start < self.kept_start or start > self.position + self.max_gap_frames:
            self.snd.seek(start)
            self.kept, self.kept_start, self.position = self.kept[:0], start, start
        elif start >= self.position:  # a short gap (or none): read through it, no seek
            if start > self.position:
                self.position += len(self.snd.read(start - self.position, dtype="float32", always_2d=True))
            self.kept, self.kept_start = self.kept[:0], self.position
        else:  # the span starts among the kept frames
            self.kept, self.kept_start = self.kept[start - self.kept_start :], start
        if self.position < start:  # the file ended inside the gap
            return self.kept[:0]
        if end > self.position:
            more = self.snd.read(end - self.position, dtype="float32", always_2d=True)  # (F, C)
            self.kept = np.concatenate([self.kept, more]) if len(self.kept) else more
            self.position += len(more)
        return self.kept[: end - start]


def _resample(span: np.ndarray, native_hz: int, target_rate_hz: int, resampler: str) -> np.ndarray:
    """(F, C) float32 at native_hz -> (F', C) float32 at target_rate_hz."""
    if resampler == "polyphase":
        from scipy.signal import resample_poly  # 1 s of imports: only for models that use it

        g = math.gcd(native_hz, target_rate_hz)
        out = resample_poly(span, target_rate_hz // g, native_hz // g, axis=0)
        return out.astype(np.float32, copy=False)
    return soxr.resample(span, native_hz, target_rate_hz)


def _decode_window(
    reader: _SeekReader | _SequentialReader,
    spec: WindowSpec,
    readable_frames: int,
    window_frames: int,
    margin_frames: int,
    period: int,
    native_hz: int,
    target_rate_hz: int,
    out_samples: int,
    channel_policy: str,
    channels: int,
    uri: str,
    source: "_Remembering | None" = None,
    scale: float = 1.0,
    resampler: str = "soxr",
) -> Iterator[DecodedWindow]:
    start = round(spec.offset_s * native_hz)
    end = start + window_frames
    out_channels = [0] if channel_policy == "mean" else list(range(1, channels + 1))
    if start >= readable_frames:
        for channel in out_channels:
            yield DecodedWindow(spec.index, channel, np.zeros(out_samples, np.float32), 0, "empty",
                                duration_s=0.0, padded=True)
        return

    before = (min(margin_frames, start) // period) * period
    span_start = start - before
    span_end = min(end + margin_frames, readable_frames)
    try:
        span = reader.read(span_start, span_end)  # (F, C)
    except (sf.LibsndfileError, RuntimeError) as exc:
        if source is not None:
            source.raise_if_failed(uri)
        raise InputError(
            uri, f"decode failed in window {spec.index} at offset {spec.offset_s:.3f} s: {exc}"
        ) from exc
    if source is not None:
        source.raise_if_failed(uri)  # a failed read is a short read to libsndfile: never a window
    # MP3 frame counts are estimates, so a read may return less than asked.
    real_frames = max(0, min(span_start + len(span), end) - start)
    # A float file can hold NaN or inf; one in the window or its resampling margin would spread
    # through the filter and the model. Such a window fails with its reason (never "repaired":
    # zeroing samples would invent silence and count it as analysed effort).
    finite = np.isfinite(span).all(axis=0)  # (C,)
    native = span[before : before + real_frames]  # (F, C): the window's own frames, unmixed
    if channel_policy == "mean" and channels > 1:
        finite = finite.all(keepdims=True)  # (1,)
        span = span.mean(axis=1, keepdims=True, dtype=np.float32)  # (F, 1)
    heard = span[before : before + real_frames]  # (F, C'): what the model is given, native rate
    silent = ~np.any(heard != 0, axis=0)  # (C',) a non-finite channel fails below whatever this says
    # Quality on the samples as decoded (native rate, before resampling), once per window; the
    # unmixed frames are let go before the copies below are made.
    qualities = (measure(native, heard, native_hz, scale, at_start=start == 0,
                         at_end=start + real_frames >= readable_frames)
                 if not silent.all() else [None] * len(out_channels))
    native = heard = None
    span = np.where(finite, span, np.float32(0))  # (F, C): a bad channel is zeroed, then failed

    if native_hz != target_rate_hz and len(span):
        resampled = _resample(span, native_hz, target_rate_hz, resampler)  # (F', C)
    else:
        resampled = span
    out_start = before * target_rate_hz // native_hz
    valid = min(out_samples, round(real_frames * target_rate_hz / native_hz))
    piece = resampled[out_start : out_start + valid]  # (valid, C)
    valid = len(piece)
    duration_s = real_frames / native_hz
    padded = real_frames < window_frames
    for column, channel in enumerate(out_channels):
        samples = np.zeros(out_samples, np.float32)
        if not finite[column]:
            yield DecodedWindow(spec.index, channel, samples, 0, "failed", duration_s, padded,
                                error=f"{uri}: non-finite samples (NaN or inf) in window {spec.index} "
                                      f"at offset {spec.offset_s:.3f} s")
            continue
        samples[:valid] = piece[:, column]
        status = "empty" if valid == 0 or silent[column] else "ok"
        yield DecodedWindow(spec.index, channel, samples, valid, status, duration_s, padded,
                            quality=qualities[column] if status == "ok" else None)
