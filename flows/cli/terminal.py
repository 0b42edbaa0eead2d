"""What `dawnchorus run` (and `make demo`) shows at the terminal, and where the logs go.

- A short header once the run knows its work: source, model, recordings new/changed, windows and
  audio hours planned.
- One progress bar, fed by `process_units(on_analysed=...)`: windows answered by the model /
  planned (it moves with every batch the model answers, not only when a commit lands), audio hours
  analysed per hour of wall-clock time, time left; after the analysis the bar's last column says
  which step runs (location filter, catalog maintenance, report).
- A final summary in ecological terms ("45 detections of 14 species at 2 sites, threshold 0.5;
  3 species hidden by the species filters"), the windows and failures, and where the report is.

Logs of Prefect, Ray and every library go to `<results>/logs/<run_id>.log` (with `-v` also to the
terminal, at DEBUG), so the terminal keeps the header, the bar and the summary; dawnchorus's own
warnings (a file that cannot be read, with its reason; a source without recordings) still reach
the terminal, one line each. Without `-v` the process's C-level stderr (file descriptor 2) goes to
the log file too for the length of the run: the C++ lines of Ray's core worker and of LiteRT
("Created TensorFlow Lite XNNPACK delegate for CPU") and anything a library writes to stderr
itself; Ray's workers do not forward their output to the driver (`log_to_driver=False`). Credential
scrubbing (`flows.outputs.redact`) works on records, so it applies to the file as to the terminal,
and user errors still end the CLI as one line (`flows.cli.console`, `flows.cli`).

The flow finds the console through `current()`: a run started by a Prefect worker has none, and
then nothing is printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from flows.pipeline import watchers
from flows.pipeline.ray_engine import quiet_ray_data_progress

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def current() -> "RunConsole | None":
    """The console of the CLI run in this process, if any."""
    return watchers.current()  # type: ignore[return-value]


def licence_line(licence: str) -> str:
    """The model weights' licence as the run header says it (a run's `runtime()` names it)."""
    if "-NC" in licence.upper():
        return f"{licence}: the model's weights are for non-commercial use only"
    return f"{licence} (the model's weights)"


class AudioRate(ProgressColumn):
    """Audio hours analysed per hour of wall-clock time (the real-time factor)."""

    def render(self, task: Any) -> Text:
        audio_s = task.fields.get("audio_s", 0.0)
        elapsed = task.elapsed or 0.0
        if elapsed <= 0 or audio_s <= 0:
            return Text("-- audio h/h")
        return Text(f"{audio_s / elapsed:.1f} audio h/h")


class RunConsole:
    """The header, the one progress bar and the summary of one run."""

    def __init__(self, file: Any = None):
        self.console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True)
        self.progress: Progress | None = None
        self.task: Any = None
        self.planned_windows = 0
        self.done_windows = 0  # committed
        self.analysed_windows = 0  # answered by the model (the bar)
        self.audio_s = 0.0
        self.started = time.monotonic()
        self.heard: str | None = None  # the summary's ecological line (`set_heard`)

    def header(self, *, source: str, results: str, model_id: str, recordings_new: int,
               recordings_changed: int, planned_windows: int, planned_audio_s: float,
               warnings: list[str] | None = None, filters: str | None = None,
               licence: str | None = None) -> None:
        self.console.print(f"dawnchorus run: {source} -> {results}")
        self.console.print(f"  model       {model_id}")
        if licence:
            self.console.print(f"  licence     {licence_line(licence)}", markup=False,
                               highlight=False)
        self.console.print(f"  recordings  {recordings_new} new, {recordings_changed} changed")
        self.console.print(f"  planned     {planned_windows} windows, "
                           f"{planned_audio_s / 3600:.2f} audio hours")
        if filters:
            self.console.print(f"  filters     {filters}")
        for line in warnings or ():
            self.console.print(f"  {line}")
        self.planned_windows = planned_windows
        self.progress = Progress(
            TextColumn("windows"), BarColumn(), MofNCompleteColumn(), AudioRate(),
            TimeRemainingColumn(), TextColumn("{task.fields[step]}"), console=self.console,
            transient=False, redirect_stderr=False, redirect_stdout=False,
        )
        self.task = self.progress.add_task("windows", total=planned_windows, audio_s=0.0,
                                           step="analysing")
        self.progress.start()

    def on_analysed(self, windows: int, audio_s: float) -> None:
        """`process_units`' callback: the model answered `windows` more windows."""
        self.analysed_windows += windows
        self.audio_s += audio_s
        if self.progress is not None:
            self.progress.update(self.task, completed=min(self.analysed_windows,
                                                          self.planned_windows),
                                 audio_s=self.audio_s)

    def on_commit(self, result: Any, unit: Any) -> None:
        """`process_units`' callback: one unit's windows are in the catalog."""
        self.done_windows += unit.expected_rows

    def step(self, what: str) -> None:
        """Name the step that runs now (after the analysis) in the bar's last column."""
        if self.progress is not None:
            self.progress.update(self.task, step=what)

    def warn(self, line: str) -> bool:
        """Print one warning line above the live bar; False when no bar is live."""
        if self.progress is None:
            return False
        self.progress.console.print(line, markup=False, highlight=False)
        return True

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.refresh()
            self.progress.stop()
            self.progress = None

    def set_heard(self, heard: dict[str, Any] | None) -> None:
        """What this run heard (`report_heard_counts` for the run), for the summary's first line."""
        self.heard = heard_line(heard) if heard is not None else None

    def summary(self, summary: dict[str, Any], log_file: Path | None) -> None:
        self.stop()
        elapsed = time.monotonic() - self.started
        if self.heard:
            self.console.print(self.heard, markup=False)
        self.console.print(
            f"{summary.get('status', '?')}: {summary.get('windows', 0)} windows committed "
            f"({summary.get('windows_failed', 0)} failed), {summary.get('predictions', 0)} "
            f"predictions in {elapsed:.0f} s")
        if summary.get("recordings_failed"):
            self.console.print(f"  {summary['recordings_failed']} recordings could not be read "
                               "(see the report's failures)")
        hidden = summary.get("hidden_by_filters") or []
        if hidden:
            self.console.print(f"  {len(hidden)} strong predictions (score >= 0.5) hidden by filters:")
            for row in hidden[:10]:
                self.console.print(
                    f"    {row['label']} ({row['scientific_name']}) at {row['deployment_id']}: "
                    f"best {row['best_score']:.3f} in {row['windows']} windows, {row['filter']} "
                    f"filter: {row['why']}")
            if len(hidden) > 10:
                self.console.print(f"    ... {len(hidden) - 10} more in the report")
            self.console.print("    (dawnchorus query --location-threshold 0 shows location-filtered "
                               "ones; dawnchorus thresholds changes the defaults)")
        if summary.get("report"):
            self.console.print(f"  report   {summary['report']}")
        if log_file is not None:
            self.console.print(f"  log      {log_file}")


