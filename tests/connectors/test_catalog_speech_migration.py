"""A catalog written before the privacy gate (the 8ca6c13 catalog of test_catalog_from_8ca6c13)
gains `speech_marks` and `window_speech` when opened; its windows say "not checked", the report's
counts say so, and new windows committed with marks sit beside them."""

from __future__ import annotations

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import WINDOWS
from flows.outputs import privacy
from tests.connectors.test_catalog_from_8ca6c13 import WINDOW_S, WINDOWS_WRITTEN, build_old_catalog
from tests.support.catalog_rows import unit
from tests.support.speech_marks import mark


def test_an_old_catalog_gains_the_speech_marks_and_says_its_windows_were_not_checked(tmp_path):
    root = tmp_path / "results"
    recording_id, deployment_id = build_old_catalog(root)
    with CatalogReader(root) as reader:  # reading upgrades first
        checks = reader.query("select speech_check, count(*) as n from window_speech "
                              "group by all").to_pylist()
        counts = privacy.speech_report(reader, "run-0").to_pylist()
        assert privacy.gate_on(reader)  # unset: on
    assert checks == [{"speech_check": "not checked", "n": WINDOWS_WRITTEN}]
    assert [(c["windows"], c["checked"], c["not_checked"]) for c in counts] == [
        (WINDOWS_WRITTEN, 0, WINDOWS_WRITTEN)]
    with Catalog(root) as catalog:
        rec = catalog.known_recordings()[0]
        windows, predictions = unit(rec, WINDOWS_WRITTEN, 2, window_s=WINDOW_S)
        catalog.commit_units([(windows, predictions, [], [mark(windows[0]), mark(windows[1], False)])])
    with CatalogReader(root) as reader:
        checks = reader.query("select speech_check, count(*) as n from window_speech "
                              "group by all order by all").to_pylist()
        stored = WINDOWS.from_arrow(reader.query("select * from windows"))
    assert checks == [{"speech_check": "no speech", "n": 1},
                      {"speech_check": "not checked", "n": WINDOWS_WRITTEN},
                      {"speech_check": "speech", "n": 1}]
    assert len(stored) == WINDOWS_WRITTEN + 2
