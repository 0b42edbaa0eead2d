"""Occupancy histories and quality per window: a night whose analysed windows all failed quality
(a dead microphone) turns from 1 or 0 into NA when QC-failed windows are left out of effort (the
default), and stays 1 / 0 with `--qc include`; other exports keep every detection."""

from __future__ import annotations

import csv
import logging
from datetime import datetime, timezone

import pytest

from flows.cli.main import main
from flows.outputs.exports import ExportFilters, export
from tests.support.seed_catalog import ROBIN, Seed

NIGHT_1 = datetime(2024, 5, 14, 22, 0, tzinfo=timezone.utc)
NIGHT_2 = datetime(2024, 5, 15, 22, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("marsh-1", site_id="marsh")
    seed.deployment("wood-1", site_id="wood")
    seed.recording("marsh-1", NIGHT_1, 2, calls={0: [ROBIN]}, qc={0: "ok", 1: "ok"})
    seed.recording("wood-1", NIGHT_1, 2, qc={0: "ok", 1: "ok"})
    # Night 2: marsh's microphone is dead (a robin "heard" in its hiss), wood's is clipped by wind.
    seed.recording("marsh-1", NIGHT_2, 2, calls={1: [ROBIN]}, qc={0: "silent", 1: "silent"})
    seed.recording("wood-1", NIGHT_2, 2, qc={0: "clipped", 1: "dropout"})
    return root


def matrix(path) -> dict[str, list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return {r[0]: r[1:] for r in rows[1:]}


def test_a_night_that_failed_quality_is_not_surveyed(root, tmp_path, caplog):
    notes = logging.getLogger("dawnchorus.note")  # the CLI stops its propagation
    notes.addHandler(caplog.handler)
    try:
        summary = export("occupancy", str(root), tmp_path)
    finally:
        notes.removeHandler(caplog.handler)
    assert matrix(tmp_path / "y_Erithacus_rubecula.csv") == {"marsh": ["1", "NA"],
                                                             "wood": ["0", "NA"]}
    assert matrix(tmp_path / "effort.csv") == {"marsh": [repr(round(20 / 3600, 6)), "NA"],
                                               "wood": [repr(round(20 / 3600, 6)), "NA"]}
    assert summary["windows_qc_failed"] == 4
    assert "4 analysed windows failed quality" in caplog.text


def test_kept_with_qc_include(root, tmp_path):
    assert main(["export", "occupancy", "--results", str(root), "--out", str(tmp_path),
                 "--qc", "include"]) == 0
    assert matrix(tmp_path / "y_Erithacus_rubecula.csv") == {"marsh": ["1", "1"],
                                                             "wood": ["0", "0"]}
    assert matrix(tmp_path / "effort.csv")["marsh"] == [repr(round(20 / 3600, 6))] * 2


def test_other_exports_keep_every_detection(root, tmp_path):
    assert export("csv", str(root), tmp_path, ExportFilters(qc="exclude"))["detections"] == 2
