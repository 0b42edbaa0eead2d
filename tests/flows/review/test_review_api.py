"""The review server over HTTP: a real uvicorn server on 127.0.0.1, a real catalog, real WAV
files (local and on a moto S3 server). Audio is the window and one second each side, read from
the source; a verdict is one catalog row with the catalog's score; everything outside the
catalog, without the token or malformed is refused with a 4xx and a reason."""

from __future__ import annotations

import io
import json
import struct
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from connectors.catalog import Catalog
from connectors.tables import replace
from flows.review.service import Filters, ReviewService, ReviewSettings
from flows.review.server import ReviewServer
from tests.support.review_catalog import (
    RATE_HZ,
    build,
    prediction_row,
    recording_row,
    reviews_rows,
    window_row,
    write_recording,
)

pytestmark = pytest.mark.e2e  # a real uvicorn server on 127.0.0.1


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(server: ReviewServer, path: str, *, body: dict | None = None, token: str | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path.lstrip("/"), data=data,
                                     method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("X-Review-Token", token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return build(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def server(catalog):
    service = ReviewService(ReviewSettings(results=str(catalog.results), reviewer="ana"))
    with ReviewServer(service, port=0) as running:
        yield running
    service.close()


@pytest.fixture
def writable(tmp_path):
    """A catalog of its own and a server over it, for tests that write verdicts."""
    built = build(tmp_path)
    service = ReviewService(ReviewSettings(results=str(built.results), reviewer="ana"))
    with ReviewServer(service, port=0) as running:
        yield built, running
    service.close()


def key(recording_id: str, window_index: int, channel: int = 0, fingerprint: str = "fp1") -> str:
    return f"{recording_id}.{fingerprint}.{channel}.{window_index}"


def decoded(reply: Reply) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(reply.body), dtype="float64", always_2d=False)
    return samples, rate


@pytest.mark.parametrize("window_index, start_s, end_s", [(0, 0.0, 11.0), (2, 19.0, 31.0),
                                                          (5, 49.0, 60.0)])
def test_audio_is_the_window_and_a_second_each_side_of_it(catalog, server, window_index,
                                                          start_s, end_s):
    reply = call(server, f"/api/audio.wav?key={key('rec-mono', window_index)}")
    assert reply.status == 200
    assert reply.headers["content-type"] == "audio/wav"
    samples, rate = decoded(reply)
    source, source_rate = sf.read(catalog.source / "dep-a" / "20240601_030000.WAV", dtype="float64")
    assert rate == source_rate == RATE_HZ
    expected = source[round(start_s * RATE_HZ):round(end_s * RATE_HZ)]
    assert samples.shape == expected.shape
    np.testing.assert_allclose(samples, expected, atol=1.5 / 32768)


def test_audio_of_a_channel_window_is_that_channel(catalog, server):
    # rec-stereo was analysed channel by channel (channel 2 = the right one, carrying the tone).
    reply = call(server, f"/api/audio.wav?key={key('rec-stereo', 2, channel=2)}")
    assert reply.status == 200
    samples, _ = decoded(reply)
    source, _ = sf.read(catalog.source / "dep-a" / "20240601_040000.WAV", dtype="float64")
    right = source[19 * RATE_HZ:31 * RATE_HZ, 1]
    np.testing.assert_allclose(samples, right, atol=1.5 / 32768)
    assert np.abs(samples).max() > 10 * np.abs(source[19 * RATE_HZ:31 * RATE_HZ, 0]).max()


def png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", body[16:24])


def test_spectrogram_is_a_png_of_the_window(server):
    reply = call(server, f"/api/spectrogram.png?key={key('rec-mono', 1)}")
    assert reply.status == 200
    assert reply.headers["content-type"] == "image/png"
    assert png_size(reply.body) == (900, 300)


def test_a_verdict_is_one_catalog_row_with_the_catalogs_score(writable):
    built, server = writable
    reply = call(server, "/api/verdicts", token=server.token, body={
        "key": key("rec-mono", 3), "label": "wren", "verdict": "correct", "reviewer": "bea"})
    assert reply.status == 201, reply.body
    other = call(server, "/api/verdicts", token=server.token, body={
        "key": key("rec-mono", 1), "label": "robin", "verdict": "other",
        "corrected_label": "Dunnock", "reviewer": "bea"})
    assert other.status == 201, other.body
    rows = reviews_rows(built.results)
    assert [(r["recording_id"], r["config_fingerprint"], r["channel"], r["window_index"],
             r["deployment_id"], r["label"], r["verdict"], r["corrected_label"], r["reviewer"],
             r["via"]) for r in rows] == [
        ("rec-mono", "fp1", 0, 3, "dep-a", "wren", "correct", None, "bea", "page"),
        ("rec-mono", "fp1", 0, 1, "dep-a", "robin", "other", "Dunnock", "bea", "page"),
    ]
    # Window 3 of 6 scores (3 + 0.5) / 6 in the catalog; robin scores 0.9.
    assert [r["score"] for r in rows] == [pytest.approx(3.5 / 6), pytest.approx(0.9)]
    assert reply.json()["review_id"] == rows[0]["review_id"]


def test_a_client_cannot_set_the_score(writable):
    built, server = writable
    reply = call(server, "/api/verdicts", token=server.token, body={
        "key": key("rec-mono", 3), "label": "wren", "verdict": "correct", "reviewer": "bea",
        "score": 0.99})
    assert reply.status == 400 and "score" in reply.json()["detail"]
    assert reviews_rows(built.results) == []


REFUSED = [
    # (request, status, words the reason must hold)
    (dict(path="/api/audio.wav?key=rec-mono.fp1.0.99"), 404, "not in the catalog"),
    (dict(path="/api/spectrogram.png?key=nope.fp1.0.0"), 404, "not in the catalog"),
    (dict(path="/api/audio.wav?key=rec-mono.fp9.0.1"), 404, "not in the catalog"),
    (dict(path="/api/audio.wav?key=..%2F..%2Fetc%2Fpasswd"), 400, "window key"),
    (dict(path="/api/audio.wav?key=%2Fetc%2Fpasswd.fp1.0.1"), 400, "window key"),
    (dict(path="/api/audio.wav"), 400, "key"),
    (dict(path="/api/queue?limit=0"), 400, "limit"),
    (dict(path="/api/verdicts", body={"key": "rec-mono.fp1.0.1", "label": "wren",
                                      "verdict": "correct", "reviewer": "x"}), 403, "token"),
    (dict(path="/api/verdicts", token="not-the-token",
          body={"key": "rec-mono.fp1.0.1", "label": "wren", "verdict": "correct",
                "reviewer": "x"}), 403, "token"),
    (dict(path="/api/verdicts", token=True, body={"key": "rec-mono.fp1.0.1", "label": "heron",
                                                  "verdict": "correct", "reviewer": "x"}),
     404, "no detection of 'heron'"),
    (dict(path="/api/verdicts", token=True, body={"key": "rec-mono.fp1.0.1", "label": "wren",
                                                  "verdict": "maybe", "reviewer": "x"}),
     400, "verdict"),
    (dict(path="/api/verdicts", token=True, body={"key": "rec-mono.fp1.0.1", "label": "wren",
                                                  "verdict": "other", "reviewer": "x"}),
     400, "corrected label"),
    (dict(path="/api/verdicts", token=True, body={"key": "rec-mono.fp1.0.1", "label": "wren",
                                                  "verdict": "correct", "reviewer": " "}),
     400, "reviewer"),
    (dict(path="/api/verdicts", token=True, body={"key": "rec-mono.fp1.0.1"}), 400, "label"),
    (dict(path="/", headers={"Host": "attacker.example:80"}), 400, "not served"),
    (dict(path="/no/such/page"), 404, "Not Found"),
]


@pytest.mark.parametrize("request_, status, reason", REFUSED,
                         ids=[f"{r[1]}-{r[2].replace(' ', '_')}" for r in REFUSED])
def test_bad_requests_are_refused_with_a_reason(catalog, server, request_, status, reason):
    request_ = dict(request_)
    if request_.get("token") is True:
        request_["token"] = server.token
    reply = call(server, **request_)
    assert reply.status == status, reply.body
    detail = reply.json()["detail"]
    assert reason in detail
    assert "Traceback" not in detail and "File \"" not in detail
    assert reviews_rows(catalog.results) == []


def test_audio_of_a_recording_changed_since_analysis_is_refused(tmp_path):
    built = build(tmp_path)
    service = ReviewService(ReviewSettings(results=str(built.results), reviewer="ana"))
    try:
        with ReviewServer(service, port=0) as server:
            path = built.source / "dep-a" / "20240601_030000.WAV"
            write_recording(path, 30.0)  # rewritten: another size
            changed = call(server, f"/api/audio.wav?key={key('rec-mono', 1)}")
            path.unlink()
            missing = call(server, f"/api/spectrogram.png?key={key('rec-mono', 1)}")
    finally:
        service.close()
    assert changed.status == 409 and "changed since it was analysed" in changed.json()["detail"]
    assert missing.status == 404 and "file not found" in missing.json()["detail"]


def test_audio_is_read_from_s3(tmp_path, s3_server):
    local = write_recording(tmp_path / "x" / "20240601_050000.WAV", 30.0, [(4.0, 2500.0)])
    bucket = s3_server.make_bucket("review-audio")  # the S3 server is shared by the session
    uri = f"{bucket}/season-1/dep-a/20240601_050000.WAV"
    s3_server.filesystem().put_file(str(local), uri)
    info = s3_server.filesystem().info(uri)
    rec = recording_row("rec-s3", uri, 30.0, size_bytes=info["size"])
    rec = replace(rec, etag=info["ETag"].strip('"'))
    results = tmp_path / "results"
    with Catalog(results) as catalog:
        catalog.register_recordings([rec], [])
        windows = [window_row(rec, i, "fp1") for i in range(3)]
        catalog.commit_unit(windows, [prediction_row(w, "wren", 0.5) for w in windows])
    service = ReviewService(ReviewSettings(results=str(results), reviewer="ana"))
    try:
        with ReviewServer(service, port=0) as server:
            reply = call(server, f"/api/audio.wav?key={key('rec-s3', 0)}")
            picture = call(server, f"/api/spectrogram.png?key={key('rec-s3', 0)}")
    finally:
        service.close()
    assert reply.status == 200, reply.body
    samples, _ = decoded(reply)
    source, _ = sf.read(local, dtype="float64")
    np.testing.assert_allclose(samples, source[: 11 * RATE_HZ], atol=1.5 / 32768)
    assert picture.status == 200 and png_size(picture.body) == (900, 300)


# ------------------------------------------------------------------------------------ the queue


def bins_of(items: list[dict]) -> list[int]:
    return [int(min(9, (item["score"] - 0.1) / 0.9 * 10)) for item in items]


@pytest.fixture
def skewed(tmp_path):
    """200 detections of "chiffchaff" of which 180 score above 0.9, and 3 of "wren"."""
    rec = recording_row("rec-long", str(tmp_path / "long.wav"), 2000.0)
    rng = np.random.default_rng(7)
    scores = np.concatenate([rng.uniform(0.9, 1.0, 180), rng.uniform(0.1, 0.9, 20)])
    rng.shuffle(scores)
    results = tmp_path / "results"
    with Catalog(results) as catalog:
        catalog.register_recordings([rec], [])
        windows = [window_row(rec, i, "fp1") for i in range(200)]
        predictions = [prediction_row(w, "chiffchaff", float(s)) for w, s in zip(windows, scores)]
        predictions += [prediction_row(windows[i], "wren", 0.5, rank=2) for i in range(3)]
        predictions += [prediction_row(windows[0], "tit", 0.05, rank=3)]  # below min_score
        catalog.commit_unit(windows, predictions)
    return results, scores


def test_queue_samples_every_score_bin_before_repeating_one(skewed):
    results, scores = skewed
    service = ReviewService(ReviewSettings(results=str(results), reviewer="ana"))
    try:
        queue = service.queue(Filters(label="chiffchaff"), limit=500)
    finally:
        service.close()
    assert len(queue) == 200
    filled = set(bins_of([{"score": s} for s in scores]))
    first = bins_of(queue[: len(filled)])
    # The first pass takes one detection from each bin that has any, from the top bin down:
    # a reviewer who stops after a few sees low and high scores alike.
    assert first == sorted(filled, reverse=True)
    # A random sample of the same size would be almost all top-bin detections.
    assert Counter(bins_of(queue[:20]))[9] < 10


def test_queue_resumes_without_reviewed_items_and_filters(skewed):
    results, _ = skewed
    service = ReviewService(ReviewSettings(results=str(results), reviewer="ana"))
    try:
        before = service.queue(Filters(), limit=500)
        assert {q["label"] for q in before} == {"chiffchaff", "wren"}  # tit is below 0.1
        assert len(service.queue(Filters(label="wren"), limit=500)) == 3
        assert service.queue(Filters(deployment="dep-b"), limit=5) == []
        assert service.queue(Filters(fingerprint="fp2"), limit=5) == []
        from flows.review.service import WindowKey

        for item in before[:5]:
            service.add_verdict(WindowKey.parse(item["key"]), item["label"], "wrong", "ana")
    finally:
        service.close()
    # A new server (the page restarted) offers the same order without what was reviewed.
    again = ReviewService(ReviewSettings(results=str(results), reviewer="ana"))
    try:
        after = again.queue(Filters(), limit=500)
        progress = {p["label"]: p for p in again.progress(Filters())}
    finally:
        again.close()
    assert [(q["key"], q["label"]) for q in after] == [(q["key"], q["label"]) for q in before[5:]]
    assert (progress["chiffchaff"]["reviewed"], progress["chiffchaff"]["wrong"],
            progress["chiffchaff"]["pending"]) == (5, 5, 195)


def test_the_server_binds_loopback_by_default_and_is_not_reachable_from_outside(catalog):
    import socket

    from flows.cli.main import build_parser

    args = build_parser().parse_args(["review", "--results", str(catalog.results)])
    assert args.host == "127.0.0.1"
    # The address this machine would use outwards (a UDP "connect" sends nothing).
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 9))
        outside = [probe.getsockname()[0]]
    except OSError:
        outside = []
    finally:
        probe.close()
    outside = [a for a in outside if not a.startswith("127.")]
    if not outside:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    service = ReviewService(ReviewSettings(results=str(catalog.results), reviewer="ana"))
    try:
        with ReviewServer(service, host=args.host, port=0) as server:
            assert call(server, "/api/progress").status == 200
            with pytest.raises(OSError):
                socket.create_connection((outside[0], server.port), timeout=5).close()
    finally:
        service.close()
