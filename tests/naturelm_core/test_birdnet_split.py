"""BirdNET's split runtime (numpy front end + the cut CNN) against LiteRT's whole model.

Fidelity (issue 24): on every chunk, max |logit difference| <= 1e-4, the same top-5 and the same
labels at score >= 0.1 -- on synthetic audio always, on the real clips of DAWNCHORUS_TEST_CLIPS
(a folder with manifest.csv) when set. Embeddings come out of the same engine call as the logits.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from naturelm_core.backend import BackendError
from naturelm_core.birdnet.backend import CHUNK_SAMPLES, BirdNETBackend
from naturelm_core.birdnet.frontend import CUT_TENSOR, read_frontend
from naturelm_core.birdnet.split import CNN_ENGINES, cut_cnn, openvino_available

RATE_HZ = 48_000
MAX_LOGIT_DIFF = 1e-4
FLOOR = 0.1
ENGINES = [e for e in CNN_ENGINES if e != "openvino" or openvino_available()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("birdnet-cache")


@pytest.fixture(scope="module")
def reference() -> BirdNETBackend:
    return BirdNETBackend(runtime="litert", num_threads=1)


@pytest.fixture(scope="module", params=ENGINES)
def split(request, cache) -> BirdNETBackend:
    return BirdNETBackend(runtime="split", cnn_engine=request.param, num_threads=1, cache_dir=str(cache))


def synthetic_chunks() -> np.ndarray:
    """(12, 144000) float32: sweeps, whistles, clicks, noise at several levels, near-silence,
    a DC offset and a clipped chunk -- whatever moves the normalisation and the spectrogram."""
    rng = np.random.default_rng(20)
    t_s = np.arange(CHUNK_SAMPLES) / RATE_HZ
    rows = []
    for i, f0 in enumerate((1500, 2500, 4000, 6000, 8000)):
        sweep = np.sin(2 * np.pi * (f0 * t_s - 300 * (i + 1) * t_s**2)) * ((t_s % 0.6) < 0.35)
        rows.append(0.4 * sweep + 0.01 * (i + 1) * rng.standard_normal(CHUNK_SAMPLES))
    rows.append(0.2 * rng.standard_normal(CHUNK_SAMPLES))  # loud noise
    rows.append(1e-4 * rng.standard_normal(CHUNK_SAMPLES))  # near-silence
    clicks = np.zeros(CHUNK_SAMPLES)
    clicks[:: RATE_HZ // 7] = 0.9
    rows.append(clicks + 0.001 * rng.standard_normal(CHUNK_SAMPLES))
    rows.append(0.3 + 0.05 * np.sin(2 * np.pi * 3000 * t_s))  # DC offset
    rows.append(np.clip(3 * np.sin(2 * np.pi * 900 * t_s * (1 + t_s)), -1, 1))  # clipped
    warble = np.sin(2 * np.pi * (3000 * t_s + 40 * np.sin(2 * np.pi * 12 * t_s)))
    rows.append(0.3 * warble * (np.sin(2 * np.pi * 1.5 * t_s) > 0))
    rows.append(np.zeros(CHUNK_SAMPLES) + 0.02 * rng.standard_normal(CHUNK_SAMPLES) * (t_s > 2.0))
    return np.stack(rows).astype(np.float32)


def assert_same_answers(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Logits (N, C) of the split model against the whole model's, chunk by chunk."""
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64)).max(axis=1)
    assert diff.max() <= MAX_LOGIT_DIFF, f"{what}: max |logit diff| {diff.max():.2e} (chunk {diff.argmax()})"
    for row in range(len(want)):
        top_got = np.argsort(-got[row], kind="stable")[:5]
        top_want = np.argsort(-want[row], kind="stable")[:5]
        assert top_got.tolist() == top_want.tolist(), f"{what}: chunk {row} top-5 differs"
        floor_logit = np.log(FLOOR / (1 - FLOOR))
        above_got = set(np.flatnonzero(got[row] >= floor_logit))
        above_want = set(np.flatnonzero(want[row] >= floor_logit))
        assert above_got == above_want, f"{what}: chunk {row} labels >= {FLOOR} differ"


def test_split_answers_equal_the_whole_model_on_synthetic_audio(split, reference):
    chunks = synthetic_chunks()
    want, no_embedding = reference.chunk_outputs(chunks)
    got, embedding = split.chunk_outputs(chunks)
    assert no_embedding is None and embedding.shape == (len(chunks), 1024)
    assert_same_answers(got, want, f"split/{split.cnn_engine}")


