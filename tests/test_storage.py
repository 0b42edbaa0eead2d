"""Source storage: opening roots, listing recordings, reading deployments.csv."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import fsspec
import pytest

from connectors.errors import ConfigError
from connectors.storage import (
    SourceObject,
    list_recordings,
    open_root,
    read_deployments,
)


def _touch(path: Path, size_bytes: int = 10) -> Path:
    # list_recordings reads names and sizes only, so the bytes need not be audio.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size_bytes)
    return path


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    root = tmp_path / "survey"
    _touch(root / "dep1" / "20231119_210000.WAV", 11)
    _touch(root / "dep1" / "card2" / "20231120_210000.wav", 12)
    _touch(root / "dep2" / "S4A03895_20190522_060000.Flac", 13)
    _touch(root / "dep2" / "night.mp3")
    _touch(root / "dep2" / "dawn.OGG")
    _touch(root / "loose.wav", 14)
    # Not recordings:
    _touch(root / "dep1" / "CONFIG.TXT")
    _touch(root / "dep1" / "20231119_210000.WAV.json")
    _touch(root / "dep1" / "._20231119_210000.WAV")  # macOS resource fork on an SD card
    _touch(root / ".trash" / "old.wav")
    _touch(root / "dep2" / "wavs")  # the extension is a name, not a suffix
    return root


def test_open_root_local_is_absolute_without_trailing_slash(source_tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(source_tree.parent)
    fs, root = open_root("survey/")
    assert root == str(source_tree)
    assert fs.isdir(root)
    _, root_from_uri = open_root(f"file://{source_tree}/")
    assert root_from_uri == str(source_tree)


def test_open_root_missing_local_root_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ConfigError, match="no-such-folder"):
        open_root(str(missing))


@pytest.mark.parametrize("uri", ["", "gs://bucket/x", "s3://", "s3:///prefix"])
def test_open_root_rejects_bad_uris(uri: str) -> None:
    with pytest.raises(ConfigError):
        open_root(uri)


def test_open_root_s3_takes_endpoint_and_keys_from_env(monkeypatch) -> None:
    # Building an S3FileSystem does not contact the endpoint, so this needs no server.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    fs, root = open_root("s3://field-data/2023/survey/")
    assert root == "field-data/2023/survey"
    assert fs.client_kwargs["endpoint_url"] == "http://127.0.0.1:9"
    assert "region_name" not in fs.client_kwargs
    assert (fs.key, fs.secret) == ("env-key", "env-secret")

    fs, _ = open_root(
        "s3://field-data", {"key": "option-key", "client_kwargs": {"endpoint_url": "http://127.0.0.1:10"}}
    )
    assert fs.key == "option-key"
    assert fs.secret == "env-secret"
    assert fs.client_kwargs["endpoint_url"] == "http://127.0.0.1:10"


def test_list_recordings_finds_audio_in_any_case_and_depth(source_tree: Path) -> None:
    fs, root = open_root(str(source_tree))
    found = list_recordings(fs, root)
    assert [obj.key for obj in found] == [
        "dep1/20231119_210000.WAV",
        "dep1/card2/20231120_210000.wav",
        "dep2/S4A03895_20190522_060000.Flac",
        "dep2/dawn.OGG",
        "dep2/night.mp3",
        "loose.wav",
    ]
    assert [obj.deployment_id for obj in found] == ["dep1", "dep1", "dep2", "dep2", "dep2", "survey"]


def test_list_recordings_fields_for_local_files(source_tree: Path) -> None:
    fs, root = open_root(str(source_tree))
    by_key = {obj.key: obj for obj in list_recordings(fs, root)}
    nested = by_key["dep1/card2/20231120_210000.wav"]
    expected_path = str(source_tree / "dep1" / "card2" / "20231120_210000.wav")
    assert nested.uri == expected_path
    assert nested.path == expected_path
    assert nested.size_bytes == 12
    assert nested.etag is None
    assert nested.mtime is not None and nested.mtime.tzinfo is not None
    assert abs(nested.mtime - datetime.now(timezone.utc)) < timedelta(minutes=5)
    # Local files have no ETag, so the mtime identifies the version.
    assert nested.version_tag == nested.mtime.isoformat()
    with fs.open(nested.path, "rb") as handle:
        assert handle.read() == b"x" * 12


def test_version_tag_prefers_etag() -> None:
    mtime = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    common = dict(key="d/a.wav", uri="s3://b/d/a.wav", path="b/d/a.wav", deployment_id="d", size_bytes=1)
    assert SourceObject(**common, etag="abc123", mtime=mtime).version_tag == "abc123"
    assert SourceObject(**common, etag=None, mtime=mtime).version_tag == "2024-01-02T03:04:05+00:00"


def test_list_recordings_uses_one_listing_and_builds_s3_uris() -> None:
    # A stand-in for s3fs: what list_recordings must do with an object store's listing.
    class FakeS3:
        protocol = ("s3", "s3a")
        calls = 0

        def find(self, path, detail=False, **kwargs):
            FakeS3.calls += 1
            assert path == "bucket/pam" and detail
            modified = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
            return {
                "bucket/pam/site-a/20240501_120000.WAV": {
                    "type": "file", "size": 96044, "ETag": '"9b2cf535f27731c974343645a3985328"',
                    "LastModified": modified,
                },
                "bucket/pam/site-a/notes.txt": {"type": "file", "size": 3, "ETag": '"x"', "LastModified": modified},
                "bucket/pam/site-a/": {"type": "directory", "size": 0},
            }

        def info(self, path):  # pragma: no cover - must not be called
            raise AssertionError("list_recordings must not stat files one by one")

    found = list_recordings(FakeS3(), "bucket/pam/")
    assert FakeS3.calls == 1
    assert len(found) == 1
    obj = found[0]
    assert obj.uri == "s3://bucket/pam/site-a/20240501_120000.WAV"
    assert obj.path == "bucket/pam/site-a/20240501_120000.WAV"
    assert obj.key == "site-a/20240501_120000.WAV"
    assert obj.deployment_id == "site-a"
    assert obj.etag == "9b2cf535f27731c974343645a3985328"
    assert obj.version_tag == obj.etag
    assert obj.mtime == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


# --- deployments.csv ------------------------------------------------------------------------------


def _write_csv(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "deployments.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_deployments_absent_file_gives_empty(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    assert read_deployments(fs, str(tmp_path)) == {}


def test_read_deployments_parses_rows(tmp_path: Path) -> None:
    _write_csv(
        tmp_path,
        "\ufeffdeployment_id, site_id,latitude,longitude,recorder,timezone,start,end,habitat\n"
        "dep1,S1,-34.93,138.60,AudioMoth 1.2,Australia/Adelaide,2023-11-01,2023-11-30T12:00:00,mallee\n"
        "dep2,,,,,,,,\n"
        "\n",
    )
    fs, root = open_root(str(tmp_path))
    deployments = read_deployments(fs, root)
    assert set(deployments) == {"dep1", "dep2"}
    dep1 = deployments["dep1"]
    assert dep1.site_id == "S1"
    assert dep1.latitude == pytest.approx(-34.93)
    assert dep1.longitude == pytest.approx(138.60)
    assert dep1.recorder == "AudioMoth 1.2"
    assert dep1.timezone == "Australia/Adelaide"
    # A naive start is read in the deployment's own zone (ACDT, UTC+10:30, in November).
    assert dep1.start.utcoffset() == timedelta(hours=10, minutes=30)
    assert dep1.start.astimezone(timezone.utc) == datetime(2023, 10, 31, 13, 30, tzinfo=timezone.utc)
    assert dep1.end.replace(tzinfo=None) == datetime(2023, 11, 30, 12, 0)
    assert dep1.extra == {"habitat": "mallee"}
    dep2 = deployments["dep2"]
    assert (dep2.site_id, dep2.latitude, dep2.longitude, dep2.timezone, dep2.start) == (None,) * 5


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("dep2,S2,91.0,10.0,Europe/Berlin", "latitude"),
        ("dep2,S2,45.0,-180.5,Europe/Berlin", "longitude"),
        ("dep2,S2,north,10.0,Europe/Berlin", "latitude"),
        ("dep2,S2,45.0,10.0,Europe/Atlantis", "Europe/Atlantis"),
        ("dep1,S2,45.0,10.0,Europe/Berlin", "duplicate deployment_id 'dep1'"),
        (",S2,45.0,10.0,Europe/Berlin", "empty deployment_id"),
    ],
)
def test_read_deployments_bad_row_names_file_and_line(tmp_path: Path, row: str, reason: str) -> None:
    _write_csv(
        tmp_path,
        "deployment_id,site_id,latitude,longitude,timezone\n"
        "dep1,S1,52.5,13.4,Europe/Berlin\n"
        f"{row}\n",
    )
    fs, root = open_root(str(tmp_path))
    with pytest.raises(ConfigError) as excinfo:
        read_deployments(fs, root)
    message = str(excinfo.value)
    assert "deployments.csv" in message
    assert "line 3" in message
    assert reason in message


def test_read_deployments_needs_deployment_id_column(tmp_path: Path) -> None:
    _write_csv(tmp_path, "site,latitude\nS1,10\n")
    fs, root = open_root(str(tmp_path))
    with pytest.raises(ConfigError, match="deployment_id"):
        read_deployments(fs, root)


def test_read_deployments_rejects_end_before_start(tmp_path: Path) -> None:
    _write_csv(tmp_path, "deployment_id,start,end\ndep1,2024-05-02,2024-05-01\n")
    fs, root = open_root(str(tmp_path))
    with pytest.raises(ConfigError, match="line 2.*before start"):
        read_deployments(fs, root)
