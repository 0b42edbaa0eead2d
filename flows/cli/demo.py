"""`make demo CLIPS=DIR`: a user's clips mixed into two small synthetic AudioMoth deployments.

(The demo itself analyses the shipped field recordings, `flows.demo_field`; these deployments are
laid out beside them when clips are given.)

The output looks like a real source root (``<deployment_id>/YYYYMMDD_HHMMSS.WAV`` with the AudioMoth
comment, plus ``deployments.csv``) and comes with ``truth.csv``, the exact place of every call, so a
demo run's detections can be checked by eye or by SQL.

Calls are either real bird clips from a clips folder (decoded, resampled, mixed, never copied) or,
without one, synthetic harmonic sweeps. Each call starts a little after a 10-s window boundary and
lasts at most ``MAX_EVENT_S``, so it lies inside one model window. Everything is drawn from one
seeded generator: a seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import soundfile as sf
import soxr

from connectors.synthetic import audiomoth_comment, write_wav

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 48_000
WINDOW_S = 10.0  # the model window the calls are aligned to
MAX_EVENT_S = 8.0  # a call plus its start offset must fit in one window
EVENT_START_AFTER_WINDOW_MS = (500, 1500)  # a call starts this long after its window's boundary
WINDOW_STRIDE = 2  # calls only in every other window: starts >= 19 s apart
MAX_EVENTS_PER_RECORDING = 5
BACKGROUND_DBFS = -45.0  # RMS of the pink background, relative to full scale 1.0
EVENT_DBFS = -20.0  # RMS a call is scaled to before mixing
EVENT_PEAK_LIMIT = 0.9  # ... unless that would push its peak above this
EVENT_FADE_S = 0.02  # fade in/out of each mixed call, so its edges do not click
MIN_CLIP_S = 3.0  # shorter bird clips are not used
DEMO_DATE = date(2024, 5, 15)  # mid-May: a full dawn chorus on both continents
SYNTHETIC_LABEL = "synthetic call"
TRUTH_COLUMNS = ("key", "deployment_id", "offset_s", "duration_s", "scientific_name", "label", "source")


@dataclass(frozen=True)
class DemoDeployment:
    """One demo deployment: an AudioMoth at a site, recording at dawn on consecutive days.

    Attributes:
        deployment_id: folder name under the source root.
        site_id, latitude, longitude: where the recorder stood (WGS84 degrees).
        timezone: IANA zone of the site; files and comments are in UTC as AudioMoth's default.
        dawn_local: local clock time each recording starts.
        serial: the recorder's serial number, as written in the comment.
        recorder: recorder model.
    """

    deployment_id: str
    site_id: str
    latitude: float
    longitude: float
    timezone: str
    dawn_local: time
    serial: str
    recorder: str = "AudioMoth 1.2"


DEMO_DEPLOYMENTS = (
    # Wytham Woods, Oxford: sunrise about 05:10 BST in mid-May.
    DemoDeployment(
        "wytham-2024-05", "wytham-a", 51.7736, -1.3380, "Europe/London", time(5, 0), "24E144036037A1C2"
    ),
    # Sapsucker Woods, Ithaca NY: sunrise about 05:45 EDT in mid-May.
    DemoDeployment(
        "sapsucker-2024-05", "sapsucker-b", 42.4800, -76.4510, "America/New_York", time(5, 30),
        "24F3190361DA3578",
    ),
)
RECORDINGS_PER_DEPLOYMENT = 2


@dataclass(frozen=True)
class Call:
    """A call to mix in: mono samples at ``SAMPLE_RATE_HZ`` and what truth.csv says about it."""

    samples: np.ndarray  # (S,) float32
    scientific_name: str
    label: str
    source: str  # clip file name, or SYNTHETIC_LABEL


@dataclass(frozen=True)
class DemoInfo:
    """What :func:`build_demo` wrote.

    Attributes:
        source_root: ``out_dir/source``, the folder to point a run at.
        truth_csv: ``out_dir/truth.csv``, one row per mixed call (columns ``TRUTH_COLUMNS``).
        deployments_csv: ``source_root/deployments.csv``.
        deployments: the deployments written.
        recordings: every recording written, in order.
    """

    source_root: Path
    truth_csv: Path
    deployments_csv: Path
    deployments: tuple[DemoDeployment, ...]
    recordings: tuple[Path, ...]


# --- background and calls -------------------------------------------------------------------------


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def pink_noise(n_samples: int, level_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum (flat below 50 Hz), RMS ``level_dbfs``; (S,) float32.

    Shaped in the frequency domain over the whole recording, so memory grows with its length:
    fine for demo recordings of minutes, not for hours.
    """
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs_hz = np.fft.rfftfreq(n_samples, 1 / SAMPLE_RATE_HZ)
    spectrum /= np.sqrt(np.maximum(freqs_hz, 50.0))  # amplitude ~ 1/sqrt(f) gives power ~ 1/f
    shaped = np.fft.irfft(spectrum, n=n_samples)
    return (shaped * (10 ** (level_dbfs / 20) / _rms(shaped))).astype(np.float32)


