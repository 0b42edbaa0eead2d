"""Serve the review page with uvicorn: in the foreground (`dawnchorus review`) or in a thread
(tests). The socket is bound first, so port 0 (any free port) gives a URL before serving starts,
and the app knows which Host headers are its own."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time

import uvicorn

from connectors.errors import ConfigError
from flows.review.app import create_app
from flows.review.defaults import DEFAULT_HOST, DEFAULT_PORT
from flows.review.service import ReviewService

log = logging.getLogger(__name__)



def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ConfigError (one line) when the address cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(64)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_hosts(host: str, port: int) -> frozenset[str] | None:
    """Host header values a loopback server answers (None = any, for a server on a network)."""
    if not is_loopback(host):
        return None
    return frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]", host))


class ReviewServer:
    """The review page on host:port until stopped."""

    def __init__(self, service: ReviewService, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 token: str | None = None):
        self.sock = bind(host, port)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.app = create_app(service, token=token, allowed_hosts=own_hosts(host, self.port))
        self.token: str = self.app.state.token
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self) -> "ReviewServer":
        """Serve from a background thread; returns once the server accepts requests."""
        self._thread = threading.Thread(target=self.serve_forever, name="review-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the review server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> "ReviewServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
