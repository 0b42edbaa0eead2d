"""`learn` and `similar` on catalogs whose embeddings are float32 lists (written before schema
version 12), float16 BLOBs (since), or both: an old catalog is trained on, applied and searched
exactly as before; in a mixed one every row is read as it was stored, the classifier finds the
planted calls in both kinds of recording, and search ranks them across both."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from connectors.catalog import CatalogReader, reads
from connectors.catalog.vectors import vector_matrix
from flows.outputs.learn import learn, probabilities
from flows.outputs.similar import normalise_rows, similar
from tests.support.learn_catalog import DIM, FP, planted_catalog, raven_table

RECORDINGS = 4
OLD = 2  # the mixed catalog's first two recordings are float32, the other two float16


def stored(root: Path) -> tuple[list[tuple[str, int]], np.ndarray, list[bool]]:
    """(recording, window) keys, the (N, DIM) matrix every reader sees, and whether each row is
    float16, in key order."""
    with CatalogReader(root) as reader:
        table = reads.embedding_vectors(reader, config_fingerprint=FP)
    keys = list(zip(table.column("recording_id").to_pylist(), table.column("window_index").to_pylist()))
    order = sorted(range(len(keys)), key=keys.__getitem__)
    f16 = table.column("vector_f16").is_valid().to_pylist()
    return [keys[i] for i in order], vector_matrix(table, DIM)[order], [f16[i] for i in order]


def scores(root: Path, fingerprint: str) -> dict[tuple[str, int], float]:
    with CatalogReader(root) as reader:
        rows = reader.query("select recording_id, window_index, score from predictions "
                            "where config_fingerprint = ?", [fingerprint]).to_pylist()
    return {(r["recording_id"], r["window_index"]): r["score"] for r in rows}


def taught(tmp_path: Path, root: Path, recs) -> object:
    """A classifier from three calls of rec0 (float32 in the mixed catalog) and three of rec2
    (float16), applied."""
    table = raven_table(tmp_path / f"{root.name}.txt", [
        (recs[r].uri, i * 3 + 1.0, i * 3 + 2.0, "Knocker") for r in (0, 2) for i in (3, 10, 17)])
    return learn(str(root), "Knocker", examples=[str(table)], by="tester", weak_negatives=60)


def test_learn_on_old_and_mixed_catalogs_scores_every_row_as_it_was_stored(tmp_path):
    old_root, mixed_root = tmp_path / "old", tmp_path / "mixed"
    recs, calls = planted_catalog(old_root, recordings=RECORDINGS, float32_recordings=RECORDINGS)
    planted_catalog(mixed_root, recordings=RECORDINGS, float32_recordings=OLD)  # the same vectors
    keys, original, old_f16 = stored(old_root)
    mixed_keys, mixed, mixed_f16 = stored(mixed_root)
    assert keys == mixed_keys and not any(old_f16)
    older = np.array([k[0] in {"rec0", "rec1"} for k in keys])
    assert mixed_f16 == (~older).tolist()
    # Each row as stored: float32 bit for bit, float16 its rounding.
    np.testing.assert_array_equal(mixed[older], original[older])
    np.testing.assert_array_equal(mixed[~older], original[~older].astype(np.float16).astype(np.float32))

    old = taught(tmp_path, old_root, recs)
    new = taught(tmp_path, mixed_root, recs)
    assert old.applied.windows == new.applied.windows == RECORDINGS * 40
    # The old catalog: scores exactly those of its float32 vectors, as before float16 existed.
    got = scores(old_root, old.classifier.config_fingerprint)
    expected = probabilities(original, np.asarray(old.classifier.weights), old.classifier.bias)
    assert [got[k] for k in keys] == expected.tolist()
    # The mixed one: each row scored from what it holds (float16 rows converted block by block).
    got = scores(mixed_root, new.classifier.config_fingerprint)
    expected = probabilities(mixed, np.asarray(new.classifier.weights), new.classifier.bias)
    np.testing.assert_allclose([got[k] for k in keys], expected, rtol=0, atol=1e-6)
    # float16 moves no probability by more than 1e-3 here, and the calls are found in both kinds.
    old_scores = scores(old_root, old.classifier.config_fingerprint)
    assert max(abs(got[k] - old_scores[k]) for k in keys) < 1e-3
    for kind in ({"rec1"}, {"rec3"}):  # the float32 and the float16 recording without examples
        found = {k for k in keys if k[0] in kind and got[k] >= 0.5}
        planted = {k for k in calls if k[0] in kind}
        assert len(found & planted) >= 0.8 * len(planted) and len(found - planted) <= 1


def test_similar_ranks_the_planted_calls_across_float32_and_float16_rows(tmp_path):
    root = tmp_path / "mixed"
    _, calls = planted_catalog(root, recordings=RECORDINGS, float32_recordings=OLD)
    keys, matrix, _ = stored(root)
    unit = normalise_rows(matrix)
    for query in ("rec0:3", "rec2:3"):  # from a float32 row, then from a float16 one
        result = similar(str(root), window=query, top=8)
        hits = [(h["recording_id"], h["window_index"]) for h in result.hits]
        q = unit[keys.index((query.split(":")[0], 3))]
        cosines = {k: float(c) for k, c in zip(keys, unit @ q)}
        assert [h["cosine"] for h in result.hits] == sorted((h["cosine"] for h in result.hits), reverse=True)
        np.testing.assert_allclose([h["cosine"] for h in result.hits], [cosines[k] for k in hits],
                                   rtol=0, atol=1e-6)
        found = {k[0] for k in hits}
        assert set(hits) <= calls and found & {"rec0", "rec1"} and found & {"rec2", "rec3"}
