"""Errors raised by the connectors.

Three kinds, because the pipeline treats them differently (see docs/architecture.md and
docs/operations.md, "When a service fails"):

- :class:`InputError` - one input (a recording, a metadata file) is bad. The pipeline logs it under
  its reason, marks that recording failed and carries on with the others.
- :class:`ConfigError` - the run's configuration or metadata is wrong (a malformed
  ``deployments.csv``, an unknown time zone, a source URI that cannot be opened). The run stops
  before any expensive work, because every result would be wrong or missing.

And :class:`ServiceError` (with :func:`transient_reason`, which finds one inside another error) -
a service the run depends on failed. Never a verdict on an input: the work is left for the next
run, which tries it again without any flag.
"""

from __future__ import annotations

import errno


class InputError(Exception):
    """A bad input file; ``str(e)`` is ``"<uri>: <reason>"``."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason

    def __reduce__(self):
        # Exceptions cross process boundaries (Ray workers) by pickling; the default reduce would
        # call __init__ with the single formatted message and fail.
        return (type(self), (self.uri, self.reason))


class ConfigError(Exception):
    """Bad configuration or metadata that must stop a run before expensive work."""


class ServiceError(Exception):
    """A service the run depends on failed (object storage, a Ray cluster, the disk): not the
    input's fault and not a verdict on it. ``str(e)`` is one line naming the service and what was
    tried; the run ends non-zero and the next run tries the same work again."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.service, self.reason))


#: S3 error codes that say the service, not the object, is at fault (retry later, same request).
_TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeoutException",
    "Throttling", "ThrottlingException", "RequestThrottled", "RequestLimitExceeded",
    "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidAccessKeyId",
    "SignatureDoesNotMatch", "InvalidToken",
})
#: errno values of a network or a busy remote service (s3fs maps 503 to EBUSY, 500 to EREMOTEIO).
_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name) for name in (
        "EBUSY", "EREMOTEIO", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ECONNABORTED",
        "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "EPIPE", "EAGAIN",
    ) if hasattr(errno, name)
)
#: Exception classes (by module prefix and name) of a network or remote service failing.
_TRANSIENT_CLASSES = (
    ("botocore", "ConnectionError"),  # EndpointConnectionError, ConnectTimeoutError ...
    ("botocore", "HTTPClientError"),  # ReadTimeoutError, ConnectionClosedError ...
    ("botocore", "NoCredentialsError"),
    ("botocore", "CredentialRetrievalError"),
    ("aiohttp", "ClientConnectionError"),
    ("aiohttp", "ServerTimeoutError"),
    ("aiohttp", "ClientPayloadError"),
    ("fsspec", "FSTimeoutError"),
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and all(exc is not s for s in seen) and len(seen) < 32:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _is_transient_one(exc: BaseException) -> str | None:
    if isinstance(exc, ServiceError):
        return exc.reason
    for cls in type(exc).__mro__:
        for module, name in _TRANSIENT_CLASSES:
            if cls.__name__ == name and cls.__module__.startswith(module):
                return f"{type(exc).__name__}: {_first_line(exc)}"
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore ClientError
        code = str(response["Error"].get("Code", ""))
        status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        if code in _TRANSIENT_S3_CODES or status >= 500:
            return f"{code or 'error'} (HTTP {status or '?'}): {_first_line(exc)}"
        return None
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"{type(exc).__name__}: {_first_line(exc)}"
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {_first_line(exc)}"
    return None


def transient_reason(exc: BaseException) -> str | None:
    """Why `exc` is the infrastructure's failure (a storage error or timeout, an endpoint that
    does not answer, refused credentials), or None when it is the input's (a corrupt file, a
    missing object): the first such cause along its chain, as one line."""
    reasons = [(link, _is_transient_one(link)) for link in _chain(exc)]
    # The service's own answer (a botocore error: its code and HTTP status) says most; an errno
    # that a client library translated it into, least.
    for link, reason in reasons:
        if reason is not None and (isinstance(link, ServiceError)
                                   or type(link).__module__.startswith(("botocore", "aiohttp"))):
            return reason
    return next((reason for _, reason in reasons if reason is not None), None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


class DiskFull(ServiceError):
    """A write found no space left (ENOSPC, a quota, SQLite's "database or disk is full").

    ``str(e)`` names the place: "no space left on <path> (<what was written>) ...".
    """

    def __init__(self, path: str, what: str) -> None:
        Exception.__init__(self, f"no space left on {path} ({what}); nothing of it was kept: "
                                 "free some space there and run again")
        self.service = f"no space left on {path}"
        self.reason = what
        self.path = path
        self.what = what

    def __reduce__(self):
        return (type(self), (self.path, self.what))


_DISK_FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded",
                    "not enough space on the disk")


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or a cause of it) is a write that found no space left."""
    for link in _chain(exc):
        if isinstance(link, DiskFull):
            return True
        if isinstance(link, OSError) and link.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return True
        if any(text in str(link).lower() for text in _DISK_FULL_TEXTS):
            return True
    return False
