"""The whole pipeline with the NatureLM backend on a tiny random checkpoint of the published layout,
driven through the CLI exactly as a user would type it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.catalog import Catalog, CatalogReader
from flows.cli.main import main
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]


def test_cli_runs_naturelm_end_to_end(tmp_path, capsys):
    assert main(["dev", "tiny-naturelm", "--out", str(tmp_path / "tiny")]) == 0
    weights, llama = tmp_path / "tiny" / "naturelm", tmp_path / "tiny" / "llama"
    assert (weights / "model.safetensors").exists() and (weights / "config.json").exists()
    capsys.readouterr()

    make_deployment(tmp_path / "source", "dep-n",
                    [datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)], 25.0, 32_000,
                    events={0: [(3.0, 4.0, 2500.0)]})
    code = main(["run", "--source", str(tmp_path / "source"), "--results", str(tmp_path / "res"),
                 "--model", "naturelm", "--weights", str(weights), "--llama", str(llama),
                 "--batch-size", "2", "--option", "max_new_tokens=4"])
    out = capsys.readouterr().out
    assert code == 0 and any(line.startswith("completed: 3 windows committed")
                             for line in out.splitlines()), out

    with CatalogReader(tmp_path / "res") as catalog:
        preds = catalog.query("select * from predictions order by window_index, task").to_pylist()
        windows = catalog.query("select * from windows order by window_index").to_pylist()
    assert [w["window_index"] for w in windows] == [0, 1, 2]
    assert all(w["status"] == "ok" for w in windows)
    assert {p["task"] for p in preds} == {"detect", "classify"}
    for index in (0, 1, 2):
        tasks = sorted(p["task"] for p in preds if p["window_index"] == index)
        assert tasks == ["classify", "detect"]
    assert all(p["model_id"].startswith("naturelm") for p in preds)
    assert all(0.0 <= p["score"] <= 1.0 for p in preds)
    assert all(p["answer_text"] is not None for p in preds)