def heard_line(heard: dict[str, Any]) -> str:
    """The summary's ecological line (the report's headline, `flows.outputs.report.heard_headline`)."""
    from flows.outputs.report import heard_headline

    return heard_headline(heard)


@contextlib.contextmanager
def run_console(results_root: Path, run_id: str, verbose: bool,
                file: Any = None) -> Iterator[tuple[RunConsole, Path]]:
    """Install the console and the log file for one CLI run; restore logging afterwards."""
    log_file = results_root / "logs" / f"{run_id}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    console = RunConsole(file=file)
    terminal_err, restore_fd = (sys.stderr, lambda: None) if verbose else _stderr_fd_to(log_file)
    restore = _logs_to_file(log_file, verbose, console, terminal_err)
    watchers.set_current(console)
    try:
        yield console, log_file
    finally:
        watchers.set_current(None)
        console.stop()
        restore()
        restore_fd()


def _stderr_fd_to(log_file: Path) -> tuple[Any, Any]:
    """Point file descriptor 2 at `log_file` (C and C++ libraries write there, past Python);
    (a stream on the terminal's stderr, a function undoing it). Ray's driver, LiteRT and every
    library loaded in this process then log to the file."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (an embedded interpreter): nothing to redirect
        return sys.stderr, lambda: None
    sys.stderr.flush()
    try:
        on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a capture (pytest) or a wrapper
        on_fd2 = False
    target = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(target, 2)
    os.close(target)
    # Our own lines go where stderr went before: the terminal, or whatever replaced sys.stderr.
    terminal = (os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
                if on_fd2 else sys.stderr)

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if terminal is not sys.stderr:
            terminal.close()

    return terminal, restore


#: Source folders of dawnchorus itself: its own warnings (a file that cannot be read, a source with
#: no recordings) are for the user and reach the terminal; libraries' warnings stay in the log.
_OWN_CODE = tuple(str(Path(__file__).resolve().parents[2] / package) for package in
                  ("flows", "connectors", "naturelm_core"))


class _OwnWarnings(logging.Handler):
    """dawnchorus's own warnings and errors, one line each: above the live progress bar, else on
    the terminal's stderr."""

    def __init__(self, console: RunConsole, stream: Any) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.run_console, self.stream = console, stream

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and str(record.pathname).startswith(_OWN_CODE)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = " ".join(self.format(record).splitlines()[:1])
            line = f"{record.levelname.lower()}: {message}"
            if not self.run_console.warn(line):
                self.stream.write(line + "\n")
                self.stream.flush()
        except Exception:
            self.handleError(record)


