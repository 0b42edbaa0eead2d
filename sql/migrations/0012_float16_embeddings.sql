-- purpose: version 12 — embeddings stored as float16 (issue 20; docs/similar.md "How vectors are
-- stored"): a new window's vector is a BLOB of little-endian IEEE float16 values, the model's
-- width of them (2 bytes each), in `vector_f16`, with `vector` NULL. Rows written before this
-- version keep their FLOAT[] `vector` (and NULL `vector_f16`): nothing is rewritten, every reader
-- decodes both, and the `embedding_vectors` view shows either as a FLOAT[] list. A vector that
-- float16 cannot hold (a value beyond ±65504) is stored as float32 in `vector`, as before.
-- Why a BLOB: DuckDB has no half-precision type; measured at 100 k x 1024 (docs/similar.md), a
-- BLOB is 2.0 times smaller in Parquet than the FLOAT[] list and DuckDB reads it 5 times faster
-- (one value per row instead of a list of 1,024); a SMALLINT[] list of the same bits was neither.
-- Exactly one of the two columns is set per row: the writer checks it (DuckLake has no CHECK).
-- Frozen history: never edit; add a migration instead.
alter table embeddings add column vector_f16 blob;
alter table embeddings alter column vector drop not null;
