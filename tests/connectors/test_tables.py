"""`Table.conform`: columnar data as a table's exact schema, absent nullable columns null."""

from __future__ import annotations

import pytest

from connectors.tables import SETTINGS, WINDOWS


def test_conform_fills_absent_nullable_columns_and_keeps_the_tables_order():
    required = [c for c in WINDOWS.columns if not c.nullable]
    values = {"run_id": "r", "config_fingerprint": "f", "recording_id": "x", "deployment_id": "d",
              "channel": 0, "window_index": 3, "offset_s": 9.0, "window_s": 3.0,
              "duration_s": 3.0, "status": "ok", "padded": False}
    given = {c.name: [values[c.name]] for c in reversed(required)}  # any order
    table = WINDOWS.conform(given)
    assert table.schema == WINDOWS.schema
    (row,) = table.to_pylist()
    assert row["window_index"] == 3 and row["status"] == "ok"
    assert row["qc"] is None and row["rms_dbfs"] is None and row["start_utc"] is None


@pytest.mark.parametrize("columns, message", [
    ({"key": ["k"], "value": ["1"], "colour": ["red"]}, "settings: no such columns: colour"),
    ({"value": ["1"]}, "settings: required columns not given: key"),
])
def test_conform_names_what_does_not_fit(columns, message):
    with pytest.raises(ValueError, match=message):
        SETTINGS.conform(columns)
