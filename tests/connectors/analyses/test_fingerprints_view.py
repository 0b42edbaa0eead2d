"""The `fingerprints` view describes each fingerprint in words, and a unique prefix names one."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connectors.analyses import resolve_fingerprint
from connectors.catalog import Catalog, CatalogReader
from connectors.errors import ConfigError
from connectors.tables import RunRow
from tests.support.seed_catalog import Call, Seed

START = datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc)


def run(run_id: str, fingerprint: str, started: datetime, **parameters) -> RunRow:
    base = {"model": "birdnet", "window_s": 3.0, "hop_s": None, "tail": "pad",
            "channel_policy": "mean", "tasks": ["detect", "classify"], "model_options": {}}
    return RunRow(run_id=run_id, flow="nightly", started_at=started, finished_at=started,
                  status="completed", parameters=json.dumps({**base, **parameters}),
                  config_fingerprint=fingerprint, model_id="birdnet-v2.4@sha256:abc",
                  code_version="test", counts=None, host=None, pid=None, interrupted_at=None)


def test_each_fingerprint_is_described_and_the_newest_marked(tmp_path):
    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("d1")
    seed.recording("d1", START, 2, calls={0: [Call("Turdus merula", "Eurasian Blackbird", 0.9)]},
                   fingerprint="aaaa1111", run_id="r1", window_s=3.0)
    seed.recording("d1", START, 1, fingerprint="bbbb2222", run_id="r3", window_s=3.0)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with Catalog(root) as catalog:
        catalog.start_run(run("r1", "aaaa1111", t0))
        catalog.start_run(run("r2", "aaaa1111", t0 + timedelta(days=1)))
        catalog.start_run(run("r3", "bbbb2222", t0 + timedelta(days=2),
                              model_options={"min_conf": 0.25}))
    with CatalogReader(root) as reader:
        rows = {r["config_fingerprint"]: r for r in
                reader.query("select * from fingerprints").to_pylist()}
    a, b = rows["aaaa1111"], rows["bbbb2222"]
    assert a["description"] == 'birdnet, 3.0 s windows every 3.0 s, tasks ["detect","classify"]'
    assert b["description"].endswith(', options {"min_conf":0.25}')
    assert (a["runs"], a["windows"], b["runs"], b["windows"]) == (2, 2, 1, 1)
    assert a["first_run_at"] == t0 and a["last_run_at"] == t0 + timedelta(days=1)
    assert (a["newest"], b["newest"]) == (False, True)


def test_a_unique_prefix_names_a_fingerprint():
    known = ["aaaa1111", "aaab2222", "bbbb3333"]
    assert resolve_fingerprint(known, "bb", "query") == "bbbb3333"
    assert resolve_fingerprint(known, "aaab2222", "query") == "aaab2222"
    with pytest.raises(ConfigError, match="'aaa' matches several fingerprints.*aaaa1111, aaab2222"):
        resolve_fingerprint(known, "aaa", "query")
    with pytest.raises(ConfigError, match="'cc' is not in the catalog"):
        resolve_fingerprint(known, "cc", "query")
    with pytest.raises(ConfigError, match="choose one with --config-fingerprint"):
        resolve_fingerprint(known, None, "export", flag="--config-fingerprint")
