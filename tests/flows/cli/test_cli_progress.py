"""What `dawnchorus run` prints: a header, one progress bar that reaches planned = done, and a
summary naming the report; Prefect's, Ray's and the libraries' logs go to the results folder's
log file, not the terminal."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from flows.cli.main import main
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]


def test_header_one_bar_to_the_end_and_the_summary(tmp_path, capsys):
    source, results = tmp_path / "source", tmp_path / "results"
    make_deployment(source, "dep-a", [datetime(2024, 5, 1, 4, tzinfo=timezone.utc)], 45.0, 16_000,
                    events={0: [(12.0, 3.0, 2000.0)]})
    code = main(["run", "--source", str(source), "--results", str(results), "--model",
                 "placeholder", "--windows-per-unit", "2"])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert lines[0] == f"dawnchorus run: {source} -> {results}"
    assert any(re.fullmatch(r"\s+recordings\s+1 new, 0 changed", ln) for ln in lines), out
    assert any(re.fullmatch(r"\s+planned\s+5 windows, 0\.01 audio hours", ln) for ln in lines), out
    bars = [ln for ln in lines if ln.startswith("windows")]
    assert len(bars) == 1, out  # one bar, drawn once at its end when not on a terminal
    assert re.search(r"\b5/5\b", bars[0]) and "audio h/h" in bars[0], bars[0]
    assert any(ln.startswith("completed: 5 windows committed (0 failed)") for ln in lines), out
    report = next(ln.split()[-1] for ln in lines if ln.strip().startswith("report"))
    assert report.endswith("index.html") and (results / "reports").exists()
    log_files = list((results / "logs").glob("*.log"))
    assert len(log_files) == 1
    log_text = log_files[0].read_text(encoding="utf-8")
    assert "prefect" in log_text and "committed" in log_text
    assert "prefect" not in err.lower() and "INFO" not in err, err
