"""`--embeddings`: one vector per analysed window, committed in the unit's transaction.

Stage functions on one batch (no Ray): the vectors are the backend's own for those windows, a
failed window has none, a vector of the wrong width or a non-finite one never reaches the catalog
(and takes its unit's windows with it), and the fingerprint changes only when embeddings are asked
for. One end-to-end run through the CLI: the table has one row per analysed window, and a second
run adds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from connectors.catalog import Catalog, CatalogReader
from connectors.tables import replace
from flows.pipeline.discover import discover, sync_deployments, sync_recordings
from flows.pipeline.plan import plan_units
from flows.pipeline.settings import RunSettings, config_fingerprint
from flows.pipeline.stages import CommitContext, DecodeOptions, Predictor, decode_unit, unit_embeddings, unit_rows
from naturelm_core.backend import BACKENDS, describe_backend
from naturelm_core.placeholder import PlaceholderBackend
from tests.support.synth_audio import audiomoth_name, make_deployment, noise, place, tone, truncate_wav, write_wav

RATE_HZ = 16_000
START = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)
TASKS = ("detect", "classify")


def as_batch(rows):
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0] if k != "audio"}
    batch["audio"] = np.stack([r["audio"] for r in rows])  # (B, S)
    return batch


def as_rows(batch):
    return [{k: batch[k][i] for k in batch} for i in range(len(batch["unit_id"]))]


def planned(source, results, need_embeddings=False):
    found = discover(str(source), {}, None)
    with Catalog(results) as catalog:
        sync_deployments(catalog, found, "run-1")
        sync = sync_recordings(catalog, str(source), {}, found, "run-1")
        return plan_units(catalog, sync.current_ids, fingerprint="fp", window_s=10.0, hop_s=10.0,
                          tail="pad", channel_policy="mean", windows_per_unit=30,
                          need_embeddings=need_embeddings)


def processed(units, source, backend="placeholder", dim=32):
    options = DecodeOptions(str(source), {}, 10.0, RATE_HZ, "mean")
    predictor = Predictor(backend, {"sample_rate_hz": RATE_HZ}, TASKS, embeddings=True)
    ctx = CommitContext("run-1", "fp", "model@x", 10.0, embedding_dim=dim)
    out = []
    for unit in units:
        decoded = decode_unit(unit.as_item(), options)
        rows = as_rows(predictor(as_batch(decoded)))
        out.append((decoded, *unit_rows(unit, rows, ctx), unit_embeddings(unit, rows, ctx)))
    return out


def test_one_vector_per_analysed_window_equal_to_the_backends_own(tmp_path):
    audio = place(noise(35.0, RATE_HZ, -30), tone(1500.0, 2.0, RATE_HZ), 12.0, RATE_HZ)
    folder = tmp_path / "src" / "dep"
    folder.mkdir(parents=True)
    path = write_wav(folder / audiomoth_name(START), audio, RATE_HZ)
    truncate_wav(path, keep_fraction=0.5)  # 17.5 s of the promised 35: windows 2 and 3 are empty
    [(decoded, windows, predictions, vectors)] = processed(
        planned(tmp_path / "src", tmp_path / "res"), tmp_path / "src")
    assert [w.status for w in windows] == ["ok", "ok", "empty", "empty"]
    assert [(e.window_index, e.channel, e.offset_s) for e in vectors] == [(0, 0, 0.0), (1, 0, 10.0)]
    backend = PlaceholderBackend(sample_rate_hz=RATE_HZ)
    for e in vectors:
        row = decoded[e.window_index]
        own = backend.embed(row["audio"][None, :], np.array([row["valid_samples"]]))[0]
        np.testing.assert_array_equal(e.vector, own)
        assert e.start_utc == windows[e.window_index].start_utc and e.date == windows[e.window_index].date
    with Catalog(tmp_path / "res") as catalog:
        catalog.commit_unit(windows, predictions, vectors)
    with CatalogReader(tmp_path / "res") as reader:
        stored = reader.query("select window_index, v.vector, e.vector_f16, v.stored_as "
                              "from embedding_vectors as v join embeddings as e using "
                              "(config_fingerprint, recording_id, channel, window_index) "
                              "order by window_index").to_pylist()
    assert [r["window_index"] for r in stored] == [0, 1]
    # Stored as float16 (schema version 12): the model's vector rounded to half precision, and
    # the view shows those numbers.
    assert [r["stored_as"] for r in stored] == ["float16", "float16"]
    rounded = vectors[1].vector.astype(np.float16)
    assert stored[1]["vector_f16"] == rounded.tobytes()
    np.testing.assert_array_equal(np.array(stored[1]["vector"], np.float32), rounded.astype(np.float32))


class BadEmbedder(PlaceholderBackend):
    """The placeholder, except that the second window of every batch embeds to NaN."""

    def embed(self, audio, valid_samples):
        out = super().embed(audio, valid_samples)
        out[1] = np.nan
        return out


def test_a_non_finite_embedding_fails_its_window_and_drops_its_answers(tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, "bad-embedder", "tests.flows.pipeline.test_embeddings:BadEmbedder")
    make_deployment(tmp_path / "src", "dep", [START], 30.0, RATE_HZ)
    [(_, windows, predictions, vectors)] = processed(
        planned(tmp_path / "src", tmp_path / "res"), tmp_path / "src", backend="bad-embedder")
    assert [w.status for w in windows] == ["ok", "failed", "ok"]
    assert windows[1].error == "model returned a non-finite embedding"
    assert {p.window_index for p in predictions} == {0, 2}
    assert [e.window_index for e in vectors] == [0, 2]


def test_commit_refuses_bad_vectors_and_keeps_nothing_of_their_unit(tmp_path):
    make_deployment(tmp_path / "src", "dep", [START], 30.0, RATE_HZ)
    [(_, windows, predictions, vectors)] = processed(
        planned(tmp_path / "src", tmp_path / "res"), tmp_path / "src")
    short = [*vectors[:-1], replace(vectors[-1], vector=vectors[-1].vector[:-1])]
    infinite = [*vectors[:-1], replace(vectors[-1], vector=np.full(32, np.inf, np.float32))]
    with Catalog(tmp_path / "res") as catalog:
        with pytest.raises(ValueError, match="31 values, but 32"):
            catalog.commit_unit(windows, predictions, short)
        with pytest.raises(ValueError, match="non-empty finite vector"):
            catalog.commit_unit(windows, predictions, infinite)
    with CatalogReader(tmp_path / "res") as reader:
        counts = reader.query("select (select count(*) from windows) as w, "
                              "(select count(*) from embeddings) as e").to_pylist()
    assert counts == [{"w": 0, "e": 0}]
    # The stage itself refuses a vector that is not the model's width.
    with pytest.raises(ValueError, match="embedding of 32 values, expected 16"):
        processed(planned(tmp_path / "src", tmp_path / "res2"), tmp_path / "src", dim=16)


def test_embeddings_are_not_part_of_the_fingerprint(tmp_path):
    base = RunSettings(source=str(tmp_path), results=str(tmp_path / "r"), model="placeholder",
                       window_s=10.0)  # fingerprints take resolved settings
    info = describe_backend("placeholder")
    asked = base.model_copy(update={"embeddings": True})
    # Vectors are not answers: asking for them continues the same analysis (issue 18, item 4).
    assert (config_fingerprint(asked, info.model_id, info.settings)
            == config_fingerprint(base, info.model_id, info.settings))


def test_embeddings_asked_for_later_are_added_to_the_windows_already_analysed(tmp_path):
    (tmp_path / "src" / "dep").mkdir(parents=True)
    write_wav(tmp_path / "src" / "dep" / audiomoth_name(START), noise(40.0, RATE_HZ, -20), RATE_HZ)
    source, results = tmp_path / "src", tmp_path / "res"
    units = planned(source, results)
    with Catalog(results) as catalog:
        for _, windows, predictions, _ in processed(units, source):
            catalog.commit_unit(windows, predictions)  # a run without --embeddings
    assert planned(source, results) == []
    again = planned(source, results, need_embeddings=True)
    assert [w.index for u in again for w in u.windows] == [0, 1, 2, 3]
    with Catalog(results) as catalog:
        for _, windows, predictions, vectors in processed(again, source):
            catalog.commit_unit(windows, predictions, vectors)
    with CatalogReader(results) as reader:
        counts = reader.query("select (select count(*) from windows) as w, "
                              "(select count(*) from predictions) as p, "
                              "(select count(*) from embeddings) as e").to_pylist()[0]
    first_predictions = sum(len(p) for _, _, p, _ in processed(units, source))
    assert counts == {"w": 4, "p": first_predictions, "e": 4}  # vectors only; nothing twice
    assert planned(source, results, need_embeddings=True) == []


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server", "ray_local")
def test_a_run_with_embeddings_writes_one_row_per_analysed_window_exactly_once(tmp_path):
    from flows.cli.main import main

    make_deployment(tmp_path / "src", "dep-a", [START, START.replace(hour=5)], 25.0, RATE_HZ,
                    events={0: [(12.0, 2.0, 2000.0)]})
    plain = ["run", "--source", str(tmp_path / "src"), "--results", str(tmp_path / "res"),
             "--model", "placeholder", "--option", f"sample_rate_hz={RATE_HZ}",
             "--windows-per-unit", "2"]
    assert main(plain) == 0  # a season analysed without vectors
    assert main([*plain, "--embeddings"]) == 0  # vectors asked for later: the same analysis
    assert main([*plain, "--embeddings"]) == 0  # nothing new: plans nothing, writes nothing
    make_deployment(tmp_path / "src", "dep-a", [START + timedelta(days=1)], 25.0, RATE_HZ,
                    level_dbfs=-45)
    assert main(plain) == 0  # the next night, the nightly's plain run
    with CatalogReader(tmp_path / "res") as reader:
        windows = reader.query("select recording_id, window_index, channel, config_fingerprint "
                               "from windows where status = 'ok' order by all").to_pylist()
        vectors = reader.query("select recording_id, window_index, channel, config_fingerprint, "
                               "model_id, len(vector) as n, stored_as from embedding_vectors "
                               "order by all").to_pylist()
        fingerprints = reader.query("select distinct config_fingerprint from runs union "
                                    "select distinct config_fingerprint from windows").to_pylist()
        twice = reader.query("select count(*) as n from (select recording_id, window_index, task, "
                             "label from predictions group by all having count(*) > 1)").to_pylist()
    assert len(windows) == 9  # 3 recordings x 3 windows of 10 s
    assert len(fingerprints) == 1 and twice == [{"n": 0}]
    first_nights = [w for w in windows if w["recording_id"] in {v["recording_id"] for v in vectors}]
    assert len(first_nights) == 6  # the two recordings there when vectors were asked for
    assert [{k: v for k, v in e.items() if k not in ("model_id", "n", "stored_as")}
            for e in vectors] == first_nights
    assert {(e["model_id"], e["n"], e["stored_as"]) for e in vectors} == {
        ("placeholder-v1@none", 32, "float16")}


def test_describe_tells_the_embedding_of_the_loaded_model_without_building_it(tmp_path):
    from naturelm_core.backend import load_backend
    from naturelm_core.clap.tiny import build_tiny_msclap, build_tiny_transformers_clap
    from naturelm_core.naturelm.tiny import build_tiny_checkpoint
    from naturelm_core.salmonn.tiny import build_tiny_salmonn

    weights, text_dir, config = build_tiny_msclap(tmp_path / "msclap")
    naturelm, llama = build_tiny_checkpoint(tmp_path / "naturelm")
    cases = {
        "clap-msclap": ("clap", {"weights": str(weights), "text_model": str(text_dir),
                                 "model_config": str(config), "labels": ["Tawny Owl"]}),
        "clap-transformers": ("clap", {"weights": str(build_tiny_transformers_clap(tmp_path / "tc")),
                                       "labels": ["Tawny Owl"]}),
        "naturelm": ("naturelm", {"weights": str(naturelm), "llama": str(llama)}),
        "salmonn": ("salmonn", {k: str(v) for k, v in build_tiny_salmonn(tmp_path / "salmonn").items()}),
        "birdnet": ("birdnet", {}),
    }
    for name, (model, options) in cases.items():
        info = describe_backend(model, **options)
        backend = load_backend(model, **options)
        assert info.embedding == backend.embedding_settings(), name
        assert info.embedding["dim"] == backend.embedding_dim, name
