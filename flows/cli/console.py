"""What the terminal shows: user errors as one line, not as a library's traceback.

A configuration or input error (`ConfigError`, `BackendError`) raised inside a Prefect task or
flow is logged by Prefect's engine with its traceback. For these errors the traceback says nothing
the message does not, so the CLI strips it from Prefect's run loggers; the message stays, and the
CLI prints the error itself as its last line.
"""

from __future__ import annotations

import logging

PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class UserErrorWithoutTraceback(logging.Filter):
    """Drop the traceback of records about user errors (the message is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from connectors.errors import ConfigError, ServiceError
        from naturelm_core.backend import BackendError

        if record.exc_info and isinstance(record.exc_info[1], (ConfigError, BackendError, ServiceError)):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_user_error_tracebacks() -> None:
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, UserErrorWithoutTraceback) for f in logger.filters):
            logger.addFilter(UserErrorWithoutTraceback())
