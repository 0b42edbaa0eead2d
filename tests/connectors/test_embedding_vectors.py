"""Embeddings stored as float16 (schema version 12, `connectors.catalog.vectors`): a vector
written and read back is its float16 rounding, whichever write path; widths are checked on write
and on read; a vector float16 cannot hold stays float32 and says so; the `embedding_vectors` view
decodes every finite float16 value exactly as numpy does."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest

from connectors.catalog import Catalog, CatalogReader, reads
from connectors.catalog.vectors import FLOAT16, float16_column, vector_matrix
from connectors.errors import ConfigError
from connectors.tables import EMBEDDINGS, EmbeddingRow, replace

FP = "fp-vec"


def row(index: int, vector=None, vector_f16=None, fingerprint: str = FP) -> EmbeddingRow:
    return EmbeddingRow(run_id="run-0", model_id="embedder@1", config_fingerprint=fingerprint,
                        recording_id="rec", deployment_id="dep", channel=0, window_index=index,
                        offset_s=3.0 * index, start_utc=None, date=None, vector=vector,
                        vector_f16=vector_f16)


def stored(root, fingerprint: str = FP) -> tuple[np.ndarray, list[dict]]:
    with CatalogReader(root) as reader:
        (run,) = [r for r in reads.embedded_fingerprints(reader) if r.config_fingerprint == fingerprint]
        table = reads.embedding_vectors(reader, config_fingerprint=fingerprint)
        kinds = reader.query("select window_index, vector is not null as f32, vector_f16 is not "
                             "null as f16 from embeddings order by window_index").to_pylist()
    order = np.argsort(table.column("window_index").to_numpy())
    return vector_matrix(table, run.dim)[order], kinds


def test_a_vector_written_and_read_back_is_its_float16_rounding(tmp_path):
    values = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    values[0, :5] = [0.0, -0.0, 1e-7, -6.0e-5, 65504.0]  # zeros, subnormals, float16's largest
    values[1] *= np.float32(1e-3)
    with Catalog(tmp_path) as catalog:
        catalog.commit_unit([], [], [row(i, values[i]) for i in range(4)])
    matrix, kinds = stored(tmp_path)
    assert all(k["f16"] and not k["f32"] for k in kinds)
    np.testing.assert_array_equal(matrix, values.astype(np.float16).astype(np.float32))
    # Less than float16's precision apart (2^-11 relative) where float16 is normal.
    normal = np.abs(values) >= np.finfo(np.float16).tiny
    assert np.all(np.abs(matrix - values)[normal] <= np.abs(values)[normal] * 2.0 ** -11)


def test_bulk_embeddings_in_arrow_are_stored_as_float16_too(tmp_path):
    values = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    table = EMBEDDINGS.to_arrow([row(i, values[i]) for i in range(3)])
    with Catalog(tmp_path) as catalog:
        catalog.commit_embeddings_table(table)
    matrix, kinds = stored(tmp_path)
    assert all(k["f16"] and not k["f32"] for k in kinds)
    np.testing.assert_array_equal(matrix, values.astype(np.float16).astype(np.float32))


def test_a_vector_float16_cannot_hold_stays_float32_and_the_writer_says_so(tmp_path, caplog):
    values = np.ones((2, 8), np.float32)
    values[1, 3] = 70_000.0  # float16 would make it infinite
    with caplog.at_level(logging.WARNING, logger="connectors.catalog"):
        with Catalog(tmp_path) as catalog:
            catalog.commit_unit([], [], [row(i, values[i]) for i in range(2)])
    matrix, kinds = stored(tmp_path)
    assert [(k["f32"], k["f16"]) for k in kinds] == [(False, True), (True, False)]
    np.testing.assert_array_equal(matrix, values)
    assert "1 of 2 embeddings have a value beyond float16's range" in caplog.text


def test_the_writer_refuses_wrong_widths_and_rows_without_exactly_one_vector(tmp_path):
    good = np.ones(8, np.float32)
    cases = [
        ([row(0, good), row(1, good[:7])], "7 values, but 8"),
        ([row(0, good), row(1, None, good[:6].astype(FLOAT16).tobytes())], "6 values, but 8"),
        ([row(0, None, b"\x00<\x00")], "3 bytes, not a whole number"),
        ([row(0, good, good.astype(FLOAT16).tobytes())], "one of vector and vector_f16"),
        ([row(0)], "one of vector and vector_f16"),
        ([row(0, None, np.full(8, np.inf, FLOAT16).tobytes())], "non-empty finite vector"),
    ]
    with Catalog(tmp_path) as catalog:
        for rows, message in cases:
            with pytest.raises(ValueError, match=message):
                catalog.commit_unit([], [], rows)
        bad_tables = [EMBEDDINGS.to_arrow(rows) for rows, _ in cases]
        for table in bad_tables:
            with pytest.raises(ValueError, match="one vector .* of one width per fingerprint"):
                catalog.commit_embeddings_table(table)
        # Two fingerprints may have two widths.
        catalog.commit_unit([], [], [row(0, good), row(1, good[:4], fingerprint="fp-other")])
    with CatalogReader(tmp_path) as reader:
        assert {r.config_fingerprint: r.dim for r in reads.embedded_fingerprints(reader)} == {
            FP: 8, "fp-other": 4}


def test_reading_refuses_vectors_of_another_width_whichever_way_stored():
    f16 = pa.table({"vector": pa.nulls(2, pa.list_(pa.float32())),
                    "vector_f16": float16_column(np.ones((2, 4), np.float32))})
    assert vector_matrix(f16, 4).tolist() == [[1.0] * 4] * 2
    with pytest.raises(ConfigError, match="expected vectors of 8 values, got 4-4"):
        vector_matrix(f16, 8)  # 16 bytes in all, as one vector of 8 would have
    mixed = pa.table({"vector": pa.array([[1.0, 2.0], None], pa.list_(pa.float32())),
                      "vector_f16": pa.array([None, np.ones(3, FLOAT16).tobytes()], pa.binary())})
    with pytest.raises(ConfigError, match="expected vectors of 2 values, got 2-3"):
        vector_matrix(mixed, 2)
    neither = pa.table({"vector": pa.array([[1.0, 2.0], None], pa.list_(pa.float32())),
                        "vector_f16": pa.nulls(2, pa.binary())})
    with pytest.raises(ConfigError, match="rows with no vector"):
        vector_matrix(neither, 2)
    # Scoring reads the float16 values themselves, without a float32 copy.
    view = vector_matrix(f16, 4, copy=False)
    assert view.dtype == np.float16 and not view.flags.writeable


def test_the_view_decodes_every_finite_float16_value_as_numpy_does(tmp_path):
    every = np.arange(1 << 16, dtype=np.uint16).view(FLOAT16)
    every = every[np.isfinite(every)]  # 63,488 values: zeros, subnormals, normals, both signs
    with Catalog(tmp_path) as catalog:
        catalog.commit_unit([], [], [row(0, None, every.tobytes()),
                                     replace(row(1, None, every.tobytes()), config_fingerprint="x")])
    with CatalogReader(tmp_path) as reader:
        (decoded,) = reader.query("select vector from embedding_vectors where config_fingerprint "
                                  "= ?", [FP]).column("vector").to_pylist()
    decoded = np.array(decoded, np.float32)
    expected = every.astype(np.float32)
    assert np.array_equal(decoded, expected) and np.array_equal(np.signbit(decoded), np.signbit(expected))
