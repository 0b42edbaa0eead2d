"""BirdNET's runtime in the pipeline: the model stage gets answers and embeddings from one engine
call, the driver records the runtime it resolved, and the runtime never moves a fingerprint."""

from __future__ import annotations

import numpy as np
import pytest

from naturelm_core.birdnet.split import CNN_ENGINES
from tests.naturelm_core.test_birdnet_split import RATE_HZ, count_calls, synthetic_chunks


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("birdnet-cache")


def test_the_pipeline_model_stage_runs_the_model_once_with_embeddings(cache, monkeypatch):
    from flows.pipeline.stages import Predictor

    monkeypatch.setenv("DAWNCHORUS_CACHE_DIR", str(cache))
    predictor = Predictor("birdnet", {"num_threads": 1}, ("detect", "classify"), embeddings=True)
    calls = count_calls(predictor.backend)
    audio = synthetic_chunks().reshape(4, -1)[:, : 9 * RATE_HZ]  # (4, 432000): 3 chunks each
    batch = {
        "unit_id": np.array(["u"] * 4, dtype=object), "window_index": np.arange(4),
        "channel": np.zeros(4, np.int64), "duration_s": np.full(4, 9.0), "padded": np.zeros(4, bool),
        "status": np.array(["ok"] * 4, dtype=object), "error": np.array([None] * 4, dtype=object),
        "valid_samples": np.full(4, 9 * RATE_HZ), "audio": list(audio),
    }
    out = predictor(batch)
    assert calls["n"] == 1  # 12 chunks in one call of 16: the answers and the vectors
    vectors = np.stack([np.frombuffer(v, np.float32) for v in out["embedding"]])
    np.testing.assert_array_equal(vectors, predictor.backend.embed(audio, np.full(4, 9 * RATE_HZ)))
    assert list(out["status"]) == ["ok"] * 4


def test_runtime_is_provenance_not_fingerprint(cache):
    from flows.pipeline.settings import RunSettings, config_fingerprint, resolve_settings
    from naturelm_core.backend import describe_backend

    infos = {rt: describe_backend("birdnet", runtime=rt, num_threads=1, cache_dir=str(cache))
             for rt in ("split", "litert")}
    assert infos["litert"].runtime == {"runtime": "litert"}
    assert infos["split"].runtime["runtime"] == "split" and infos["split"].runtime["cnn_engine"] in CNN_ENGINES
    settings = resolve_settings(RunSettings(source="src", results="res", embeddings=True), 3.0)
    prints = {rt: config_fingerprint(settings, i.model_id, i.settings) for rt, i in infos.items()}
    assert prints["split"] == prints["litert"]


def test_a_run_records_the_runtime_it_resolved_and_keeps_the_fingerprint(cache, monkeypatch):
    """The driver resolves the runtime once: it lands in the run's parameters (model_options, so
    workers run the same engine) and the fingerprint equals the reference runtime's."""
    from flows.pipeline.run import identify_model
    from flows.pipeline.settings import RunSettings

    monkeypatch.setenv("DAWNCHORUS_CACHE_DIR", str(cache))
    base = {"source": "src", "results": "res", "model": "birdnet"}
    split_settings, _, split_print, _ = identify_model.fn(RunSettings(**base, model_options={"num_threads": 1}))
    litert_settings, _, litert_print, _ = identify_model.fn(
        RunSettings(**base, model_options={"num_threads": 1, "runtime": "litert"}))
    assert split_settings.model_options["runtime"] == "split"
    assert split_settings.model_options["cnn_engine"] in CNN_ENGINES
    assert '"runtime":"split"' in split_settings.public_json().replace(" ", "")
    assert litert_settings.model_options == {"num_threads": 1, "runtime": "litert"}
    assert split_print == litert_print
