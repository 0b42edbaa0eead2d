"""The benchmarks write catalog tables as columns, not rows, so a migration that adds a column can
break them without any other test noticing (issue 21's QC columns broke `bench_learn` and
`bench_catalog` until `Table.conform`). These run the builders at a tiny size."""

from __future__ import annotations

import numpy as np

from bench import bench_catalog, bench_learn
from connectors.catalog import Catalog
from connectors.tables import WINDOWS


def test_bench_learn_writes_trains_and_applies_at_a_tiny_size(tmp_path):
    out = tmp_path / "learn.json"
    result = bench_learn.main(["--windows", "400", "--dim", "16", "--out", str(out)])
    assert out.exists()
    assert result["windows"] == result["applied_windows"] == 400
    assert result["positives"] == 5 and result["weak_negatives"] > 0
    assert result["train_s"] > 0 and result["apply_s"] > 0 and result["bytes_per_window_before"] > 0


def test_bench_catalogs_windows_commit_with_the_catalogs_schema(tmp_path):
    (rec,) = bench_catalog.recording_rows(deployments=1, nights=1, hours=0.01)
    windows, predictions = bench_catalog.unit_tables(rec, 0, 6, np.random.default_rng(0))
    assert windows.schema == WINDOWS.schema and windows.num_rows == 6
    with Catalog(tmp_path / "res") as catalog:
        catalog.register_recordings([rec], [])
        catalog.commit_tables(windows, predictions)
        got = catalog.con.execute("select count(*), count(qc) from lake.windows").fetchone()
    assert got == (6, 0)  # QC not measured: null, as for windows written before migration 0009


def test_bench_float16_compares_search_and_storage_on_a_catalogs_vectors(tmp_path):
    from bench import bench_float16
    from tests.support.learn_catalog import planted_catalog

    planted_catalog(tmp_path / "res", recordings=2, windows=20)
    result = bench_float16.main(["--results", str(tmp_path / "res")])
    assert result["windows"] == 40 and result["dim"] == 16
    assert result["search"]["queries"] == 40
    assert 0.9 <= result["search"]["top10_overlap_mean"] <= 1.0
    assert 0 < result["search"]["max_cosine_change"] < 1e-2
    assert result["training"] == []  # no detections in this catalog: no labels to train on
    sizes = result["parquet_bytes_per_vector"]
    assert sizes["float16"] < sizes["float32_list"]
