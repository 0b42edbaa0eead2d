"""What the terminal shows: user errors as one line, not as a library's traceback.

A configuration or input error (`ConfigError`, `BackendError`) raised inside a Prefect task or
flow is logged by Prefect's engine with its traceback. For these errors the traceback says nothing
the message does not, so the CLI strips it from Prefect's run loggers; the message stays, and the
CLI prints the error itself as its last line.
"""

from __future__ import annotations

import logging

PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def user_error(exc: BaseException) -> BaseException | None:
    """The user error behind `exc`, whichever layer raised it, or None for a bug.

    User errors: bad configuration or metadata (`ConfigError`), a bad input file (`InputError`),
    a model that cannot be used as asked (`BackendError`), settings that do not validate
    (pydantic's `ValidationError`). Looked for in `exc` and in what it was explicitly raised from
    (`raise ... from`: a layer that wraps it), never deeper than a few links; Ray's task errors
    are instances of the error they carry.
    """
    from pydantic import ValidationError

    from connectors.errors import ConfigError, InputError
    from naturelm_core.backend import BackendError

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, (ConfigError, InputError, BackendError, ValidationError)):
            return seen
        seen = seen.__cause__
    return None


def one_line(exc: BaseException) -> str:
    """A user error as one readable line (pydantic lists each bad field as `field: reason`)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
    return " ".join(str(exc).split())


class UserErrorWithoutTraceback(logging.Filter):
    """Drop the traceback of records about user errors (the message is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from connectors.errors import ServiceError

        error = record.exc_info[1] if record.exc_info else None
        if error is not None and (user_error(error) or isinstance(error, ServiceError)):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_user_error_tracebacks() -> None:
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, UserErrorWithoutTraceback) for f in logger.filters):
            logger.addFilter(UserErrorWithoutTraceback())
