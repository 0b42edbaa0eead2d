"""Embedding vectors as the catalog stores them: float16 since schema version 12, float32 before.

A new row holds its vector as little-endian IEEE float16 values in a BLOB (`vector_f16`, 2 bytes
per value) and NULL in `vector`; a row written before version 12 holds a FLOAT[] list in `vector`
and NULL in `vector_f16`. Nothing is rewritten, so an old catalog reads exactly as before. Why
float16 and why a BLOB (measured, docs/similar.md "How vectors are stored"): float16 changes no
search or training result measurable on real embeddings and halves the bytes; DuckDB has no
half-precision type, and it reads one BLOB per row several times faster than a list of floats.

`stored_embeddings` is what the writer commits; `vector_matrix` is how every reader (similar,
learn's training and apply) turns either kind of row into one matrix, with the width check.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.errors import ConfigError

log = logging.getLogger("connectors.catalog")

#: The storage type of a vector's values: IEEE half precision, little-endian.
FLOAT16 = np.dtype("<f2")
#: The largest magnitude float16 holds; a vector with a larger value is stored as float32.
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
#: Rows converted to float32 at a time (a few MB: the conversion runs in cache).
_DECODE_ROWS = 4096


def float16_column(values: np.ndarray) -> pa.Array:
    """(N, D) values as N BLOBs of D little-endian float16 values each, in one buffer."""
    n, dim = values.shape
    data = np.ascontiguousarray(values, dtype=FLOAT16)  # (N, D)
    offsets = np.arange(0, 2 * dim * n + 1, 2 * dim, dtype=np.int32)  # (N + 1,)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(data.reshape(-1).view(np.uint8))])


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), table.schema.field(name), column)


def stored_embeddings(table: pa.Table) -> pa.Table:
    """`table` (the embeddings schema, checked by `check_embedding_table`) as the writer commits
    it: a row given as a float32 `vector` holds its float16 bytes in `vector_f16` and NULL in
    `vector`; a row given as `vector_f16` passes as it is. A vector float16 cannot hold (a value
    beyond ±65504) stays float32, and the writer logs how many did: never rounded to infinity."""
    n = table.num_rows
    lists = table.column("vector").combine_chunks()
    given = pc.is_valid(lists).to_numpy(zero_copy_only=False)  # (N,)
    if not given.any():
        return table
    widths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    flat = np.asarray(lists.flatten().to_numpy(zero_copy_only=False), np.float32)
    if given.all() and widths.min() == widths.max():
        values = flat.reshape(n, int(widths[0]))  # (N, D): the usual commit, one width
        if np.all(np.abs(values) <= FLOAT16_MAX):
            return _replace(_replace(table, "vector", pa.nulls(n, lists.type)), "vector_f16",
                            float16_column(values))
    ends = np.cumsum(widths)
    kept_f16 = table.column("vector_f16").combine_chunks()
    f32: list[Any] = []
    f16: list[bytes | None] = []
    for i in range(n):
        vector = flat[ends[i] - widths[i]:ends[i]]
        if not given[i]:
            f32.append(None)
            f16.append(kept_f16[i].as_py())
        elif np.all(np.abs(vector) <= FLOAT16_MAX):
            f32.append(None)
            f16.append(vector.astype(FLOAT16).tobytes())
        else:
            f32.append(vector)
            f16.append(None)
    wide = sum(v is not None for v in f32)
    if wide:
        log.warning("%d of %d embeddings have a value beyond float16's range (±%g): stored as "
                    "float32", wide, int(given.sum()), FLOAT16_MAX)
    return _replace(_replace(table, "vector", pa.array(f32, lists.type)), "vector_f16",
                    pa.array(f16, pa.binary()))


def _columns(table: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The `vector` and `vector_f16` columns; one that `table` lacks reads as all NULL."""
    n = table.num_rows
    lists = (table.column("vector").combine_chunks() if "vector" in table.column_names
             else pa.nulls(n, pa.list_(pa.float32())))
    blobs = (table.column("vector_f16").combine_chunks() if "vector_f16" in table.column_names
             else pa.nulls(n, pa.binary()))
    return lists, blobs


