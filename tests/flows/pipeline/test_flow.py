"""The nightly flow end to end: Prefect (real server) → Ray (local cluster) → backend → DuckLake.

Synthetic deployments with known content; the placeholder backend scores loudness and names the
dominant frequency, so events at known times must come out in the right windows at the right
absolute times.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from connectors.catalog import Catalog, CatalogReader
from flows.pipeline.prefect_flows import nightly
from flows.outputs.query import run_query
from flows.pipeline.settings import RunSettings
from tests.support.synth_audio import (
    corrupt_file,
    hostile_wav,
    make_deployment,
    noise,
    place,
    tone,
    truncate_wav,
    write_deployments_csv,
    write_wav,
    zero_byte_file,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]

RATE_HZ = 16_000
START_A = datetime(2024, 5, 31, 22, 0, 0, tzinfo=timezone.utc)
START_B = datetime(2024, 6, 1, 3, 30, 0, tzinfo=timezone.utc)
#: (offset_s, duration_s, freq_hz) of the tone events per recording; 35 s recordings.
EVENTS = {0: [(12.0, 4.0, 2000.0)], 1: [(2.0, 3.0, 3000.0), (31.0, 3.0, 1000.0)]}
DURATION_S = 35.0


def settings_for(source: Path | str, results: Path, **overrides) -> RunSettings:
    fields = dict(source=str(source), results=str(results), model="placeholder",
                  windows_per_unit=2, batch_size=4)
    fields.update(overrides)
    return RunSettings(**fields)


def rows(results: Path, sql: str, params=None) -> list[dict]:
    with CatalogReader(results) as catalog:
        return catalog.query(sql, params).to_pylist()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Path:
    """dep-a: two mono AudioMoth recordings with tone events, and one stereo recording whose
    right channel alone carries a tone; deployments.csv names dep-a's zone."""
    root = tmp_path_factory.mktemp("source")
    make_deployment(root, "dep-a", [START_A, START_A + timedelta(hours=1)], DURATION_S,
                    RATE_HZ, events=EVENTS)
    left = noise(25.0, RATE_HZ, level_dbfs=-60, seed=1)
    right = place(noise(25.0, RATE_HZ, level_dbfs=-60, seed=2), tone(1500.0, 5.0, RATE_HZ),
                  11.0, RATE_HZ)
    (root / "dep-b").mkdir()
    write_wav(root / "dep-b" / "20240601_033000.WAV", np.stack([left, right], axis=1), RATE_HZ)
    write_deployments_csv(root, [
        {"deployment_id": "dep-a", "site_id": "marsh-1", "latitude": 51.5, "longitude": -0.1,
         "recorder": "AudioMoth 1.2", "timezone": "Europe/London"},
    ])
    return root


