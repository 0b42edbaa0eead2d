"""The demo builder writes an AudioMoth-like source root whose truth.csv says where every call is."""

from __future__ import annotations

import csv
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile as sf

from flows.cli.demo import build_demo
from tests.support.synth_audio import read_chunks, read_info, tone, write_wav

SR_HZ = 48_000
MINUTES = 1.0
COMMENT_RE = re.compile(
    r"^Recorded at (\d\d:\d\d:\d\d \d\d/\d\d/\d{4}) \(UTC\) by AudioMoth ([0-9A-F]{16}) at .* gain "
    r"while battery was .*V and temperature was .*C\.$"
)
# The header of /work/shared/data/clips/manifest.csv (the real clips folder's format).
MANIFEST_HEADER = (
    "file,source_repo,source_path,source_commit,license,label_common_name,label_scientific_name,"
    "taxon_group,duration_s,sample_rate,channels,format,has_metadata,notes"
)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _rms_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _peak_freq_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR_HZ)[np.argmax(spectrum)])


def _segment(audio: np.ndarray, start_s: float, stop_s: float) -> np.ndarray:
    return audio[int(start_s * SR_HZ) : int(stop_s * SR_HZ)]


def _background_dbfs(audio: np.ndarray, events: list[dict[str, str]]) -> float:
    """Median level of the 1-s frames that overlap no truth event."""
    busy = np.zeros(len(audio) // SR_HZ, dtype=bool)
    for row in events:
        start_s, duration_s = float(row["offset_s"]), float(row["duration_s"])
        busy[int(start_s) : int(np.ceil(start_s + duration_s))] = True
    quiet = [_rms_dbfs(_segment(audio, s, s + 1)) for s in np.flatnonzero(~busy)]
    assert quiet, "no event-free second to measure the background in"
    return float(np.median(quiet))


@pytest.fixture(scope="module")
def synthetic_demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo"), seed=0, minutes=MINUTES)


# --- synthetic build ------------------------------------------------------------------------------


def test_recordings_are_audiomoth_files_at_dawn(synthetic_demo):
    rows = _read_csv(synthetic_demo.source_root / "deployments.csv")
    deployments = {row["deployment_id"]: row for row in rows}
    wavs = sorted(synthetic_demo.source_root.rglob("*.WAV"))
    assert len(wavs) == 4 and sorted(synthetic_demo.recordings) == wavs
    for path in wavs:
        assert re.fullmatch(r"\d{8}_\d{6}\.WAV", path.name), path.name
        deployment = deployments[path.parent.name]
        start_utc = datetime.strptime(path.stem, "%Y%m%d_%H%M%S").replace(tzinfo=timezone.utc)
        local = start_utc.astimezone(ZoneInfo(deployment["timezone"]))
        assert 4 <= local.hour < 7, f"{path} starts at {local}, not at dawn"
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (SR_HZ, 1, "PCM_16")
        assert info.frames == int(MINUTES * 60 * SR_HZ)
    for deployment_id in deployments:
        days = {p.stem[:8] for p in wavs if p.parent.name == deployment_id}
        assert len(days) == 2, f"{deployment_id}: expected recordings on two days, got {days}"


def test_comments_match_the_utc_file_names(synthetic_demo):
    for path in synthetic_demo.recordings:
        comment = sf.SoundFile(path).comment
        assert read_info(path)["ICMT"] == comment  # our own chunk reader agrees with libsndfile
        match = COMMENT_RE.match(comment)
        assert match, f"{path}: not an AudioMoth comment: {comment!r}"
        assert datetime.strptime(match.group(1), "%H:%M:%S %d/%m/%Y").strftime("%Y%m%d_%H%M%S") == path.stem
        ids = [chunk_id for chunk_id, _ in read_chunks(path)]
        assert ids.index("LIST") < ids.index("data"), "AudioMoth writes its comment before the samples"


def test_deployments_csv(synthetic_demo):
    rows = _read_csv(synthetic_demo.source_root / "deployments.csv")
    assert list(rows[0]) == ["deployment_id", "site_id", "latitude", "longitude", "recorder", "timezone"]
    assert sorted(r["deployment_id"] for r in rows) == sorted(
        p.name for p in synthetic_demo.source_root.iterdir() if p.is_dir()
    )
    assert len({r["timezone"] for r in rows}) == len(rows) == 2
    for row in rows:
        ZoneInfo(row["timezone"])  # a real IANA name
        assert -90 <= float(row["latitude"]) <= 90 and -180 <= float(row["longitude"]) <= 180
        assert row["recorder"] == "AudioMoth 1.2" and row["site_id"]


def test_truth_rows_sit_inside_windows_where_the_audio_is_loud(synthetic_demo):
    truth = _read_csv(synthetic_demo.truth_csv)
    keys = {p.relative_to(synthetic_demo.source_root).as_posix() for p in synthetic_demo.recordings}
    assert {row["key"] for row in truth} == keys, "every recording gets calls, and only those exist"
    for key in sorted(keys):
        rows = [row for row in truth if row["key"] == key]
        assert len(rows) >= 2, f"{key}: expected several calls"
        audio, _ = sf.read(synthetic_demo.source_root / key, dtype="float32")
        background = _background_dbfs(audio, rows)
        assert -48 <= background <= -42, f"{key}: background at {background:.1f} dBFS"
        starts = sorted(float(row["offset_s"]) for row in rows)
        assert min(np.diff(starts)) >= 15
        for row in rows:
            assert row["label"] == "synthetic call" and row["deployment_id"] == key.split("/")[0]
            offset_s, duration_s = float(row["offset_s"]), float(row["duration_s"])
            window_start_s = 10 * (offset_s // 10)
            assert offset_s - window_start_s <= 2 and offset_s + duration_s <= window_start_s + 10
            level = _rms_dbfs(_segment(audio, offset_s, offset_s + duration_s))
            assert level > background + 15, f"{key} @ {offset_s}: call at {level:.1f} dBFS"
            # just before the call there is only background
            assert _rms_dbfs(_segment(audio, offset_s - 0.3, offset_s - 0.02)) < background + 3


def test_build_logs_progress(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="flows.cli.demo"):
        build_demo(tmp_path, minutes=0.4)
    messages = [r.getMessage() for r in caplog.records if r.name == "flows.cli.demo"]
    assert any("truth.csv" in m for m in messages)
    assert sum(".WAV" in m for m in messages) == 4


def test_same_seed_gives_identical_bytes(tmp_path):
    a = build_demo(tmp_path / "a", seed=7, minutes=0.4)
    build_demo(tmp_path / "b", seed=7, minutes=0.4)
    c = build_demo(tmp_path / "c", seed=8, minutes=0.4)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 6  # 4 recordings, deployments.csv, truth.csv
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert a.recordings[0].read_bytes() != c.recordings[0].read_bytes()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="minutes"):
        build_demo(tmp_path / "short", minutes=0.2)
    with pytest.raises(FileNotFoundError, match="manifest.csv"):
        build_demo(tmp_path / "noclips", clips_dir=tmp_path, minutes=0.4)


# --- build from a clips folder --------------------------------------------------------------------

# file -> (group, scientific name, common name, tone Hz, seconds, rate Hz, channels)
FAKE_CLIPS = {
    "a_bird.wav": ("bird", "Aus bus", "Bird A", 1000.0, 4.0, 32000, 2),
    "b_bird.flac": ("bird", "Cus dus", "Bird B", 3000.0, 5.0, 44100, 1),
    "c_frog.wav": ("amphibian", "Rana rana", "Frog", 2000.0, 5.0, 32000, 1),
    "d_short_bird.wav": ("bird", "Eus fus", "Short bird", 5000.0, 2.0, 32000, 1),
    "e_unnamed_bird.wav": ("bird", "", "birdsong", 6000.0, 5.0, 32000, 1),
}


def _write_fake_clips(clips_dir: Path) -> None:
    clips_dir.mkdir()
    lines = [MANIFEST_HEADER]
    for name, (group, sci, common, freq_hz, seconds, rate_hz, channels) in FAKE_CLIPS.items():
        samples = tone(freq_hz, seconds, rate_hz, amplitude=0.3)
        if channels == 2:
            samples = np.stack([samples, samples], axis=1)  # (S, 2)
        if name.endswith(".flac"):
            sf.write(clips_dir / name, samples, rate_hz)
        else:
            write_wav(clips_dir / name, samples, rate_hz)
        lines.append(
            f'{name},test/repo,{name},0000,MIT,"{common}",{sci},{group},{seconds:.3f},{rate_hz},{channels},'
            "WAV PCM 16-bit,no,synthetic"
        )
    (clips_dir / "manifest.csv").write_text("\n".join(lines) + "\n")


def test_clips_are_mixed_where_truth_says(tmp_path):
    _write_fake_clips(tmp_path / "clips")
    info = build_demo(tmp_path / "demo", clips_dir=tmp_path / "clips", seed=1, minutes=MINUTES)
    truth = _read_csv(info.truth_csv)
    assert len(truth) >= 4
    assert {row["source"] for row in truth} <= {"a_bird.wav", "b_bird.flac"}
    for row in truth:
        group, sci, common, freq_hz, seconds, _, _ = FAKE_CLIPS[row["source"]]
        assert (row["scientific_name"], row["label"]) == (sci, common)
        offset_s, duration_s = float(row["offset_s"]), float(row["duration_s"])
        assert duration_s == pytest.approx(seconds, abs=1e-3)  # clips shorter than a window are used whole
        audio, _ = sf.read(info.source_root / row["key"], dtype="float32")
        inside = _segment(audio, offset_s + 0.05, offset_s + duration_s - 0.05)
        assert _peak_freq_hz(inside) == pytest.approx(freq_hz, abs=5)
        before = _segment(audio, offset_s - 0.3, offset_s - 0.01)
        after = _segment(audio, offset_s + duration_s + 0.01, offset_s + duration_s + 0.3)
        assert _rms_dbfs(inside) > _rms_dbfs(before) + 20 and _rms_dbfs(inside) > _rms_dbfs(after) + 20
    # mixed, never copied: the source root holds only recordings and deployments.csv
    names = {p.name for p in info.source_root.rglob("*") if p.is_file()}
    assert names - {"deployments.csv"} == {p.name for p in info.recordings}


def test_clips_dir_without_usable_birds_is_refused(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_wav(clips / "frog.wav", tone(800, 5.0, 16000), 16000)
    (clips / "manifest.csv").write_text(
        MANIFEST_HEADER + "\nfrog.wav,r,p,c,MIT,Frog,Rana rana,amphibian,5.000,16000,1,WAV,no,\n"
    )
    with pytest.raises(ValueError, match="no usable bird clips"):
        build_demo(tmp_path / "demo", clips_dir=clips, minutes=0.4)
