"""Signals end a run cleanly: SIGTERM and SIGINT stop it within seconds, with one line.

`install()` (the CLI, from the main thread, before Ray starts) makes the first SIGTERM or SIGINT
raise `Interrupted` wherever the run is: the unit transaction in flight rolls back, units that
had finished are committed (`flows.pipeline.ray_engine.process_units`), the run is recorded `interrupted`
(`flows.pipeline.run`), and the CLI prints one line and exits 128 + the signal (143, 130). A second
signal of the same kind ends the process at once (the default action). A library that turns the
exception into its own (DuckDB's "Query interrupted") changes nothing: `received()` says what
happened. Nothing of the run's local Ray stays behind (`flows.pipeline.reaper`).
"""

from __future__ import annotations

import signal
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)

_received: int | None = None


class Interrupted(BaseException):
    """The run was asked to stop by a signal (a BaseException, as KeyboardInterrupt is: no
    `except Exception` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    def __reduce__(self):
        return (type(self), (self.signum,))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def received() -> int | None:
    """The signal that interrupted this process's run, if one did."""
    return _received


def _handler(signum: int, frame: Any) -> None:
    global _received
    if _received is None:
        _received = signum
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGTERM and SIGINT as described above (main thread only, as Python requires)."""
    global _received
    _received = None
    for signum in HANDLED:
        signal.signal(signum, _handler)


def name(signum: int) -> str:
    return signal.Signals(signum).name
