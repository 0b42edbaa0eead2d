"""The moto S3 test server: a real endpoint other processes can reach, released on exit."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.support.s3server import moto_s3_server, subprocess_env
from tests.support.synth_audio import tone, write_wav

SAMPLE_RATE_HZ = 8000


def _port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def s3_with_tree(tmp_path_factory):
    """One server for the module (it starts in about a second), with a small tree uploaded."""
    tree = tmp_path_factory.mktemp("tree")
    (tree / "dep-a").mkdir()
    write_wav(tree / "dep-a" / "20240515_040000.WAV", tone(440, 2.0, SAMPLE_RATE_HZ), SAMPLE_RATE_HZ)
    (tree / "deployments.csv").write_text("deployment_id,site_id\ndep-a,site-1\n")
    with moto_s3_server() as s3:
        s3.make_bucket("source")
        uploaded = s3.upload_tree(tree, "s3://source/field")
        yield s3, uploaded


def test_upload_tree_is_listed_through_s3fs(s3_with_tree):
    s3, uploaded = s3_with_tree
    assert uploaded == ["s3://source/field/dep-a/20240515_040000.WAV", "s3://source/field/deployments.csv"]
    fs = s3.filesystem()
    listed = sorted(fs.find("source/field"))
    assert listed == ["source/field/dep-a/20240515_040000.WAV", "source/field/deployments.csv"]
    assert fs.cat_file("source/field/deployments.csv") == b"deployment_id,site_id\ndep-a,site-1\n"


def test_soundfile_reads_and_seeks_through_s3fs(s3_with_tree):
    s3, _ = s3_with_tree
    fs = s3.filesystem()
    expected = tone(440, 2.0, SAMPLE_RATE_HZ)
    with fs.open("source/field/dep-a/20240515_040000.WAV", "rb") as remote:
        with sf.SoundFile(remote) as f:
            assert (f.samplerate, f.channels, f.frames) == (SAMPLE_RATE_HZ, 1, 2 * SAMPLE_RATE_HZ)
            f.seek(SAMPLE_RATE_HZ)  # the second half only: a ranged read, not the whole object
            second_half = f.read(SAMPLE_RATE_HZ, dtype="float32")
    np.testing.assert_allclose(second_half, expected[SAMPLE_RATE_HZ:], atol=1 / 2**14)


def test_another_process_lists_the_bucket_with_env_only(s3_with_tree):
    s3, _ = s3_with_tree
    # What a Ray worker does: no storage options passed, only the environment.
    script = "import json, s3fs; print(json.dumps(sorted(s3fs.S3FileSystem().find('source/field'))))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(s3),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "source/field/dep-a/20240515_040000.WAV",
        "source/field/deployments.csv",
    ]


def test_each_server_starts_empty_and_port_is_released():
    with moto_s3_server() as s3:
        s3.make_bucket("scratch")
        assert s3.filesystem().ls("") == ["scratch"]
        port = s3.port
        assert _port_accepts(port)
    assert not _port_accepts(port)
    with moto_s3_server() as s3:
        assert s3.filesystem().ls("") == []


def test_server_stops_when_the_block_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with moto_s3_server() as s3:
            port = s3.port
            raise RuntimeError("boom")
    assert not _port_accepts(port)


def test_storage_options_never_pin_the_region(s3_with_tree):
    s3, _ = s3_with_tree
    client_kwargs = s3.storage_options()["client_kwargs"]
    assert client_kwargs == {"endpoint_url": s3.endpoint_url}
    # and bucket creation through those options works, which a pinned us-east-1 region breaks
    assert s3.make_bucket("second-bucket") == "s3://second-bucket"
    assert "second-bucket" in s3.filesystem().ls("")
