"""The whole pipeline with `--model salmonn` on the tiny random release set, driven through the CLI
as a user types it: `dawnchorus dev tiny-salmonn` prints the run options as its last line.

Real clips ($DAWNCHORUS_TEST_CLIPS: a 2-s AudioMoth soundscape and 14.8 s of read English speech,
the kind of sound SALMONN hears beside animals) when set, synthetic AudioMoth files otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.catalog import CatalogReader
from flows.cli.main import main
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]

REAL_CLIPS = ("audiomoth_gps.wav", "5703-47212-0000.ogg")  # 2 s -> 1 window; 14.84 s -> 2 windows


def _source(tmp_path: Path) -> Path:
    clips = os.environ.get("DAWNCHORUS_TEST_CLIPS")
    source = tmp_path / "source"
    if clips and all((Path(clips) / name).is_file() for name in REAL_CLIPS):
        (source / "clips").mkdir(parents=True)
        for name in REAL_CLIPS:
            shutil.copy(Path(clips) / name, source / "clips" / name)
    else:
        make_deployment(source, "dep-s", [datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)], 25.0, 32_000,
                        events={0: [(3.0, 4.0, 2500.0)]})
    return source


def test_cli_runs_salmonn_end_to_end(tmp_path, capsys):
    assert main(["dev", "tiny-salmonn", "--out", str(tmp_path / "tiny")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    options = shlex.split(last)
    assert options[:2] == ["--model", "salmonn"] and options.count("--model-option") == 4
    assert (tmp_path / "tiny" / "salmonn_tiny.pth").is_file()

    code = main(["run", "--source", str(_source(tmp_path)), "--results", str(tmp_path / "res"), *options,
                 "--batch-size", "2", "--option", "max_new_tokens=3", "--option", "num_beams=2"])
    out = capsys.readouterr().out
    assert code == 0 and any(line.startswith("completed: 3 windows committed") for line in out.splitlines()), out

    with CatalogReader(tmp_path / "res") as catalog:
        preds = catalog.query("select * from predictions order by recording_id, window_index, task").to_pylist()
        windows = catalog.query("select * from windows").to_pylist()
    assert len(windows) == 3 and all(w["status"] == "ok" for w in windows)
    per_window: dict = {}
    for p in preds:
        per_window.setdefault((p["recording_id"], p["window_index"]), []).append(p["task"])
    assert len(per_window) == 3 and all(sorted(t) == ["classify", "detect"] for t in per_window.values())
    assert all(p["model_id"].startswith("salmonn@sha256:") for p in preds)
    assert all(0.0 <= p["score"] <= 1.0 for p in preds)
    assert {p["prompt_id"] for p in preds} == {"salmonn-detect-v1", "salmonn-classify-common-v1"}
    assert all(p["answer_text"] in ("yes", "no") for p in preds if p["task"] == "detect")
