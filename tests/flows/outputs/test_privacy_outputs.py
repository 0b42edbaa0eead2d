"""The privacy gate in what the catalog becomes (docs/privacy.md): a Camtrap DP package leaves
out the media (and so the observations) of a recording holding a window marked as human speech,
`similar` never returns a marked window, the report shows the reason instead of a clip and counts
marked windows per deployment; each says what it withheld, and turning the gate off brings every
one back. Detections and effort of marked windows stay as they are."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import EMBEDDINGS, WINDOWS, EmbeddingRow
from flows.outputs import privacy
from flows.outputs.exports import export
from flows.outputs.report_cards import _clip
from flows.outputs.similar import similar
from tests.support.seed_catalog import ROBIN, WINDOW_S, WREN, Seed
from tests.support.speech_marks import commit_marks, set_gate

START = datetime(2024, 5, 14, 21, 0, tzinfo=timezone.utc)
MARKED = 2


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """marsh-1: recording A (4 windows: a robin in window 1, speech in window 2) and B (2 windows,
    a wren in window 0); embeddings where A's window 2 is B's window 0's twin."""
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("marsh-1", site_id="marsh", timezone="Europe/London", latitude=51.5,
                    longitude=-0.1)
    a = seed.recording("marsh-1", START, 4, calls={1: [ROBIN], MARKED: [WREN]})
    b = seed.recording("marsh-1", START.replace(hour=23), 2, calls={0: [WREN]})
    with CatalogReader(root) as reader:
        windows = WINDOWS.from_arrow(reader.query("select * from windows order by recording_id, "
                                                  "window_index"))
    vectors = {(a, 0): [0.9, 0.1, 0.0], (a, 1): [0.0, 1.0, 0.0], (a, MARKED): [1.0, 0.0, 0.0],
               (a, 3): [0.0, 0.0, 1.0], (b, 0): [1.0, 0.0, 0.0], (b, 1): [0.0, 0.7, 0.7]}
    embeddings = [EmbeddingRow(
        run_id=w.run_id, model_id="birdnet@test", config_fingerprint=w.config_fingerprint,
        recording_id=w.recording_id, deployment_id=w.deployment_id, channel=w.channel,
        window_index=w.window_index, offset_s=w.offset_s, start_utc=w.start_utc, date=w.date,
        vector=np.asarray(vectors[(w.recording_id, w.window_index)], np.float32))
        for w in windows]
    with Catalog(root) as catalog:
        catalog.commit_embeddings_table(EMBEDDINGS.to_arrow(embeddings))
    commit_marks(root, [w for w in windows if w.recording_id != a or w.window_index != MARKED],
                 speech=False)
    commit_marks(root, [w for w in windows if w.recording_id == a and w.window_index == MARKED])
    return root, a, b


@pytest.fixture
def root(seeded):
    set_gate(seeded[0], on=True)
    return seeded


def test_camtrap_dp_leaves_out_the_recording_holding_speech_and_says_so(root, tmp_path):
    results, a, b = root
    summary = export("camtrap-dp", str(results), tmp_path / "on")
    assert summary["withheld_media"] == 1
    assert "1 recordings (Camtrap DP media, with their observations) withheld: human speech" \
        in summary["withheld"]
    media = (tmp_path / "on" / "media.csv").read_text()
    assert b in media and a not in media
    assert a not in (tmp_path / "on" / "observations.csv").read_text()
    set_gate(results, on=False)
    summary = export("camtrap-dp", str(results), tmp_path / "off")
    assert summary["withheld_media"] == 0 and summary["withheld"] is None
    assert a in (tmp_path / "off" / "media.csv").read_text()


def test_similar_never_returns_a_marked_window(root):
    results, a, b = root
    found = similar(str(results), window=f"{b}:0", top=3)
    keys = [(h["recording_id"], h["window_index"]) for h in found.hits]
    assert (a, MARKED) not in keys and keys[0] == (a, 0)
    assert found.withheld.startswith("1 windows withheld: human speech")
    set_gate(results, on=False)
    found = similar(str(results), window=f"{b}:0", top=3)
    assert [(h["recording_id"], h["window_index"]) for h in found.hits][0] == (a, MARKED)
    assert found.withheld is None


def test_a_report_clip_of_a_marked_window_is_the_reason_not_a_player(root, tmp_path):
    results, a, b = root
    rows = [{"recording_id": a, "uri": "/field/none.WAV", "offset_s": WINDOW_S * i,
             "end_offset_s": WINDOW_S * (i + 1), "channel": 0, "site_id": "marsh", "score": 0.9,
             "start_local": None} for i in (0, MARKED)]
    with CatalogReader(results) as reader:
        privacy.mark_withheld_clips(reader, rows)
    assert [r.get("withheld") is not None for r in rows] == [False, True]
    clip = _clip(rows[1], tmp_path, "x", None)
    assert clip.audio is None and clip.error.startswith("clip withheld: human speech")


def test_the_report_counts_marked_windows_per_deployment(root):
    results, a, b = root
    with CatalogReader(results) as reader:
        run_id = reader.query("select distinct run_id from windows").to_pylist()[0]["run_id"]
        table = privacy.speech_report(reader, run_id).to_pylist()
    assert table == [{"deployment_id": "marsh-1", "windows": 6, "checked": 6, "marked_speech": 1,
                      "not_checked": 0, "gate": "on: marked audio withheld"}]


def test_marked_windows_keep_their_detections_and_effort(root):
    results, a, b = root
    with CatalogReader(results) as reader:
        found = reader.query("select window_index from detections where recording_id = $r "
                             "order by window_index", {"r": a}).to_pylist()
        effort = reader.query("select sum(windows_ok) as n from effort").to_pylist()[0]["n"]
    assert [r["window_index"] for r in found] == [1, MARKED]
    assert effort == 6
