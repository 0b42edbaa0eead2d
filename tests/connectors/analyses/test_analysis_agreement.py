"""agreement: two fingerprints compared on the windows both analysed (same recording, channel,
offset and length), each at its own threshold; windows only one analysed do not count."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.errors import ConfigError
from tests.support.seed_catalog import ROBIN, WREN, Call, Seed, analysis, assert_unique


def test_agreement_per_species_on_shared_windows(tmp_path):
    seed = Seed(tmp_path)
    seed.deployment("d")
    start = datetime(2024, 6, 1, 4, tzinfo=timezone.utc)
    seed.recording("d", start, 4, fingerprint="birdnet", calls={
        0: [ROBIN], 1: [ROBIN, WREN], 2: [Call(WREN.scientific_name, WREN.label, 0.3)], 3: [ROBIN]})
    # NatureLM analysed windows 0-2 only (window 3 failed): robin in 0, wren in 1 and 2.
    seed.recording("d", start, 4, fingerprint="naturelm", status={3: "failed"}, calls={
        0: [ROBIN], 1: [WREN], 2: [Call(WREN.scientific_name, WREN.label, 0.6)]})
    rows = analysis(tmp_path, "agreement", fingerprint_a="birdnet", fingerprint_b="naturelm",
                    threshold_a=0.5, threshold_b=0.5)
    assert_unique(rows, "species")
    got = {r["species"]: r for r in rows}
    robin, wren = got["Erithacus rubecula"], got["Troglodytes troglodytes"]
    assert (robin["windows_both"], robin["windows_a_only"], robin["windows_b_only"]) == (1, 1, 0)
    # birdnet's 0.3 wren in window 2 is below threshold_a; naturelm's 0.6 passes threshold_b.
    assert (wren["windows_both"], wren["windows_a_only"], wren["windows_b_only"]) == (1, 0, 1)
    assert robin["shared_windows"] == 3
    assert robin["jaccard"] == pytest.approx(0.5)
    lenient = analysis(tmp_path, "agreement", fingerprint_a="birdnet", fingerprint_b="naturelm",
                       threshold_a=0.25)
    wren = next(r for r in lenient if r["species"] == "Troglodytes troglodytes")
    assert (wren["windows_both"], wren["windows_b_only"]) == (2, 0)
    with pytest.raises(ConfigError, match="fingerprint_b is required"):
        analysis(tmp_path, "agreement", fingerprint_a="birdnet")
