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


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def own_hosts(host: str, port: int, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Host header values the server answers (anything else is refused: DNS rebinding).

    On loopback: the loopback names. Beyond it: also the bound address (unless it is 0.0.0.0 or
    ::, which name no host), this machine's name, its fully qualified name and the addresses that
    name resolves to, and `extra` (`--allowed-host`: a name or address clients use for it).
    """
    names = set(LOOPBACK_NAMES)
    if not is_loopback(host):
        try:
            unspecified = ipaddress.ip_address(host).is_unspecified
        except ValueError:
            unspecified = False
        machine = {socket.gethostname(), socket.getfqdn()}
        try:
            machine |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
        names |= machine | ({host} if not unspecified else set())
    names |= set(extra)
    bracketed = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names if n}
    return frozenset({f"{n}:{port}" for n in bracketed} | (bracketed if port == 80 else set()))


class ReviewServer:
    """The review page on host:port until stopped."""

    def __init__(self, service: ReviewService, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 token: str | None = None, access_key: str | None = None,
                 allowed_hosts: tuple[str, ...] = ()):
        if not is_loopback(host) and not access_key:
            raise ConfigError(f"--host {host}: serving beyond this machine (loopback) needs an "
                              "access key, so that not everyone who can reach the address can "
                              "record verdicts")
        self.sock = bind(host, port)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.access_key = access_key
        self.app = create_app(service, token=token, access_key=access_key,
                              allowed_hosts=own_hosts(host, self.port, allowed_hosts))
        self.token: str = self.app.state.token
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def access_url(self) -> str:
        """The address to open once: it carries the access key (printed in the terminal only).
        A server on 0.0.0.0 or :: is named by this machine's name."""
        host = self.host
        try:
            if ipaddress.ip_address(host).is_unspecified:
                host = socket.gethostname()
        except ValueError:
            pass
        host = f"[{host}]" if ":" in host else host
        key = f"?access={self.access_key}" if self.access_key else ""
        return f"http://{host}:{self.port}/{key}"

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