def _fit_level(samples: np.ndarray) -> np.ndarray:
    """Scale a call to ``EVENT_DBFS`` RMS, capped so its peak stays under ``EVENT_PEAK_LIMIT``."""
    rms, peak = _rms(samples), float(np.max(np.abs(samples)))
    if rms == 0.0:
        return samples
    gain = min(10 ** (EVENT_DBFS / 20) / rms, EVENT_PEAK_LIMIT / peak)
    n_fade = int(EVENT_FADE_S * SAMPLE_RATE_HZ)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_fade) / n_fade)
    envelope = np.ones(len(samples))
    envelope[:n_fade] = ramp
    envelope[-n_fade:] = ramp[::-1]
    return (samples * envelope * gain).astype(np.float32)


def synthetic_call(rng: np.random.Generator) -> Call:
    """A harmonic frequency sweep of 0.8-3 s between 1.5 and 6 kHz, like a simple song phrase."""
    duration_s = float(rng.uniform(0.8, 3.0))
    start_hz = float(rng.uniform(1500, 4000))
    falling = rng.random() < 0.5
    end_hz = start_hz * float(rng.uniform(0.6, 0.85) if falling else rng.uniform(1.2, 1.5))
    t_s = np.arange(int(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    # Phase is the integral of the instantaneous frequency of a linear sweep.
    phase = 2 * np.pi * (start_hz * t_s + 0.5 * (end_hz - start_hz) / duration_s * t_s**2)
    samples = sum(np.sin(k * phase) / k for k in (1, 2, 3))  # fundamental plus weaker harmonics
    return Call(_fit_level(np.asarray(samples)), "", SYNTHETIC_LABEL, SYNTHETIC_LABEL)


def _loudest_stretch(samples: np.ndarray, length: int) -> np.ndarray:
    """The ``length``-sample stretch with the most energy (clips often start or end quietly)."""
    if len(samples) <= length:
        return samples
    cumulative = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    energy = cumulative[length:] - cumulative[:-length]  # energy of each start position
    start = int(np.argmax(energy))
    return samples[start : start + length]


def load_bird_clips(clips_dir: Path) -> list[Call]:
    """Bird clips from ``clips_dir/manifest.csv``: group "bird", a scientific name, >= MIN_CLIP_S.

    Each is decoded, mixed to mono, resampled to ``SAMPLE_RATE_HZ`` and cut to its loudest
    ``MAX_EVENT_S``. Unreadable clips are logged and skipped.
    """
    manifest = clips_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"clips_dir {clips_dir}: no manifest.csv there")
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    needed = {"file", "label_common_name", "label_scientific_name", "taxon_group", "duration_s"}
    missing = needed - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{manifest}: missing columns {sorted(missing)}")
    calls = []
    for row in sorted(rows, key=lambda r: r["file"]):
        if row["taxon_group"].strip() != "bird" or not row["label_scientific_name"].strip():
            continue
        try:
            if float(row["duration_s"]) < MIN_CLIP_S:
                continue
            samples, rate_hz = sf.read(clips_dir / row["file"], dtype="float32", always_2d=True)
        except (ValueError, OSError, sf.LibsndfileError) as exc:
            log.warning("skipping clip %s: %s", row["file"], exc)
            continue
        mono = samples.mean(axis=1)  # (S, C) -> (S,)
        if rate_hz != SAMPLE_RATE_HZ:
            mono = soxr.resample(mono, rate_hz, SAMPLE_RATE_HZ)
        excerpt = _loudest_stretch(mono, int(MAX_EVENT_S * SAMPLE_RATE_HZ))
        scientific_name = row["label_scientific_name"].strip()
        label = row["label_common_name"].strip()
        calls.append(Call(_fit_level(excerpt), scientific_name, label, row["file"]))
        log.info("clip %s (%s): %.2f s used", row["file"], scientific_name, len(excerpt) / SAMPLE_RATE_HZ)
    if not calls:
        raise ValueError(
            f"{manifest}: no usable bird clips (taxon_group 'bird', a scientific name, >= {MIN_CLIP_S} s)"
        )
    return calls


# --- recordings -----------------------------------------------------------------------------------


def _event_windows(duration_s: float, rng: np.random.Generator) -> list[int]:
    """Indices of the windows that get a call: every other window, a seeded subset, sorted."""
    last_start_s = duration_s - MAX_EVENT_S - EVENT_START_AFTER_WINDOW_MS[1] / 1000
    candidates = [
        k for k in range(1, int(duration_s // WINDOW_S) + 1, WINDOW_STRIDE) if k * WINDOW_S <= last_start_s
    ]
    n = min(len(candidates), MAX_EVENTS_PER_RECORDING)
    return sorted(int(k) for k in rng.choice(candidates, size=n, replace=False))


def _write_recording(path: Path, samples: np.ndarray, start_utc: datetime, serial: str) -> None:
    """An AudioMoth file as the firmware (1.5+) writes it, for a recorder left on its default UTC
    clock (`connectors.synthetic`, the writer the tests use too)."""
    write_wav(path, np.clip(samples, -1.0, 1.0 - 2**-15),  # 16-bit full scale is asymmetric
              SAMPLE_RATE_HZ, subtype="PCM_16",
              comment=audiomoth_comment(start_utc.astimezone(timezone.utc), serial,
                                        temperature_c=11.0),
              artist=f"AudioMoth {serial}")


def _recording_starts_utc(deployment: DemoDeployment) -> list[datetime]:
    zone = ZoneInfo(deployment.timezone)
    days = (DEMO_DATE + timedelta(days=n) for n in range(RECORDINGS_PER_DEPLOYMENT))
    local_starts = (datetime.combine(day, deployment.dawn_local, tzinfo=zone) for day in days)
    return [start.astimezone(timezone.utc) for start in local_starts]


def build_demo(out_dir: Path, clips_dir: Path | None = None, seed: int = 0, minutes: float = 3.0) -> DemoInfo:
    """Write the demo source root and its truth table under ``out_dir``; see the module docstring.

    ``minutes`` is the length of each of the 2 x 2 recordings (at least 20 s, so one call fits).
    Existing files of the same names are overwritten; nothing else under ``out_dir`` is touched.
    """
    duration_s = minutes * 60
    if duration_s < 2 * WINDOW_S:
        raise ValueError(f"minutes={minutes}: each recording must last at least {2 * WINDOW_S:.0f} s")
    out_dir = Path(out_dir)
    source_root = out_dir / "source"
    rng = np.random.default_rng(seed)
    calls = load_bird_clips(Path(clips_dir)) if clips_dir is not None else None
    log.info(
        "building demo in %s: %d deployments x %d recordings of %.1f min, calls from %s",
        out_dir, len(DEMO_DEPLOYMENTS), RECORDINGS_PER_DEPLOYMENT, minutes,
        clips_dir if clips_dir is not None else "synthesis",
    )
    n_samples = int(round(duration_s * SAMPLE_RATE_HZ))
    truth_rows: list[dict[str, object]] = []
    recordings = []
    for deployment in DEMO_DEPLOYMENTS:
        folder = source_root / deployment.deployment_id
        folder.mkdir(parents=True, exist_ok=True)
        for start_utc in _recording_starts_utc(deployment):
            path = folder / f"{start_utc:%Y%m%d_%H%M%S}.WAV"
            key = path.relative_to(source_root).as_posix()
            audio = pink_noise(n_samples, BACKGROUND_DBFS, rng)
            for window in _event_windows(duration_s, rng):
                call = calls[int(rng.integers(len(calls)))] if calls is not None else synthetic_call(rng)
                offset_ms = window * int(WINDOW_S * 1000) + int(rng.integers(*EVENT_START_AFTER_WINDOW_MS))
                start = offset_ms * SAMPLE_RATE_HZ // 1000  # whole milliseconds: an exact sample
                audio[start : start + len(call.samples)] += call.samples
                truth_rows.append(
                    {
                        "key": key,
                        "deployment_id": deployment.deployment_id,
                        "offset_s": f"{offset_ms / 1000:.3f}",
                        "duration_s": f"{len(call.samples) / SAMPLE_RATE_HZ:.6f}",
                        "scientific_name": call.scientific_name,
                        "label": call.label,
                        "source": call.source,
                    }
                )
            _write_recording(path, audio, start_utc, deployment.serial)
            recordings.append(path)
            log.info("wrote %s", path)
    deployments_csv = _write_deployments_csv(source_root)
    truth_csv = out_dir / "truth.csv"
    with truth_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=TRUTH_COLUMNS)
        writer.writeheader()
        writer.writerows(truth_rows)
    log.info("wrote %s (%d calls) and %s", truth_csv, len(truth_rows), deployments_csv)
    return DemoInfo(source_root, truth_csv, deployments_csv, DEMO_DEPLOYMENTS, tuple(recordings))


def _write_deployments_csv(source_root: Path) -> Path:
    path = source_root / "deployments.csv"
    columns = ("deployment_id", "site_id", "latitude", "longitude", "recorder", "timezone")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for d in DEMO_DEPLOYMENTS:
            writer.writerow([d.deployment_id, d.site_id, d.latitude, d.longitude, d.recorder, d.timezone])
    return path