def test_front_end_equals_the_models_spectrogram_tensor(reference):
    """Oracle: the whole model with every intermediate tensor kept, read at the cut tensor."""
    from ai_edge_litert.interpreter import Interpreter

    chunks = synthetic_chunks()
    oracle = Interpreter(model_path=str(reference.model_path), num_threads=1, experimental_preserve_all_tensors=True)
    (cut,) = [d["index"] for d in oracle.get_tensor_details() if d["name"] == CUT_TENSOR]
    oracle.resize_tensor_input(0, list(chunks.shape))
    oracle.allocate_tensors()
    oracle.set_tensor(0, chunks)
    oracle.invoke()
    want = oracle.get_tensor(cut)  # (N, 96, 511, 2)
    got = read_frontend(reference._interpreter)(chunks)
    assert got.shape == want.shape == (len(chunks), 96, 511, 2) and got.dtype == np.float32
    # Relative to each chunk's scale: the only differences are float32 summation orders.
    scale = np.abs(want).reshape(len(chunks), -1).max(axis=1)
    rel = np.abs(got - want).reshape(len(chunks), -1).max(axis=1) / scale
    assert rel.max() < 1e-4, rel


def test_constants_are_read_from_the_model_file(reference, tmp_path):
    """A model file whose spectrogram constants differ (another magnitude exponent and frame
    hop) is split with ITS constants: the split still equals that file's whole model."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(reference.model_path.read_bytes(), 0)
    graph = model.subgraphs[0]
    names = [t.name.decode() for t in graph.tensors]
    for name, value in (("model/MEL_SPEC1/truediv_1", np.float32(0.31)), ("model/MEL_SPEC2/truediv_1", np.float32(0.27))):
        buffer = model.buffers[graph.tensors[names.index(name)].buffer]
        buffer.data = np.frombuffer(value.tobytes(), np.uint8).copy()
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    changed = tmp_path / "changed.tflite"
    changed.write_bytes(builder.Output())
    whole = BirdNETBackend(runtime="litert", num_threads=1, model_path=str(changed))
    cut = BirdNETBackend(runtime="split", cnn_engine="litert", num_threads=1, model_path=str(changed),
                         cache_dir=str(tmp_path / "cache"))
    chunks = synthetic_chunks()[:4]
    want, _ = whole.chunk_outputs(chunks)
    assert np.abs(want - reference.chunk_outputs(chunks)[0]).max() > 1.0  # the change matters
    assert_same_answers(cut.chunk_outputs(chunks)[0], want, "changed model")


def test_windows_scores_and_predictions_match_the_reference(split, reference):
    chunks = synthetic_chunks()
    audio = chunks.reshape(3, -1)[:, : 10 * RATE_HZ]  # (3, 480000): chunks at 0, 3, 6, 7 s
    valid = np.array([10 * RATE_HZ, 7 * RATE_HZ, 2 * RATE_HZ])
    got, got_scored = split.window_scores(audio, valid)
    want, want_scored = reference.window_scores(audio, valid)
    assert got_scored.tolist() == want_scored.tolist()
    np.testing.assert_allclose(got, want, atol=MAX_LOGIT_DIFF / 4)  # sigmoid' <= 1/4
    strip = [(p.item, p.task, p.answer_text, p.rank) for p in split.predict(audio, valid, ["detect", "classify"])]
    assert strip == [(p.item, p.task, p.answer_text, p.rank) for p in reference.predict(audio, valid, ["detect", "classify"])]


# --- embeddings from the same pass ------------------------------------------------------------


def count_calls(backend: BirdNETBackend) -> dict[str, int]:
    calls = {"n": 0}
    for lane in backend._lanes:
        real = lane.run
        lane.run = lambda chunks, real=real: calls.__setitem__("n", calls["n"] + 1) or real(chunks)
    return calls


@pytest.mark.parametrize("runtime", ["split", "litert"])
def test_predict_and_embed_is_one_pass_equal_to_predict_then_embed(runtime, cache, reference):
    backend = BirdNETBackend(runtime=runtime, num_threads=1, chunk_batch_size=16, cache_dir=str(cache))
    chunks = synthetic_chunks()
    audio = chunks.reshape(3, -1)[:, : 10 * RATE_HZ]
    valid = np.array([10 * RATE_HZ, 4 * RATE_HZ, 0])  # 4 + 2 + 0 chunks: one engine call
    calls = count_calls(backend)
    predictions, embeddings = backend.predict_and_embed(audio, valid, ["detect", "classify"])
    assert calls["n"] == 1
    assert predictions == backend.predict(audio, valid, ["detect", "classify"])
    assert calls["n"] == 2
    np.testing.assert_array_equal(embeddings[:2], backend.embed(audio[:2], valid[:2]))
    assert embeddings.shape == (3, 1024) and np.isnan(embeddings[2]).all()
    # ... and equal to the old embedding path (the whole model, recovered from its logits).
    np.testing.assert_allclose(embeddings[:2], reference.embed(audio[:2], valid[:2]), atol=5e-5)


def test_embedding_is_the_models_pool_tensor(split):
    """Oracle: the whole model with every intermediate tensor kept, at GLOBAL_AVG_POOL."""
    from ai_edge_litert.interpreter import Interpreter

    chunks = synthetic_chunks()[:6]
    oracle = Interpreter(model_path=str(split.model_path), num_threads=1, experimental_preserve_all_tensors=True)
    (pool,) = [d["index"] for d in oracle.get_tensor_details() if d["name"] == "model/GLOBAL_AVG_POOL/Mean"]
    oracle.resize_tensor_input(0, list(chunks.shape))
    oracle.allocate_tensors()
    oracle.set_tensor(0, chunks)
    oracle.invoke()
    _, got = split.chunk_outputs(chunks)
    np.testing.assert_allclose(got, oracle.get_tensor(pool), atol=2e-5)


# --- load time: cut, cache, fingerprint --------------------------------------------------------


def test_cut_is_cached_by_model_digest_and_reused(split, cache):
    made = sorted((cache / "birdnet").glob("*.tflite"))
    assert [p.name.split("-")[0] for p in made] == [split._model_sha256]
    before = made[0].stat().st_mtime_ns
    again = cut_cnn(split.model_path, cache, split._model_sha256, (96, 511, 2))
    assert again == made[0] and again.stat().st_mtime_ns == before


def test_openvino_is_compiled_at_float32(cache):
    if not openvino_available():
        pytest.skip("openvino is not installed")
    backend = BirdNETBackend(runtime="split", cnn_engine="openvino", num_threads=1, cache_dir=str(cache))
    import openvino as ov

    compiled = backend._lanes[0].engine.request.get_compiled_model()
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def test_bad_runtime_options_are_refused():
    with pytest.raises(BackendError, match="runtime must be one of"):
        BirdNETBackend(runtime="tensorrt")
    with pytest.raises(BackendError, match="cnn_engine must be one of"):
        BirdNETBackend(cnn_engine="onnx")


# --- real recordings (opt in) ----------------------------------------------------------------

CLIPS_ENV = "DAWNCHORUS_TEST_CLIPS"


def real_chunks(folder: Path, limit: int = 160) -> np.ndarray:
    import soundfile as sf
    import soxr

    with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
        files = sorted({row["file"] for row in csv.DictReader(f)})
    chunks = []
    for name in files:
        samples, rate_hz = sf.read(folder / name, dtype="float32", always_2d=True)
        mono = samples.mean(axis=1)
        if rate_hz != RATE_HZ:
            mono = soxr.resample(mono, rate_hz, RATE_HZ)
        for start in range(0, max(1, len(mono) - CHUNK_SAMPLES + 1), CHUNK_SAMPLES):
            chunk = np.zeros(CHUNK_SAMPLES, np.float32)
            piece = mono[start : start + CHUNK_SAMPLES]
            chunk[: len(piece)] = piece
            chunks.append(chunk)
    # Spread over every file when there are more chunks than the limit.
    picks = np.linspace(0, len(chunks) - 1, min(limit, len(chunks))).round().astype(int)
    return np.stack([chunks[i] for i in sorted(set(picks))])


@pytest.mark.skipif(not os.environ.get(CLIPS_ENV), reason=f"set {CLIPS_ENV} to a folder of clips + manifest.csv")
def test_split_answers_equal_the_whole_model_on_real_recordings(split, reference):
    chunks = real_chunks(Path(os.environ[CLIPS_ENV]))
    for first in range(0, len(chunks), 16):
        batch = chunks[first : first + 16]
        assert_same_answers(split.chunk_outputs(batch)[0], reference.chunk_outputs(batch)[0],
                            f"real chunks {first}..{first + len(batch)}")