def _logs_to_file(log_file: Path, verbose: bool, console: RunConsole, terminal_err: Any):
    """Route every log record to `log_file` (and the terminal with -v); a function undoing it."""
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    # Ray Data installs its terminal handlers when it is imported: import it first, so that
    # the sweep below finds them.
    quiet_ray_data = quiet_ray_data_progress()
    saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []
    # Prefect and Ray give their loggers handlers of their own that write to the terminal; each
    # logger with a terminal handler gets the file instead (with -v, a terminal handler too).
    loggers = [root] + [lg for lg in logging.Logger.manager.loggerDict.values()
                        if isinstance(lg, logging.Logger)]
    terminal = None
    if verbose:
        from rich.logging import RichHandler

        terminal = RichHandler(console=Console(file=sys.stderr), show_path=False)
        terminal.setLevel(logging.DEBUG)
    for lg in loggers:
        streams = [h for h in lg.handlers if _writes_to_terminal(h)]
        if lg is not root and not streams:
            continue
        saved.append((lg, list(lg.handlers), lg.propagate, lg.level))
        for h in streams:
            lg.removeHandler(h)
        if lg is root:
            lg.addHandler(handler)
            lg.addHandler(terminal if terminal is not None else _OwnWarnings(console, terminal_err))
            lg.setLevel(logging.DEBUG if verbose else logging.INFO)
        else:
            lg.propagate = True  # to the root's file handler
    logging.captureWarnings(True)

    def restore() -> None:
        logging.captureWarnings(False)
        quiet_ray_data()
        for lg, handlers, propagate, level in saved:
            for h in list(lg.handlers):
                lg.removeHandler(h)
            for h in handlers:
                lg.addHandler(h)
            lg.propagate, lg.level = propagate, level
        handler.close()

    return restore


def _writes_to_terminal(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    if isinstance(handler, logging.FileHandler):
        return False
    if type(handler).__name__ in ("PrefectConsoleHandler", "RichHandler", "PlainRayHandler"):
        return True  # these write to whatever sys.stderr is when they emit
    return isinstance(handler, logging.StreamHandler) and stream in (sys.stderr, sys.stdout,
                                                                     sys.__stderr__, sys.__stdout__)


