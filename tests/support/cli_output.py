"""What a `dawnchorus` subprocess wrote on stderr, as a user reads it."""

from __future__ import annotations

import re

#: Ray's own start-up logging (token authentication and the like), which Ray prints from the
#: driver before the run's log file takes over; not dawnchorus's to word or count.
RAY_START_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+\s+(INFO|WARNING) \S+\.py:\d+ -- ")
#: The driver's Ray core worker logging from C++ (e.g. Ray Data's actor-restart notice).
RAY_NATIVE_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [IWE] \d+ \d+\] \S+\.cc:\d+: ")


def stderr_lines(stderr: str) -> list[str]:
    """The non-empty lines of `stderr`, less Ray's own logging."""
    return [line for line in stderr.splitlines() if line.strip()
            and not RAY_START_LINE.match(line) and not RAY_NATIVE_LINE.match(line)]
