"""A catalog written before float16 embeddings (schema version 11) opens with today's code:
migration 0012 adds `vector_f16` and lets `vector` be NULL, the old float32 vectors stay as they
were and read back bit for bit, new embeddings beside them are stored as float16, and every
reader (the vector matrix, the width, the `embedding_vectors` view) reads both."""

from __future__ import annotations

import numpy as np

from connectors.catalog import SCHEMA_VERSION, Catalog, CatalogReader, reads
from connectors.catalog.schema import MIGRATIONS
from connectors.catalog.vectors import vector_matrix
from connectors.tables import EMBEDDINGS, RECORDINGS, TABLES, WINDOWS, EmbeddingRow
from tests.connectors.test_catalog_schema import catalog_columns, defined_columns
from tests.support.catalog_rows import DAY, FINGERPRINT, recording, unit
from tests.support.old_catalog import build_catalog_at_version

VERSION_BEFORE = 11
DIM = 24


def embedding(window, vector) -> EmbeddingRow:
    return EmbeddingRow(run_id=window.run_id, model_id="embedder@1",
                        config_fingerprint=window.config_fingerprint,
                        recording_id=window.recording_id, deployment_id=window.deployment_id,
                        channel=window.channel, window_index=window.window_index,
                        offset_s=window.offset_s, start_utc=window.start_utc, date=window.date,
                        vector=vector)


def old_vectors() -> np.ndarray:
    """(3, DIM) float32 values float16 would round: small, large, signed, subnormal in float16."""
    rng = np.random.default_rng(7)
    values = rng.standard_normal((3, DIM)).astype(np.float32) * np.float32(3.0)
    values[0, :4] = [1e-6, -3.3e-7, 70_000.0, 0.1]  # beyond float16's range, and its subnormals
    return values


def build_version_11_catalog(root) -> None:
    """The catalog version 11 left after a run with --embeddings: its tables and version, one
    recording with three windows and their float32 vectors (no views: the upgrade writes them)."""
    rec = recording("rec-old", "dep-a", DAY, 30.0)
    windows, _ = unit(rec, 0, 3)
    vectors = [embedding(w, v) for w, v in zip(windows, old_vectors())]
    build_catalog_at_version(root, VERSION_BEFORE,
                             [(RECORDINGS, [rec]), (WINDOWS, windows), (EMBEDDINGS, vectors)])


def test_the_migration_follows_version_11_whose_embeddings_were_float32_lists():
    assert MIGRATIONS[VERSION_BEFORE] == "migrations/0012_float16_embeddings"
    assert SCHEMA_VERSION >= VERSION_BEFORE + 1


def test_an_old_catalog_keeps_its_float32_vectors_and_new_runs_append_float16(tmp_path):
    root = tmp_path / "results"
    build_version_11_catalog(root)
    old = old_vectors()
    new = np.random.default_rng(8).standard_normal((2, DIM)).astype(np.float32)
    with Catalog(root) as catalog:
        assert catalog.schema_version == SCHEMA_VERSION
        for table in TABLES:
            assert catalog_columns(catalog, table) == defined_columns(table), table
        rec = catalog.known_recordings()[0]
        windows, predictions = unit(rec, 3, 2)
        catalog.commit_unit(windows, predictions, [embedding(w, v) for w, v in zip(windows, new)])
    with CatalogReader(root) as reader:
        stored = reader.query("select window_index, vector is not null as f32, "
                              "octet_length(vector_f16) as f16_bytes from embeddings "
                              "order by window_index").to_pylist()
        (run,) = reads.embedded_fingerprints(reader)
        table = reads.embedding_vectors(reader, config_fingerprint=FINGERPRINT)
        view = reader.query("select window_index, stored_as, vector from embedding_vectors "
                            "order by window_index").to_pylist()
    # Nothing rewritten: the three old rows are still float32 lists; the two new ones float16.
    assert stored == [{"window_index": i, "f32": True, "f16_bytes": None} for i in range(3)] + [
        {"window_index": i, "f32": False, "f16_bytes": 2 * DIM} for i in (3, 4)]
    assert (run.dim, run.vectors) == (DIM, 5)
    order = np.argsort(table.column("window_index").to_numpy())
    matrix = vector_matrix(table, DIM)[order]  # (5, DIM)
    # The old vectors bit for bit (70,000 and float16's subnormals included); the new ones are
    # their float16 rounding.
    np.testing.assert_array_equal(matrix[:3], old)
    np.testing.assert_array_equal(matrix[3:], new.astype(np.float16).astype(np.float32))
    assert [r["stored_as"] for r in view] == ["float32"] * 3 + ["float16"] * 2
    np.testing.assert_array_equal(np.array([r["vector"] for r in view], np.float32), matrix)