@pytest.fixture(scope="module")
def first_run(deployment, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    summary = nightly(settings_for(deployment, results))
    return results, summary


def test_windows_and_absolute_times(first_run):
    results, summary = first_run
    assert summary["status"] == "completed"
    windows = rows(results, """
        select r.object_key, r.start_utc as rec_start, w.* from windows w
        join recordings r using (recording_id) order by r.object_key, w.window_index""")
    by_file: dict[str, list[dict]] = {}
    for w in windows:
        by_file.setdefault(w["object_key"], []).append(w)
    assert set(by_file) == {"dep-a/20240531_220000.WAV", "dep-a/20240531_230000.WAV",
                            "dep-b/20240601_033000.WAV"}
    for key, ws in by_file.items():
        duration = 25.0 if key.startswith("dep-b") else DURATION_S
        expected = int(np.ceil(duration / 10.0))
        assert [w["window_index"] for w in ws] == list(range(expected))
        assert [w["offset_s"] for w in ws] == [10.0 * i for i in range(expected)]
        # Every window starts at the file's start plus its offset, and the file's start came
        # from its AudioMoth name (UTC).
        file_start = datetime.strptime(key.split("/")[1][:15], "%Y%m%d_%H%M%S").replace(
            tzinfo=timezone.utc)
        for w in ws:
            assert w["start_utc"] == file_start + timedelta(seconds=w["offset_s"])
            assert w["status"] == "ok"
        # The partial last window is padded and holds only the audio that exists.
        assert [w["padded"] for w in ws] == [False] * (expected - 1) + [True]
        assert ws[-1]["duration_s"] == pytest.approx(duration - 10.0 * (expected - 1), abs=1e-3)
    london = rows(results, "select w.start_utc, w.start_local from windows w join recordings r "
                           "using (recording_id) where r.object_key = 'dep-a/20240531_220000.WAV' "
                           "and w.window_index = 0")
    # BST in June: the deployment's Europe/London wall clock is UTC + 1 h.
    assert london[0]["start_local"] == datetime(2024, 5, 31, 23, 0, 0)


def test_events_land_in_their_windows(first_run):
    results, _ = first_run
    preds = rows(results, """
        select r.object_key, p.window_index, p.task, p.label, p.score
        from predictions p join recordings r using (recording_id)
        where r.object_key like 'dep-a/%' order by 1, 2, 3""")
    detect = {(p["object_key"], p["window_index"]): p["score"] for p in preds
              if p["task"] == "detect"}
    classify = {(p["object_key"], p["window_index"]): p["label"] for p in preds
                if p["task"] == "classify"}
    files = sorted({k[0] for k in detect})
    for file_index, key in enumerate(files):
        loud = {int(off // 10) for off, _, _ in EVENTS[file_index]}
        for (k, index), score in detect.items():
            if k != key:
                continue
            assert 0.0 <= score <= 1.0
            if index in loud:
                assert score > 0.9, (key, index, score)
            else:
                assert score < 0.1, (key, index, score)
        for offset_s, _, freq in EVENTS[file_index]:
            assert classify[(key, int(offset_s // 10))] == f"tone {int(freq)} Hz"


def test_stereo_each_channel_keeps_channels_apart(deployment, tmp_path):
    summary = nightly(settings_for(deployment, tmp_path, channel_policy="each",
                                   deployments=("dep-b",)))
    assert summary["status"] == "completed"
    detect = rows(tmp_path, "select channel, window_index, score from predictions "
                            "where task = 'detect' order by channel, window_index")
    assert {d["channel"] for d in detect} == {1, 2}
    loud = {(d["channel"], d["window_index"]) for d in detect if d["score"] > 0.9}
    # The tone sits at 11-16 s in the right channel only.
    assert loud == {(2, 1)}


def test_rerun_processes_nothing_and_a_changed_file_only_itself(deployment, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(deployment, source)
    results = tmp_path / "results"
    first = nightly(settings_for(source, results))
    before = rows(results, "select count(*) as n from predictions")[0]["n"]
    second = nightly(settings_for(source, results))
    assert second["units_planned"] == 0 and second["windows"] == 0
    assert rows(results, "select count(*) as n from predictions")[0]["n"] == before

    changed = source / "dep-a" / "20240531_230000.WAV"
    stat = changed.stat()
    os.utime(changed, (stat.st_atime, stat.st_mtime + 60))
    third = nightly(settings_for(source, results))
    assert third["recordings_changed"] == 1 and third["recordings_new"] == 0
    assert third["windows"] == int(np.ceil(DURATION_S / 10))
    per_window = rows(results, """
        select recording_id, channel, window_index, task, rank, count(*) as n
        from predictions group by all having count(*) > 1""")
    assert per_window == []
    assert rows(results, "select count(*) as n from predictions")[0]["n"] == before
    assert rows(results, "select count(*) as n from recordings where uri like ?",
                [f"%{changed.name}"])[0]["n"] == 1
    assert first["windows"] == sum(int(np.ceil(d / 10)) for d in (DURATION_S, DURATION_S, 25.0))


def test_bad_files_are_recorded_and_the_rest_processed(deployment, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(deployment, source)
    corrupted = source / "dep-a" / "20240601_000000.WAV"
    shutil.copy(source / "dep-a" / "20240531_220000.WAV", corrupted)
    corrupt_file(corrupted)
    zero_byte_file(source / "dep-a" / "20240601_010000.WAV")
    truncated = source / "dep-a" / "20240601_020000.WAV"
    shutil.copy(source / "dep-a" / "20240531_220000.WAV", truncated)
    truncate_wav(truncated, keep_fraction=0.5)
    # A 144-byte header that lies (1 Hz, a 0xFFFFFFF0-byte data chunk): it used to plan 429
    # million windows and take the host down; it fails alone, with its reason.
    hostile_wav(source / "dep-a" / "20240601_040000.WAV")
    results = tmp_path / "results"
    summary = nightly(settings_for(source, results))
    assert summary["status"] == "completed"
    recs = {r["object_key"]: r for r in rows(results, "select * from recordings")}
    for name in ("20240601_000000.WAV", "20240601_010000.WAV", "20240601_040000.WAV"):
        rec = recs[f"dep-a/{name}"]
        assert rec["status"] == "failed"
        assert rec["error"], rec
    assert "empty" in recs["dep-a/20240601_010000.WAV"]["error"].lower()
    assert "sample rate 1 Hz" in recs["dep-a/20240601_040000.WAV"]["error"]
    # Good files: every planned window analysed.
    for key in ("dep-a/20240531_220000.WAV", "dep-a/20240531_230000.WAV"):
        ws = rows(results, "select w.status from windows w join recordings r using (recording_id) "
                           "where r.object_key = ?", [key])
        assert [w["status"] for w in ws] == ["ok"] * int(np.ceil(DURATION_S / 10))
    # The truncated file: its header promises 35 s, half is there; the rest is empty, not lost.
    ws = rows(results, "select w.status from windows w join recordings r using (recording_id) "
                       "where r.object_key = ? order by window_index",
              ["dep-a/20240601_020000.WAV"])
    assert ws and ws[0]["status"] == "ok" and ws[-1]["status"] == "empty"
    report = Path(summary["report"]).read_text()
    assert "20240601_000000.WAV" in report and "20240601_010000.WAV" in report


def test_decoding_in_the_model_actor_or_in_tasks_gives_the_same_rows(deployment, tmp_path):
    """The two decode placements (tasks of their own, or inside the model actor) over good,
    stereo and truncated files: the same windows (statuses, errors, durations) and answers."""
    from flows.pipeline.run import run_plain
    from flows.pipeline.ray_engine import resolve_decode_placement

    assert resolve_decode_placement("auto", actor_gpus=0) == "actor"
    assert resolve_decode_placement("auto", actor_gpus=1) == "tasks"
    source = tmp_path / "source"
    shutil.copytree(deployment, source)
    truncated = source / "dep-a" / "20240601_020000.WAV"
    shutil.copy(source / "dep-a" / "20240531_220000.WAV", truncated)
    truncate_wav(truncated, keep_fraction=0.5)
    corrupt_file(shutil.copy(source / "dep-a" / "20240531_220000.WAV", source / "dep-a" / "20240601_030000.WAV"))
    got = {}
    for placement in ("tasks", "actor"):
        results = tmp_path / placement
        summary = run_plain(settings_for(source, results, decode_placement=placement, windows_per_unit=3))
        assert summary["status"] == "completed"
        got[placement] = {table: sorted(tuple(str(v) for v in r.values()) for r in rows(
            results, f"select * exclude (run_id) from {table}")) for table in ("windows", "predictions")}
    assert got["actor"] == got["tasks"]
    statuses = {r["status"] for r in rows(tmp_path / "actor", "select status from windows")}
    assert statuses == {"ok", "empty"} and got["actor"]["predictions"]  # the truncated file's tail


def test_query_threshold_and_csv(first_run, capsys):
    results, _ = first_run
    from flows.cli.main import main

    loose = run_query(str(results), "select count(*) as n from detections", threshold=0.0)
    strict = run_query(str(results), "select count(*) as n from detections", threshold=0.99)
    assert loose["n"][0].as_py() > strict["n"][0].as_py()
    assert main(["query", "--results", str(results), "--format", "csv",
                 "select deployment_id, count(*) as n from windows group by 1 order by 1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].replace('"', "") == "deployment_id,n"
    assert [line.split(",")[0].strip('"') for line in out[1:]] == ["dep-a", "dep-b"]


def test_flow_over_s3(deployment, tmp_path, s3_server):
    bucket = s3_server.make_bucket("field-audio")
    s3_server.upload_tree(deployment, f"{bucket}/season-1")
    summary = nightly(settings_for(f"{bucket}/season-1", tmp_path,
                                   storage_options=s3_server.storage_options()))
    assert summary["status"] == "completed" and summary["recordings_listed"] == 3
    recs = rows(tmp_path, "select uri, status from recordings order by uri")
    assert all(r["uri"].startswith("s3://field-audio/season-1/") for r in recs)
    assert all(r["status"] == "ok" for r in recs)
    assert rows(tmp_path, "select count(*) as n from windows where status = 'ok'")[0]["n"] == \
        summary["windows"] == 2 * int(np.ceil(DURATION_S / 10)) + 3


def test_bad_metadata_stops_the_run_before_any_work(deployment, tmp_path, capsys):
    from flows.cli.main import main

    source = tmp_path / "source"
    shutil.copytree(deployment, source)
    (source / "deployments.csv").write_text(
        "deployment_id,latitude,longitude,timezone\ndep-a,123.0,0.0,Europe/London\n",
        encoding="utf-8")
    code = main(["run", "--source", str(source), "--results", str(tmp_path / "res"),
                 "--model", "placeholder"])
    err = capsys.readouterr().err
    assert code == 2
    assert "deployments.csv" in err and "latitude" in err
    # Refused by the source check before anything exists under the results: no recording
    # registered, and no catalog either.
    assert not (tmp_path / "res").exists()


def test_missing_weights_are_named_before_any_work(deployment, tmp_path, capsys):
    from flows.cli.main import main

    missing = tmp_path / "no-such-release"
    code = main(["run", "--source", str(deployment), "--results", str(tmp_path / "res"),
                 "--model", "naturelm", "--weights", str(missing), "--llama", str(missing)])
    assert code == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "res" / "catalog.sqlite").exists()
