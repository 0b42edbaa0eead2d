"""Source storage: opening roots, listing recordings, reading deployments.csv."""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fsspec
import pytest

from connectors.errors import ConfigError
from tests.support.s3server import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
from connectors.storage import (
    SourceObject,
    list_recordings,
    object_version,
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
    listing = list_recordings(fs, root)
    assert [obj.key for obj in listing.objects] == [
        "dep1/20231119_210000.WAV",
        "dep1/card2/20231120_210000.wav",
        "dep2/S4A03895_20190522_060000.Flac",
        "dep2/dawn.OGG",
        "dep2/night.mp3",
        "loose.wav",
    ]
    assert [obj.deployment_id for obj in listing.objects] == ["dep1", "dep1", "dep2", "dep2", "dep2", "survey"]
    assert listing.root_uri == str(source_tree)


def test_list_recordings_names_every_other_path_with_its_reason(source_tree: Path) -> None:
    (source_tree / "deployments.csv").write_text("deployment_id\ndep1\n")  # metadata, not a skipped path
    _touch(source_tree / ".trash" / "deeper" / "older.wav")
    fs, root = open_root(str(source_tree))
    listing = list_recordings(fs, root)
    assert [(p.key, p.reason, p.detail, p.deployment_id) for p in listing.skipped] == [
        (".trash/", "hidden", "folder", ".trash"),  # one entry; its files are not looked into
        ("dep1/._20231119_210000.WAV", "hidden", "", "dep1"),
        ("dep1/20231119_210000.WAV.json", "not_audio", ".json", "dep1"),
        ("dep1/CONFIG.TXT", "not_audio", ".TXT", "dep1"),
        ("dep2/wavs", "not_audio", "no extension", "dep2"),
    ]
    assert listing.skipped[3].uri == str(source_tree / "dep1" / "CONFIG.TXT")
    assert listing.skipped_counts() == {"hidden": 2, "not_audio": 3}
    assert listing.empty_warning() is None


def test_list_recordings_fields_for_local_files(source_tree: Path) -> None:
    fs, root = open_root(str(source_tree))
    by_key = {obj.key: obj for obj in list_recordings(fs, root).objects}
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


# --- symbolic links (local roots) -----------------------------------------------------------------


@pytest.fixture
def linked_tree(tmp_path: Path) -> Path:
    """A source whose recordings are partly elsewhere, reached through symbolic links."""
    elsewhere = tmp_path / "card-copies"
    _touch(elsewhere / "20240501_040000.WAV", 21)
    _touch(elsewhere / "dep-far" / "20240502_040000.WAV", 22)
    _touch(elsewhere / "dep-far" / "night" / "20240502_220000.WAV", 23)
    root = tmp_path / "survey"
    _touch(root / "dep1" / "20240501_000000.WAV", 11)
    (root / "dep1" / "20240501_040000.WAV").symlink_to(elsewhere / "20240501_040000.WAV")
    (root / "dep-far").symlink_to(elsewhere / "dep-far", target_is_directory=True)
    (root / "dep1" / "gone.WAV").symlink_to(tmp_path / "deleted.WAV")
    (root / "dep1" / "card").mkdir()
    (root / "dep1" / "card" / "up").symlink_to("..", target_is_directory=True)  # dep1 inside dep1
    (root / "dep1" / "self.WAV").symlink_to("self.WAV")  # a chain that never ends
    (root / "dep1" / "again.WAV").symlink_to("20240501_000000.WAV")  # the same file twice
    return root


def test_symlinked_files_and_folders_are_followed(linked_tree: Path) -> None:
    fs, root = open_root(str(linked_tree))
    listing = list_recordings(fs, root)
    by_key = {obj.key: obj for obj in listing.objects}
    assert sorted(by_key) == [
        "dep-far/20240502_040000.WAV",
        "dep-far/night/20240502_220000.WAV",
        "dep1/20240501_000000.WAV",
        "dep1/20240501_040000.WAV",
    ]
    linked = by_key["dep1/20240501_040000.WAV"]
    assert linked.path == str(linked_tree / "dep1" / "20240501_040000.WAV")  # the link's own path
    assert linked.size_bytes == 21  # the target's size, not the link's
    assert by_key["dep-far/night/20240502_220000.WAV"].deployment_id == "dep-far"
    with fs.open(by_key["dep-far/night/20240502_220000.WAV"].path, "rb") as handle:
        assert handle.read() == b"x" * 23


def test_object_version_of_a_linked_recording_matches_its_listing(linked_tree: Path) -> None:
    # Decode refuses a file whose size or version changed since discovery: a link must not look
    # changed just because the listing and the check stat it differently.
    fs, root = open_root(str(linked_tree))
    for obj in list_recordings(fs, root).objects:
        assert object_version(fs, obj.path) == (obj.size_bytes, obj.version_tag), obj.key


def test_dangling_links_loops_and_duplicates_are_reported(linked_tree: Path, tmp_path: Path) -> None:
    fs, root = open_root(str(linked_tree))
    skipped = {p.key: p for p in list_recordings(fs, root).skipped}
    assert {key: (p.reason, p.detail) for key, p in skipped.items()} == {
        "dep1/gone.WAV": ("dangling_symlink", str(tmp_path / "deleted.WAV")),
        "dep1/card/up/": ("symlink_loop", ".."),
        "dep1/self.WAV": ("symlink_loop", "self.WAV"),
        "dep1/again.WAV": ("duplicate", "dep1/20240501_000000.WAV"),  # the real name is kept
    }
    assert skipped["dep1/gone.WAV"].uri == str(linked_tree / "dep1" / "gone.WAV")


def test_a_file_reached_through_a_linked_folder_is_listed_once(tmp_path: Path) -> None:
    root = tmp_path / "survey"
    _touch(root / "dep2" / "20240501_000000.WAV")
    (root / "alias").symlink_to(root / "dep2", target_is_directory=True)  # sorts before dep2
    fs, source = open_root(str(root))
    listing = list_recordings(fs, source)
    assert [obj.key for obj in listing.objects] == ["dep2/20240501_000000.WAV"]
    assert [(p.key, p.reason, p.detail) for p in listing.skipped] == [
        ("alias/20240501_000000.WAV", "duplicate", "dep2/20240501_000000.WAV")]


def test_a_pipe_is_reported_as_not_a_file(tmp_path: Path) -> None:
    root = tmp_path / "survey"
    (root / "dep1").mkdir(parents=True)
    os.mkfifo(root / "dep1" / "stream.wav")
    fs, source = open_root(str(root))
    listing = list_recordings(fs, source)
    assert listing.objects == []
    assert [(p.key, p.reason) for p in listing.skipped] == [("dep1/stream.wav", "not_a_file")]


# --- empty sources --------------------------------------------------------------------------------


def test_empty_source_warning_names_root_and_extensions(tmp_path: Path) -> None:
    root = tmp_path / "survey"
    root.mkdir()
    fs, source = open_root(str(root))
    listing = list_recordings(fs, source)
    assert (listing.objects, listing.skipped) == ([], [])
    assert listing.empty_warning() == (
        f"no recordings under {root}: looked for .wav, .flac, .mp3, .ogg files (any case) at any depth;"
        " found no other files"
    )
    _touch(root / "dep1" / "20240501_000000.aiff")
    _touch(root / "dep1" / "CONFIG.TXT")
    warning = list_recordings(fs, source).empty_warning()
    assert warning.endswith("skipped 2 other paths (2 not_audio)")


def test_for_deployments_keeps_their_recordings_and_skipped_paths(source_tree: Path) -> None:
    fs, root = open_root(str(source_tree))
    listing = list_recordings(fs, root).for_deployments(["dep2"])
    assert {obj.deployment_id for obj in listing.objects} == {"dep2"}
    assert [p.key for p in listing.skipped] == ["dep2/wavs"]
    missing = list_recordings(fs, root).for_deployments(["dep9"])
    assert missing.empty_warning().startswith(f"no recordings under {source_tree} in deployment dep9: ")


# --- object stores (a real moto S3 server) --------------------------------------------------------


def test_list_recordings_on_s3_uses_one_listing_and_builds_uris(s3_server, monkeypatch) -> None:
    bucket = s3_server.make_bucket("listing-fields")
    payload = b"RIFF" + b"x" * 96040
    s3_server.filesystem().pipe(f"{bucket}/pam/site-a/20240501_120000.WAV", payload)
    fs, root = open_root(f"{bucket}/pam/", s3_server.storage_options())
    fs.invalidate_cache()

    def no_stat(path, **kwargs):
        raise AssertionError(f"list_recordings must not stat files one by one ({path})")

    monkeypatch.setattr(fs, "info", no_stat)
    listing = list_recordings(fs, root)
    assert listing.root_uri == "s3://listing-fields/pam"
    (obj,) = listing.objects
    assert obj.uri == "s3://listing-fields/pam/site-a/20240501_120000.WAV"
    assert obj.path == "listing-fields/pam/site-a/20240501_120000.WAV"
    assert (obj.key, obj.deployment_id, obj.size_bytes) == ("site-a/20240501_120000.WAV", "site-a", len(payload))
    assert obj.etag == hashlib.md5(payload).hexdigest()  # a single-part upload's ETag, unquoted
    assert obj.version_tag == obj.etag
    assert abs(obj.mtime - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_s3_key_with_an_empty_deployment_component_is_refused(s3_server) -> None:
    bucket = s3_server.make_bucket("listing-empty-parts")
    store = s3_server.filesystem()
    for key in ("pam//20240501_000000.WAV", "pam/dep1//20240501_010000.WAV", "pam/dep1/20240501_020000.WAV",
                "pam/dep2/", "pam/.trash/a.wav", "pam/.trash/b.wav", "pam/deployments.csv"):
        store.pipe(f"{bucket}/{key}", b"abc")
    fs, root = open_root(f"{bucket}/pam", s3_server.storage_options())
    listing = list_recordings(fs, root)
    # An empty component deeper down still names a deployment; the object is read by its key.
    assert [(obj.key, obj.deployment_id) for obj in listing.objects] == [
        ("dep1//20240501_010000.WAV", "dep1"), ("dep1/20240501_020000.WAV", "dep1")]
    with fs.open(listing.objects[0].path, "rb") as handle:
        assert handle.read() == b"abc"
    assert [(p.key, p.uri, p.reason, p.deployment_id) for p in listing.skipped] == [
        (".trash/", "s3://listing-empty-parts/pam/.trash/", "hidden", ".trash"),
        ("/20240501_000000.WAV", "s3://listing-empty-parts/pam//20240501_000000.WAV", "empty_deployment_id", None),
    ]
    assert "" not in {obj.deployment_id for obj in listing.objects}


def test_local_and_s3_listings_of_one_tree_agree(source_tree: Path, s3_server) -> None:
    bucket = s3_server.make_bucket("listing-same-tree")
    s3_server.upload_tree(source_tree, f"{bucket}/survey")
    local = list_recordings(*open_root(str(source_tree)))
    remote = list_recordings(*open_root(f"{bucket}/survey", s3_server.storage_options()))
    assert [(o.key, o.deployment_id, o.size_bytes) for o in remote.objects] == [
        (o.key, o.deployment_id, o.size_bytes) for o in local.objects]
    assert [(p.key, p.reason, p.detail) for p in remote.skipped] == [
        (p.key, p.reason, p.detail) for p in local.skipped]


def test_connectors_log_no_credentials_at_debug(s3_server, monkeypatch, caplog) -> None:
    # The server's own fake key pair (moto files buckets per account, derived from the key id).
    key_id, secret, token = FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, "SessionToken42"
    bucket = s3_server.make_bucket("listing-credentials")
    s3_server.filesystem().pipe(f"{bucket}/pam/dep1/20240501_000000.WAV", b"abc")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    fs, root = open_root(f"{bucket}/pam", {"client_kwargs": {"endpoint_url": s3_server.endpoint_url},
                                                "skip_instance_cache": True})
    (obj,) = list_recordings(fs, root).objects
    with fs.open(obj.path, "rb") as handle:
        handle.read()
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG logging was on
    ours = [r.getMessage() for r in caplog.records if r.name.split(".")[0] == "connectors"]
    assert not [m for m in ours if key_id in m or secret in m or token in m]
    # The secret is only ever used to sign. (botocore does log the access key id, inside the
    # Authorization header, and the session token at DEBUG: the CLI has to redact those.)
    assert not [r for r in caplog.records if secret in r.getMessage()]


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


def test_read_deployments_clock_timezone(tmp_path: Path) -> None:
    _write_csv(
        tmp_path,
        "deployment_id,timezone,clock_timezone\n"
        "dep1,America/Denver,UTC-7\n"
        "dep2,,America/Denver\n"
        "dep3,Europe/London,\n"
        "dep4,Europe/London,UTC+00:00\n",
    )
    fs, root = open_root(str(tmp_path))
    deployments = read_deployments(fs, root)
    assert {d.deployment_id: (d.timezone, d.clock_timezone) for d in deployments.values()} == {
        "dep1": ("America/Denver", "UTC-07:00"),  # fixed offsets are stored in one form
        "dep2": (None, "America/Denver"),
        "dep3": ("Europe/London", None),
        "dep4": ("Europe/London", "UTC"),
    }
    assert all("clock_timezone" not in d.extra for d in deployments.values())


@pytest.mark.parametrize("value", ["UTC+15", "GMT-7", "-07:00", "America/Denvr", "UTC+7:5"])
def test_read_deployments_bad_clock_timezone_names_file_line_column_and_form(tmp_path: Path, value: str) -> None:
    _write_csv(tmp_path, f"deployment_id,clock_timezone\ndep1,UTC\ndep2,{value}\n")
    fs, root = open_root(str(tmp_path))
    with pytest.raises(ConfigError) as excinfo:
        read_deployments(fs, root)
    message = str(excinfo.value)
    assert message.startswith(f"{tmp_path}/deployments.csv, line 3, column clock_timezone: {value!r} ")
    assert message.endswith("(expected an IANA name such as America/Denver, or a fixed offset UTC±hh:mm"
                            " such as UTC-07:00)")
    assert "\n" not in message
