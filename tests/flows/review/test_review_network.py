"""The review page on a network: a real uvicorn server bound to 0.0.0.0 over a real catalog.
Nothing is served or written without the access key printed in the terminal; a foreign Host
(DNS rebinding) is refused even with it; serving beyond loopback without a key is refused."""

from __future__ import annotations

import http.client
import json
import re

import pytest

from connectors.errors import ConfigError
from flows.review.server import ReviewServer
from flows.review.service import ReviewService, ReviewSettings
from tests.support.review_catalog import build, reviews_rows

ACCESS_KEY = "k3y-for-the-test-0123456789"
VERDICT = {"key": "rec-mono.fp1.0.3", "label": "wren", "verdict": "correct", "reviewer": "bea"}

pytestmark = pytest.mark.e2e  # a real uvicorn server


def send(server: ReviewServer, method: str, path: str, *, headers: dict[str, str] | None = None,
         body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to the server through 127.0.0.1, exactly as given (no redirects followed)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        all_headers = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.fixture
def network(tmp_path):
    built = build(tmp_path)
    service = ReviewService(ReviewSettings(results=str(built.results), reviewer="ana"))
    with ReviewServer(service, host="0.0.0.0", port=0, access_key=ACCESS_KEY) as server:
        yield built, server
    service.close()


def test_without_the_access_key_nothing_is_served_and_no_verdict_recorded(network):
    built, server = network
    status, _, body = send(server, "GET", "/")
    assert status == 401 and b"access key" in body
    assert server.token.encode() not in body and ACCESS_KEY.encode() not in body
    for path in ("/api/queue", "/api/progress", "/api/audio.wav?key=rec-mono.fp1.0.3"):
        assert send(server, "GET", path)[0] == 401, path
    # Even with the page token (say, leaked), a write without the access key is refused.
    status, _, body = send(server, "POST", "/api/verdicts", body=VERDICT,
                           headers={"X-Review-Token": server.token})
    assert status == 401, body
    status, _, _ = send(server, "GET", "/?access=wrong-key")
    assert status == 403
    assert reviews_rows(built.results) == []


def test_the_access_key_opens_the_page_once_and_writes_need_it_and_the_token(network):
    built, server = network
    assert server.access_url.endswith(f":{server.port}/?access={ACCESS_KEY}")
    status, headers, _ = send(server, "GET", f"/?access={ACCESS_KEY}&species=wren")
    assert status == 303 and headers["location"] == "/?species=wren"
    cookie_header = headers["set-cookie"]
    assert "httponly" in cookie_header.lower() and "samesite=strict" in cookie_header.lower()
    cookie = cookie_header.split(";", 1)[0]
    status, _, page = send(server, "GET", "/", headers={"Cookie": cookie})
    assert status == 200
    token = re.search(rb'name="review-token" content="([^"]+)"', page).group(1).decode()
    assert token == server.token and ACCESS_KEY.encode() not in page
    # The cookie alone does not write (a cross-site form cannot set the token header) ...
    status, _, _ = send(server, "POST", "/api/verdicts", body=VERDICT, headers={"Cookie": cookie})
    assert status == 403
    assert reviews_rows(built.results) == []
    # ... a foreign Host is refused even with both (DNS rebinding) ...
    status, _, body = send(server, "POST", "/api/verdicts", body=VERDICT, headers={
        "Cookie": cookie, "X-Review-Token": token, "Host": "evil.example"})
    assert status == 400 and b"not served" in body
    assert reviews_rows(built.results) == []
    # ... and the key's holder records a verdict.
    status, _, body = send(server, "POST", "/api/verdicts", body=VERDICT,
                           headers={"Cookie": cookie, "X-Review-Token": token})
    assert status == 201, body
    assert [(r["window_index"], r["verdict"]) for r in reviews_rows(built.results)] == [(3, "correct")]


def test_a_foreign_host_is_refused_on_a_network_address(network):
    _, server = network
    status, _, body = send(server, "GET", f"/?access={ACCESS_KEY}", headers={"Host": "evil.example"})
    assert status == 400 and b"not served" in body


def test_serving_beyond_loopback_without_an_access_key_is_refused(tmp_path):
    built = build(tmp_path)
    service = ReviewService(ReviewSettings(results=str(built.results), reviewer="ana"))
    try:
        with pytest.raises(ConfigError, match="needs an access key"):
            ReviewServer(service, host="0.0.0.0", port=0)
    finally:
        service.close()


def test_the_cli_refuses_a_short_key_with_one_line(tmp_path, monkeypatch, capsys):
    from flows.cli.main import main

    built = build(tmp_path)
    monkeypatch.setenv("DAWNCHORUS_REVIEW_KEY", "short")
    code = main(["review", "--results", str(built.results), "--host", "0.0.0.0", "--port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "DAWNCHORUS_REVIEW_KEY" in err[0]
