"""An S3 endpoint that fails on demand: a real HTTP proxy on 127.0.0.1 in front of the moto server.

Faults are injected on the wire, where a real outage shows them to every client (s3fs in the
driver, in Ray workers, in a CLI subprocess), never by patching the code under test:

- ``fail_object_reads``: every GET and HEAD of an audio object (a key ending in one of
  ``fail_suffixes``) is answered ``503 ServiceUnavailable`` (S3's outage answer); listings,
  bucket requests and other objects (deployments.csv) still pass.
- ``delay_object_reads_s``: object reads wait this long first (a slow endpoint, so that a test
  can act between two commits of a run).
- ``die()``: the endpoint stops listening; every later connection is refused (a dead endpoint).
  ``die_after_object_reads = n``: the same, by itself, at the (n+1)-th object read (that request
  gets its connection closed with no answer), so a test can kill it mid-run at a fixed point.
"""

from __future__ import annotations

import http.client
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit

OUTAGE_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
               b"<Message>injected outage</Message><RequestId>faulty-s3</RequestId></Error>")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultyS3:
    """The proxy's switches and counters (see the module docstring)."""

    def __init__(self, upstream_url: str):
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname, parts.port)
        self.fail_object_reads = False
        self.fail_suffixes = (".wav", ".flac", ".mp3", ".ogg")
        self.delay_object_reads_s = 0.0
        self.object_reads = 0  # object GET/HEAD requests seen, failed or not
        self.die_after_object_reads: int | None = None
        self.failed_reads = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="faulty-s3")
        self._thread.start()
        self.alive = True

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def die(self) -> None:
        """Stop listening: connections from now on are refused."""
        if self.alive:
            self.alive = False
            self._server.shutdown()
            self._server.server_close()

    @staticmethod
    def is_object_read(method: str, path: str) -> bool:
        """A GET or HEAD of an object: /bucket/key (path style); /bucket?list-type=2 is a listing."""
        key = urlsplit(path).path.lstrip("/").split("/", 1)
        return method in ("GET", "HEAD") and len(key) == 2 and bool(key[1])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.is_object_read(self.command, self.path):
                    with proxy._lock:
                        proxy.object_reads += 1
                        dying = (proxy.die_after_object_reads is not None
                                 and proxy.object_reads > proxy.die_after_object_reads)
                    if dying:  # no answer, and nothing listens from now on
                        threading.Thread(target=proxy.die, daemon=True).start()
                        self.close_connection = True
                        return
                    if proxy.delay_object_reads_s:
                        time.sleep(proxy.delay_object_reads_s)
                    key = urlsplit(self.path).path.lower()
                    if proxy.fail_object_reads and key.endswith(proxy.fail_suffixes):
                        with proxy._lock:
                            proxy.failed_reads += 1
                        self.send_response(503)
                        self.send_header("Content-Type", "application/xml")
                        self.send_header("Content-Length", str(len(OUTAGE_BODY)))
                        self.end_headers()
                        if self.command != "HEAD":
                            self.wfile.write(OUTAGE_BODY)
                        return
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status, response.reason)
                    for k, v in response.getheaders():
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    # A HEAD answer has no body but the object's length (what s3fs reads as size).
                    length = response.getheader("Content-Length") if self.command == "HEAD" \
                        else str(len(data))
                    self.send_header("Content-Length", length or "0")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        return Handler


@contextmanager
def faulty_s3(upstream_url: str) -> Iterator[FaultyS3]:
    """A fault-injecting proxy in front of `upstream_url` for the ``with`` block."""
    proxy = FaultyS3(upstream_url)
    try:
        yield proxy
    finally:
        proxy.die()
