"""Cascades: a later model answers only the windows the first passed, over the first model's
proposals ("BirdNET proposes, NatureLM verifies"), under its own fingerprint, exactly once."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
from pydantic import ValidationError

from connectors.catalog import CatalogReader
from flows.pipeline.settings import CascadeStage, RunSettings, cascade_fingerprint, config_fingerprint
from naturelm_core.naturelm.backend import WINDOW_SAMPLES, NatureLMBackend
from naturelm_core.naturelm.tiny import TINY_SPECIES, build_tiny_checkpoint
from tests.support.synth_audio import make_deployment

START = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


def test_per_window_candidates_equal_a_backend_built_with_that_list(tiny):
    weights, llama = (str(p) for p in tiny)
    t = np.arange(WINDOW_SAMPLES) / 16_000
    audio = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in (440.0, 1200.0, 3000.0, 800.0)]).astype(np.float32)
    valid = np.array([WINDOW_SAMPLES, WINDOW_SAMPLES, WINDOW_SAMPLES // 2, WINDOW_SAMPLES])
    first, second = list(TINY_SPECIES[:3]), list(TINY_SPECIES[2:5])
    lists = [first, second, first, []]  # the last window has no proposals: no answer
    backend = NatureLMBackend(weights=weights, llama=llama)
    got = backend.classify_candidates(audio, valid, lists)
    assert [p.item for p in got] == [0, 1, 2]
    for names, items in ((first, [0, 2]), (second, [1])):
        fixed = NatureLMBackend(weights=weights, llama=llama, candidates=names)
        want = fixed.predict(audio[items], valid[items], ["classify"])
        mine = [p for p in got if p.item in items]
        assert [(p.answer_text, p.prompt_id) for p in mine] == [(w.answer_text, w.prompt_id) for w in want]
        assert [p.score for p in mine] == pytest.approx([w.score for w in want], abs=1e-6)
        assert all(p.answer_text in names for p in mine)


def test_a_stage_has_its_own_fingerprint_and_leaves_the_first_stages_alone(tmp_path):
    stage = CascadeStage(model="naturelm", pass_task="detect", pass_threshold=0.3, candidates_top_k=3)
    plain = RunSettings(source="s", results="r", window_s=10.0)  # fingerprints take resolved settings
    chained = plain.model_copy(update={"cascade": (stage,)})
    assert config_fingerprint(plain, "m", {}) == config_fingerprint(chained, "m", {})
    fp = cascade_fingerprint(chained, stage, "up", "n", {})
    assert fp != cascade_fingerprint(chained, stage, "other-up", "n", {})
    assert fp != cascade_fingerprint(chained, stage.model_copy(update={"pass_threshold": 0.4}), "up", "n", {})
    assert fp != cascade_fingerprint(chained, stage.model_copy(update={"candidates_top_k": 5}), "up", "n", {})
    with pytest.raises(ValidationError, match="candidates_top_k is a candidate list for classify"):
        CascadeStage(model="naturelm", tasks=("detect",), candidates_top_k=3)
    with pytest.raises(ValidationError, match="expected one of"):
        CascadeStage(model="no-such-model")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server", "ray_local")
def test_birdnet_proposes_and_naturelm_verifies_only_the_windows_birdnet_passed(tmp_path, tiny, capsys):
    from flows.cli.main import main

    weights, llama = (str(p) for p in tiny)
    make_deployment(tmp_path / "src", "dep", [START, START.replace(hour=5)], 30.0, 48_000,
                    events={0: [(2.0, 3.0, 3000.0), (21.0, 2.0, 6000.0)], 1: [(12.0, 4.0, 1500.0)]})
    base = ["run", "--source", str(tmp_path / "src"), "--results", str(tmp_path / "res"), "--window-s", "10"]
    assert main(base) == 0  # BirdNET alone first: the cascade is a second pass over its rows
    with CatalogReader(tmp_path / "res") as reader:
        [first_fp] = reader.fingerprints
        detect = {(r["recording_id"], r["window_index"]): r["score"] for r in reader.query(
            "select recording_id, window_index, score from predictions where task = 'detect'").to_pylist()}
        proposals = {}
        for r in reader.query("select recording_id, window_index, label from predictions "
                              "where task = 'classify' order by rank").to_pylist():
            proposals.setdefault((r["recording_id"], r["window_index"]), []).append(r["label"])
    scores = sorted(set(detect.values()))
    assert len(detect) == 6 and len(scores) >= 2
    threshold = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    passed = {k for k, s in detect.items() if s >= threshold}
    assert 0 < len(passed) < 6

    stage = {"model": "naturelm", "model_options": {"weights": weights, "llama": llama, "max_new_tokens": 4},
             "tasks": ["classify"], "pass_task": "detect", "pass_threshold": threshold, "candidates_top_k": 3}
    cascade = [*base, "--cascade", json.dumps([stage]), "--batch-size", "2"]
    capsys.readouterr()
    assert main(cascade) == 0
    with CatalogReader(tmp_path / "res") as reader:
        second_fp = [f for f in reader.fingerprints if f != first_fp]
        rows = reader.query("select * from windows where config_fingerprint = ?", second_fp).to_pylist()
        answers = reader.query("select * from predictions where config_fingerprint = ?", second_fp).to_pylist()
        first_rows = reader.query("select count(*) as n from predictions where config_fingerprint = ?",
                                  [first_fp]).to_pylist()
    assert len(second_fp) == 1
    assert {(w["recording_id"], w["window_index"]) for w in rows} == passed
    assert all(w["status"] == "ok" for w in rows)
    assert {(a["recording_id"], a["window_index"]) for a in answers} == passed
    for a in answers:  # NatureLM chose among BirdNET's own top 3 for that window
        assert a["task"] == "classify" and a["model_id"].startswith("naturelm-audio@")
        assert a["answer_text"] in proposals[(a["recording_id"], a["window_index"])]

    # Once more: neither stage has anything left to do, and nothing is written twice.
    assert main(cascade) == 0
    with CatalogReader(tmp_path / "res") as reader:
        again = reader.query("select config_fingerprint, count(*) as n from predictions group by all").to_pylist()
        runs = reader.query("select counts from runs order by started_at").to_pylist()
    assert {r["config_fingerprint"]: r["n"] for r in again} == {first_fp: first_rows[0]["n"],
                                                                second_fp[0]: len(answers)}
    [last_stage] = json.loads(runs[-1]["counts"])["cascade"]
    assert last_stage["windows_planned"] == 0 and last_stage["config_fingerprint"] == second_fp[0]
