"""Who watches a run in this process: the CLI's terminal registers its console here while it runs
a flow (`flows.cli.terminal.run_console`), and the pipeline reports its header and progress to it,
never importing the CLI. No watcher (a Prefect worker, a test): the pipeline only logs."""

from __future__ import annotations

from typing import Any, Protocol


class RunWatcher(Protocol):
    def header(self, **facts: Any) -> None: ...
    def on_commit(self, result: Any, unit: Any) -> None: ...
    def stop(self) -> None: ...


_current: RunWatcher | None = None


def current() -> RunWatcher | None:
    """The watcher of the run in this process, if any."""
    return _current


def set_current(watcher: RunWatcher | None) -> None:
    global _current
    _current = watcher
