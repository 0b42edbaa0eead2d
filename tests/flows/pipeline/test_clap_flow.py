"""The whole pipeline with the clap backend (tiny MS-CLAP 2023 release), driven through the CLI."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from connectors.catalog import CatalogReader
from flows.cli.main import main
from naturelm_core.clap.tiny import build_tiny_msclap
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]

LABELS = ["Eurasian Wren", "Tawny Owl", "Common Chiffchaff"]


def test_cli_runs_msclap_zero_shot_end_to_end_on_seven_second_windows(tmp_path, capsys):
    weights, text_dir, config = build_tiny_msclap(tmp_path / "tiny")
    make_deployment(tmp_path / "source", "dep-c", [datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)], 17.5, 48_000,
                    events={0: [(2.0, 3.0, 3000.0)]})
    code = main([
        "run", "--source", str(tmp_path / "source"), "--results", str(tmp_path / "res"),
        "--model", "clap", "--weights", str(weights), "--window-s", "7", "--batch-size", "2",
        "--option", f"text_model={text_dir}", "--option", f"model_config={config}",
        "--option", f"labels={json.dumps(LABELS)}", "--option", "top_k=2",
    ])  # fmt: skip
    out = capsys.readouterr().out  # the terminal summary (flows/cli/terminal.py)
    assert code == 0 and any(line.startswith("completed: 3 windows committed")
                             for line in out.splitlines()), out
    with CatalogReader(tmp_path / "res") as catalog:
        preds = catalog.query("select * from predictions order by window_index, task, rank").to_pylist()
        windows = catalog.query("select * from windows order by window_index").to_pylist()
    # 17.5 s in 7-s windows: 0, 7 and a padded 14 s tail; each answered from its own audio.
    assert [(w["window_index"], w["status"], w["padded"]) for w in windows] == [(0, "ok", False), (1, "ok", False), (2, "ok", True)]
    for index in (0, 1, 2):
        mine = [p for p in preds if p["window_index"] == index]
        assert [p["task"] for p in mine] == ["classify", "classify", "detect"]
        assert {p["label"] for p in mine if p["task"] == "classify"} <= set(LABELS)
    assert all(p["model_id"].startswith("clap-msclap-2023@sha256:") for p in preds)
    assert all(0.0 <= p["score"] <= 1.0 for p in preds)
