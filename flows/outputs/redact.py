"""Credentials never reach a log line, an artifact, a report or the catalog.

- `public_settings` masks every secret-looking option (s3fs `key`, `secret`, `token`, botocore's
  `aws_*` names, passwords) in what a run stores about its settings.
- `install_log_redaction` rewrites every log record created in this process, whatever its logger
  (ours, Prefect's, botocore's signed-request lines at DEBUG), replacing the values of the AWS
  credential variables and of secret storage options with `***`.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterable

MASK = "***"
#: Option names whose values are secrets (s3fs, botocore, fsspec, database URLs).
SECRET_NAME = re.compile(r"(^key$|secret|token|password|passwd|credential|access_key)", re.I)
#: Environment variables whose values are secrets.
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")


def mask_secrets(value: Any) -> Any:
    """A copy of a nested options structure with every secret-named value masked."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and SECRET_NAME.search(k) and v is not None
                    else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_secrets(v) for v in value)
    return value


def secret_values(options: Any = None) -> set[str]:
    """The secret strings to scrub: credential variables plus secret-named option values."""
    found = {os.environ[name] for name in SECRET_ENV if os.environ.get(name)}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and SECRET_NAME.search(k) and isinstance(v, str) and v:
                    found.add(v)
                else:
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(options)
    return {s for s in found if len(s) >= 4}  # never mask a trivial string everywhere


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


_installed: set[str] = set()


def install_log_redaction(options: Any = None) -> None:
    """Scrub the current secrets from every log record made from now on in this process."""
    new = secret_values(options) - _installed
    if not new:
        return
    first = not _installed
    _installed.update(new)
    if not first:
        return  # the factory below reads `_installed`, so the new values already apply
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record stays as it is; logging reports it
            return record
        clean = scrub(message, _installed)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(redacting_factory)