def _row_widths(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: whether it holds a float32 list, whether a float16 BLOB, and its width in values
    (a BLOB of an odd number of bytes has width -1: no whole number of float16 values)."""
    lists, blobs = _columns(table)
    is32 = pc.is_valid(lists).to_numpy(zero_copy_only=False)
    is16 = pc.is_valid(blobs).to_numpy(zero_copy_only=False)
    n32 = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    bytes16 = pc.fill_null(pc.binary_length(blobs), 0).to_numpy(zero_copy_only=False)
    widths = np.where(is32, n32, np.where(bytes16 % 2 == 0, bytes16 // 2, -1))
    return is32, is16, widths.astype(np.int64)


def check_embedding_table(table: pa.Table) -> None:
    """Refuse embeddings a catalog must never hold: a row with neither or both of `vector` and
    `vector_f16`, an empty vector or a BLOB of an odd number of bytes, values that are not
    finite, or two widths under one fingerprint."""
    if table.num_rows == 0:
        return
    is32, is16, widths = _row_widths(table)
    lists, blobs = _columns(table)
    finite32 = np.all(np.isfinite(np.asarray(lists.flatten().to_numpy(zero_copy_only=False))))
    finite16 = True
    if is16.any() and (widths[is16] > 0).all():
        held = blobs.filter(pc.is_valid(blobs))  # a new array: its values are one buffer
        offsets = np.frombuffer(held.buffers()[1], np.int32)[held.offset:held.offset + len(held) + 1]
        values = np.frombuffer(held.buffers()[2], FLOAT16, count=(offsets[-1] - offsets[0]) // 2,
                               offset=int(offsets[0]))
        finite16 = bool(np.all(np.isfinite(values)))
    fingerprints = table.column("config_fingerprint").to_numpy(zero_copy_only=False)
    per_fp = {fp: set(widths[fingerprints == fp].tolist()) for fp in set(fingerprints.tolist())}
    if (not np.all(is32 ^ is16) or np.any(widths < 1) or not finite32 or not finite16
            or any(len(w) != 1 for w in per_fp.values())):
        raise ValueError("refusing to commit embeddings: every row must hold one vector (vector "
                         "or vector_f16, not both), non-empty and finite, of one width per "
                         "fingerprint")


def vector_matrix(table: pa.Table, dim: int, *, copy: bool = True) -> np.ndarray:
    """The stored vectors of `table` (columns `vector` and `vector_f16`, as read from the
    catalog) as one (N, D) float32 matrix, after checking every row holds exactly one vector of
    `dim` values (ConfigError otherwise).

    With `copy=False` the matrix may be the stored values themselves: a read-only float16 view of
    Arrow's buffer when every row is float16 (the usual case since schema version 12: a batch's
    float16 values need no copy until they are scored), else float32."""
    n = table.num_rows
    if n == 0:
        return np.zeros((0, dim), np.float32)
    is32, is16, widths = _row_widths(table)
    one = is32 ^ is16  # exactly one of the two columns holds the row's vector
    if not np.all(one) or widths.min() != dim or widths.max() != dim:
        shown = widths[one]
        got = f"{shown.min()}-{shown.max()}" if len(shown) else "none"
        raise ConfigError(f"embeddings: expected vectors of {dim} values, got {got}"
                          f"{'' if np.all(one) else ' and rows with no vector'} "
                          "(one fingerprint's vectors mix widths: re-run it with --embeddings "
                          "into a fresh catalog)")
    lists, blobs = _columns(table)
    if is32.all():  # a catalog written before schema version 12: float32 as stored
        flat = lists.flatten().to_numpy(zero_copy_only=False)
        values = np.array(flat, np.float32) if copy else np.asarray(flat, np.float32)
        return values.reshape(n, dim)  # (N, D)
    if is16.all():
        offsets = np.frombuffer(blobs.buffers()[1], np.int32, count=1, offset=4 * blobs.offset)
        values = np.frombuffer(blobs.buffers()[2], FLOAT16, count=n * dim, offset=int(offsets[0]))
        values = values.reshape(n, dim)  # (N, D): the rows are contiguous (no nulls, one width)
        values.flags.writeable = False  # Arrow's memory: never written through
        return values if not copy else as_float32(values)
    out = np.empty((n, dim), np.float32)  # a catalog holding both: each row as stored
    rows32, rows16 = np.flatnonzero(is32), np.flatnonzero(is16)
    flat = lists.take(pa.array(rows32)).flatten().to_numpy(zero_copy_only=False)
    out[rows32] = np.asarray(flat, np.float32).reshape(len(rows32), dim)
    out[rows16] = vector_matrix(pa.table({"vector_f16": blobs.take(pa.array(rows16))}), dim)
    return out


def as_float32(values: np.ndarray) -> np.ndarray:
    """(N, D) values as a new float32 matrix, converted a block of rows at a time (in cache:
    100 k x 1024 in 0.25 s where one `astype` took 0.44 s on this machine)."""
    out = np.empty(values.shape, np.float32)
    for block in range(0, len(values), _DECODE_ROWS):
        out[block:block + _DECODE_ROWS] = values[block:block + _DECODE_ROWS]
    return out
