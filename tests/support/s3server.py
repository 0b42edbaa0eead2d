"""A real S3 endpoint on 127.0.0.1 for tests: moto in server mode, not an in-process mock.

The server listens on a real socket, so other processes (a ``sys.executable`` subprocess, Ray
workers) reach it through ``S3Server.env`` exactly as they would reach AWS. moto keeps its state
in module globals, so the server is reset on start: every ``moto_s3_server()`` begins empty.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import s3fs
from moto.server import ThreadedMotoServer

log = logging.getLogger(__name__)

FAKE_ACCESS_KEY_ID = "testing-access-key"
FAKE_SECRET_ACCESS_KEY = "testing-secret-key"
REGION = "us-east-1"
READY_TIMEOUT_S = 10.0


@dataclass
class S3Server:
    """Handle on a running moto S3 server.

    Attributes:
        endpoint_url: "http://127.0.0.1:<port>".
        env: environment for another process (fake credentials, region, endpoint), to merge into
            ``os.environ`` or pass to ``subprocess.run(env=...)``.
    """

    endpoint_url: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def storage_options(self) -> dict[str, object]:
        """fsspec/s3fs keyword arguments for this endpoint.

        No ``region_name`` in ``client_kwargs``: with "us-east-1" there, moto rejects bucket
        creation with InvalidLocationConstraint.
        """
        return {
            "key": FAKE_ACCESS_KEY_ID,
            "secret": FAKE_SECRET_ACCESS_KEY,
            "client_kwargs": {"endpoint_url": self.endpoint_url},
        }

    def filesystem(self) -> s3fs.S3FileSystem:
        """A fresh s3fs filesystem (not fsspec's cached instance, so no stale listings)."""
        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **self.storage_options())

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name``; returns "s3://name"."""
        self.filesystem().mkdir(name)
        return f"s3://{name}"

    def upload_tree(self, local_dir: str | Path, url: str) -> list[str]:
        """Upload every file under ``local_dir`` to ``url`` ("s3://bucket/prefix"), keeping relative
        paths; returns the uploaded URLs, sorted."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise NotADirectoryError(f"upload_tree: {local_dir} is not a directory")
        if not url.startswith("s3://"):
            raise ValueError(f"upload_tree: expected an s3:// URL, got {url!r}")
        prefix = url.rstrip("/")
        fs = self.filesystem()
        uploaded = []
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            target = f"{prefix}/{path.relative_to(local_dir).as_posix()}"
            fs.put_file(str(path), target)
            uploaded.append(target)
        return uploaded


def _wait_until_ready(endpoint_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            # The reset makes each server start empty (moto state is process-global) and doubles
            # as the readiness probe.
            request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise TimeoutError(f"moto S3 server at {endpoint_url} did not answer within {timeout_s} s: {last_error}")


@contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    """Run a moto S3 server on 127.0.0.1 at a free port for the ``with`` block; always stops it."""
    # werkzeug logs every request at INFO (verbose=False does not stop it) from the server's
    # threads, into whatever handler is current - under pytest, a capture of some other test's
    # stderr, which a CLI test reading its own one-line error then finds cluttered or closed.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        _wait_until_ready(endpoint_url, READY_TIMEOUT_S)
        env = {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint_url,
        }
        log.info("moto S3 server listening on %s", endpoint_url)
        yield S3Server(endpoint_url=endpoint_url, env=env)
    finally:
        # Ends werkzeug's serve loop, which closes the listening socket on its way out, so the
        # port is released (tests/support/test_s3server.py checks that a late client is refused).
        server.stop()


def subprocess_env(s3: S3Server) -> dict[str, str]:
    """``os.environ`` plus the server's env, minus settings that would send boto elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    env.update(s3.env)
    return env
