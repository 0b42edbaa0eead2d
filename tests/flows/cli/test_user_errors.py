"""Every user error is one line on stderr, exit 2, no traceback, and nothing is created under the
results: bad settings values, bad model options, deployments.csv that cannot be read, a bucket
that does not exist (source or results), a mistyped storage option, a --deployment that names
nothing, and export options that cannot work. Real files and a real moto S3 server."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from flows.cli.main import main
from tests.support.synth_audio import write_wav


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


def assert_user_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dawnchorus: error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "source"
    (root / "dep-a").mkdir(parents=True)
    write_wav(root / "dep-a" / "20240501_070000.WAV", np.zeros(16_000, np.float32), 16_000)
    return root


def run_argv(source: Path | str, results: Path | str, *extra: str) -> list[str]:
    return ["run", "--source", str(source), "--results", str(results), "--model", "placeholder",
            *extra]


@pytest.mark.parametrize("extra, words", [
    (["--window-s", "inf"], ["--window-s", "finite"]),
    (["--window-s", "nan"], ["--window-s", "finite"]),
    (["--window-s", "1e308"], ["--window-s", "3600"]),
    (["--window-s", "1e-9"], ["--window-s", "0.001"]),
    (["--hop-s", "1e-9"], ["--hop-s"]),
    (["--commit-interval-s", "inf"], ["--commit-interval-s", "finite"]),
    (["--lease-wait-s", "1e308"], ["--lease-wait-s"]),
    (["--decode-cpus", "nan"], ["--decode-cpus", "finite"]),
    (["--batch-size", "100000000"], ["--batch-size"]),
    (["--model", "birdnet", "--model-option", "sensitivity=nan"], ["--model-option", "sensitivity", "finite"]),
    (["--model", "birdnet", "--model-option", "sensitivty=1.2"], ["--model-option", "sensitivty", "sensitivity"]),
    (["--model", "birdnet", "--model-option", "top_k=2.5"], ["--model-option", "top_k", "whole number"]),
    (["--model-option", "slope_db=Infinity"], ["--model-option", "slope_db", "finite"]),
    (["--deployment", "nosuchdep"], ["nosuchdep", "no such folder", "dep-a"]),
])
def test_bad_run_settings_are_one_line_and_create_nothing(source, tmp_path, capsys, extra, words):
    results = tmp_path / "results"
    code, err = run(run_argv(source, results, *extra), capsys)
    assert_user_error(code, err, *words)
    assert not results.exists()


def test_deployments_csv_that_is_a_folder(source, tmp_path, capsys):
    (source / "deployments.csv").mkdir()
    code, err = run(run_argv(source, tmp_path / "results"), capsys)
    assert_user_error(code, err, "deployments.csv", "a folder")
    assert not (tmp_path / "results").exists()


def test_deployments_csv_that_links_to_nothing(source, tmp_path, capsys):
    (source / "deployments.csv").symlink_to(tmp_path / "gone.csv")
    code, err = run(run_argv(source, tmp_path / "results"), capsys)
    assert_user_error(code, err, "deployments.csv", "link to nothing")
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_deployments_csv_that_cannot_be_read(source, tmp_path, capsys):
    path = source / "deployments.csv"
    path.write_text("deployment_id\ndep-a\n")
    path.chmod(0)
    code, err = run(run_argv(source, tmp_path / "results"), capsys)
    assert_user_error(code, err, "deployments.csv", "cannot read")


@pytest.fixture
def csv_default_limit():
    """Python's default csv field limit (a library such as frictionless may have raised it for the
    whole process), restored afterwards."""
    previous = csv.field_size_limit(128 * 1024)
    yield 128 * 1024
    csv.field_size_limit(previous)


def test_deployments_csv_with_a_field_over_the_csv_limit(source, tmp_path, capsys, csv_default_limit):
    with open(source / "deployments.csv", "w", newline="") as fh:
        fh.write("deployment_id,site_id\n")
        fh.write('dep-a,"' + "x" * (csv_default_limit + 10) + '"\n')
    code, err = run(run_argv(source, tmp_path / "results"), capsys)
    assert_user_error(code, err, "deployments.csv", "line 2", "field larger than field limit")
    assert not (tmp_path / "results").exists()


def test_a_source_bucket_that_does_not_exist(s3_server, tmp_path, capsys):
    code, err = run(run_argv("s3://no-such-bucket-here/pam", tmp_path / "results"), capsys)
    assert_user_error(code, err, "no-such-bucket-here", "does not exist")
    assert not (tmp_path / "results").exists()


def test_a_results_bucket_that_does_not_exist(s3_server, source, tmp_path, capsys):
    catalog = tmp_path / "cat" / "catalog.sqlite"
    code, err = run(run_argv(source, "s3://no-such-results-bucket/r", "--catalog", str(catalog)), capsys)
    assert_user_error(code, err, "no-such-results-bucket", "does not exist")
    assert not catalog.parent.exists()


def test_a_doubled_scheme_is_not_a_bucket(source, tmp_path, capsys):
    # s3://s3://b/x names the bucket "s3:", which botocore refuses with a regex traceback.
    code, err = run(run_argv("s3://s3://field/pam", tmp_path / "results"), capsys)
    assert_user_error(code, err, "'s3:'", "not a bucket name")
    catalog = tmp_path / "cat" / "catalog.sqlite"
    code, err = run(run_argv(source, "s3://s3://team/r", "--catalog", str(catalog)), capsys)
    assert_user_error(code, err, "results", "'s3:'", "not a bucket name")
    assert not (tmp_path / "results").exists() and not catalog.parent.exists()


def test_a_mistyped_storage_option(s3_server, tmp_path, capsys):
    bucket = s3_server.make_bucket("typo-options")
    for option, words in (("client_kwargs.endpoint_ur=http://127.0.0.1:1", ("client_kwargs.endpoint_ur", "endpoint_url")),
                          ("anonn=true", ("anonn", "anon"))):
        code, err = run(run_argv(f"{bucket}/pam", tmp_path / "results", "--storage-option", option),
                        capsys)
        assert_user_error(code, err, *words)
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def catalog_root(tmp_path_factory):
    from tests.support.seed_catalog import ROBIN, Seed
    from datetime import datetime, timezone

    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("dep-a", site_id="a", timezone="UTC", latitude=1.0, longitude=2.0)
    seed.recording("dep-a", datetime(2024, 5, 1, 21, 0, tzinfo=timezone.utc), 1, calls={0: [ROBIN]})
    return root


@pytest.mark.parametrize("extra, words", [
    (["occupancy", "--days", "0"], ["--days 0"]),
    (["occupancy", "--days", "-3"], ["--days -3"]),
    (["csv", "--threshold", "nan"], ["--threshold"]),
    (["csv", "--threshold", "1.5"], ["--threshold"]),
    (["csv", "--from", "2024-06-01", "--to", "2024-05-01"], ["--from"]),
])
def test_bad_export_options_are_one_line_and_write_nothing(catalog_root, tmp_path, capsys, extra, words):
    out = tmp_path / "out"
    fmt, *rest = extra
    code, err = run(["export", fmt, "--results", str(catalog_root), "--out", str(out), *rest], capsys)
    assert_user_error(code, err, *words)
    assert not out.exists()


def test_export_out_an_existing_file(catalog_root, tmp_path, capsys):
    out = tmp_path / "taken.csv"
    out.write_text("keep me\n")
    code, err = run(["export", "csv", "--results", str(catalog_root), "--out", str(out)], capsys)
    assert_user_error(code, err, "--out", "existing file")
    assert out.read_text() == "keep me\n"


@pytest.fixture
def s3_that_checks_credentials(tmp_path):
    """A moto S3 server of its own that authenticates every request (moto's
    INITIAL_NO_AUTH_ACTION_COUNT=0): keys it does not know are refused, as AWS refuses them."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_refused_credentials_are_one_line_naming_the_bucket(s3_that_checks_credentials, tmp_path,
                                                            capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_that_checks_credentials)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAREALKEY00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    code, err = run(run_argv("s3://field-season/pam", tmp_path / "results"), capsys)
    assert_user_error(code, err, "field-season", "access refused", "AWS_ACCESS_KEY_ID")
    assert "not-a-real-secret" not in err
    assert not (tmp_path / "results").exists()
