"""Real recordings through the whole flow (DAWNCHORUS_TEST_CLIPS; CI points it at the shared clips).

The labelled bird clips must get their species as top-1 at least as often as BirdNET run directly
on each whole file (decoded at once, resampled, cut into consecutive 3-s chunks).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from connectors.catalog import Catalog, CatalogReader
from flows.pipeline.prefect_flows import nightly
from flows.pipeline.settings import RunSettings
from naturelm_core.birdnet.backend import BirdNETBackend
from naturelm_core.labels import split_birdnet_label

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server", "ray_local")]


def bird_clips(clips_dir: Path, known: set[str]) -> dict[str, set[str]]:
    """file name -> labelled scientific names, for bird clips labelled with BirdNET species."""
    with open(clips_dir / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for row in rows:
        targets = {n.strip() for n in row["label_scientific_name"].split(";")} & known
        if row["taxon_group"] == "bird" and targets:
            out[row["file"]] = targets
    return out


def direct_top1(backend: BirdNETBackend, path: Path) -> str | None:
    """BirdNET on the whole file at once: the reference behaviour we must match or beat."""
    samples, rate_hz = sf.read(path, dtype="float32", always_2d=True)
    mono = soxr.resample(samples.mean(axis=1), rate_hz, backend.sample_rate_hz).astype(np.float32)
    predictions = backend.predict(mono[None, :], np.array([mono.shape[0]]), ["classify"])
    best = [p for p in predictions if p.rank == 1]
    return best[0].scientific_name if best else None


def test_pipeline_top1_matches_or_beats_direct_birdnet(clips_dir, tmp_path):
    backend = BirdNETBackend()
    known = {split_birdnet_label(label).scientific_name for label in backend.labels}
    clips = bird_clips(clips_dir, known)
    if not clips:
        pytest.skip(f"no bird clip in {clips_dir} is labelled with a BirdNET species")
    source = tmp_path / "source" / "clips"
    source.mkdir(parents=True)
    for name in clips:
        shutil.copy(clips_dir / name, source / name)

    summary = nightly(RunSettings(source=str(tmp_path / "source"), results=str(tmp_path / "res"),
                                  model="birdnet", tasks=("classify",)))
    assert summary["status"] == "completed" and summary["recordings_failed"] == 0

    with CatalogReader(tmp_path / "res") as catalog:
        top = catalog.query("""
            select r.object_key, arg_max(p.scientific_name, p.score) as species
            from predictions p join recordings r using (recording_id)
            where p.task = 'classify' and p.rank = 1
            group by r.object_key""").to_pylist()
    pipeline = {row["object_key"].split("/", 1)[1]: row["species"] for row in top}
    pipeline_hits = sum(pipeline.get(name) in targets for name, targets in clips.items())
    direct_hits = sum(direct_top1(backend, clips_dir / name) in targets
                      for name, targets in clips.items())
    detail = {name: (sorted(t), pipeline.get(name)) for name, t in clips.items()}
    assert pipeline_hits >= direct_hits, detail
    assert pipeline_hits >= 1, detail
