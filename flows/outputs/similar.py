"""`dawnchorus similar`: the windows of a season that sound most like one example.

The query is a span of a clip (`--clip FILE [--start S --end E]`), embedded with the run's own
model, a window already in the catalog (`--window RECORDING_ID:INDEX`), or words (`--text "a frog
croaking"`), embedded by the text tower of a CLAP run's own model (audio and text share CLAP's
space; a model without a text tower is refused). The answer is the
`--top N` windows by cosine similarity, with their times, sites and the detections at them;
`--export raven --out DIR` writes them as Raven selection tables for review.

Search is a brute-force scan in memory: the run's vectors are read once through the locked-down
`CatalogReader` into one float32 matrix (`vector_matrix` decodes the float16 BLOBs stored since
schema version 12 and the float32 lists before it), normalised, and multiplied by the query.
DuckLake keeps no indexes, and an HNSW index on 100 k vectors takes minutes to build on two
cores while the scan takes milliseconds (docs/similar.md; `bench/bench_similar.py` measures 1 M).

The model is rebuilt from the settings stored with the run that wrote the embeddings, and must be
that model: the same weights digest and the same fingerprint, else the search is refused (a
vector of another model lives in another space, and its cosines mean nothing).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import fsspec
import numpy as np
import pyarrow as pa

from connectors.audio import WindowSpec, iter_windows, read_header
from connectors.catalog import CatalogReader
from connectors.catalog.reads import embedded_fingerprints, embedding_vectors, similar_hits, window_vectors
from connectors.catalog.vectors import vector_matrix
from connectors.errors import ConfigError, InputError
from flows.outputs.exports.raven import write_raven
from flows.outputs import privacy
from flows.pipeline.settings import RunSettings
from flows.pipeline.settings import config_fingerprint
from naturelm_core.backend import BackendError, describe_backend, load_backend

log = logging.getLogger(__name__)

DEFAULT_TOP = 20


@dataclass(frozen=True)
class EmbeddedRun:
    """A fingerprint with embeddings: its model, their width and the settings that made them."""

    fingerprint: str
    model_id: str
    dim: int
    vectors: int
    parameters: str | None  # JSON of the run settings (credentials masked)


@dataclass(frozen=True)
class SimilarResult:
    run: EmbeddedRun
    query: str  # what was searched for, in words
    hits: list[dict[str, Any]]  # rank, cosine, where and when, detections; best first
    withheld: str | None = None  # what the privacy gate left out (docs/privacy.md), said to the user


# ------------------------------------------------------------------------------- the scan


def normalise_rows(matrix: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """(N, D) float32 rows scaled to unit length (a zero row stays zero: cosine 0 to all).

    `in_place` reuses the matrix's memory (a season's matrix is gigabytes)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)  # (N, 1)
    out = matrix if in_place else np.zeros_like(matrix)
    return np.divide(matrix, norms, out=out, where=norms > 0)


def top_matches(unit_rows: np.ndarray, query: np.ndarray, top: int,
                exclude: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Row indexes and cosines of the `top` rows most similar to `query`, best first.

    unit_rows: (N, D) float32, unit length; query: (D,). Ties keep the lower row first.
    """
    cosines = unit_rows @ (query / max(float(np.linalg.norm(query)), 1e-30))  # (N,)
    if len(exclude):
        cosines[np.asarray(exclude, dtype=np.int64)] = -np.inf
    k = min(top, int(np.isfinite(cosines).sum()))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    candidates = np.argpartition(-cosines, k - 1)[:k] if k < len(cosines) else np.arange(len(cosines))
    order = candidates[np.lexsort((candidates, -cosines[candidates]))]
    return order, cosines[order]


# ------------------------------------------------------------------------------- the catalog


def embedded_runs(reader: CatalogReader) -> list[EmbeddedRun]:
    out = []
    for r in embedded_fingerprints(reader):
        if r.model_ids != 1:
            raise ConfigError(f"embeddings of fingerprint {r.config_fingerprint} mix "
                              f"{r.model_ids} models")
        out.append(EmbeddedRun(r.config_fingerprint, r.model_id, int(r.dim), int(r.vectors),
                               r.parameters))
    return out


def choose_run(runs: list[EmbeddedRun], fingerprint: str | None, results: str) -> EmbeddedRun:
    if not runs:
        raise ConfigError(f"{results}: no embeddings in this catalog; run `dawnchorus run "
                          "--embeddings` first")
    if fingerprint is None:
        if len(runs) > 1:
            raise ConfigError("embeddings of several fingerprints in this catalog; choose one with "
                              "--fingerprint: " + ", ".join(
                                  f"{r.fingerprint} ({r.model_id}, {r.vectors} windows)" for r in runs))
        return runs[0]
    chosen = [r for r in runs if r.fingerprint.startswith(fingerprint)]
    if len(chosen) != 1:
        raise ConfigError(f"--fingerprint {fingerprint!r} matches {len(chosen)} of the "
                          f"fingerprints with embeddings ({', '.join(r.fingerprint for r in runs)})")
    return chosen[0]


def window_query(reader: CatalogReader, run: EmbeddedRun, window: str) -> tuple[np.ndarray, str, int]:
    """The stored vector of `RECORDING_ID:INDEX` (channel 0, or the first channel)."""
    recording_id, sep, index = window.rpartition(":")
    if not sep or not recording_id or not index.isdigit():
        raise ConfigError(f"--window {window!r}: expected RECORDING_ID:INDEX (e.g. from "
                          "`dawnchorus query \"from windows\"`)")
    table = window_vectors(reader, config_fingerprint=run.fingerprint, recording_id=recording_id,
                           window_index=int(index))
    if table.num_rows == 0:
        raise ConfigError(f"--window {window}: no embedding of that window under fingerprint "
                          f"{run.fingerprint} (is it an analysed window of this run?)")
    channel = int(table.column("channel")[0].as_py())
    return vector_matrix(table.slice(0, 1), run.dim)[0], f"window {window} channel {channel}", channel


# ------------------------------------------------------------------------------- the model


def run_settings(run: EmbeddedRun) -> Any:
    """The RunSettings of the run that wrote these embeddings (fields this code lacks dropped)."""

    if not run.parameters:
        raise ConfigError(f"fingerprint {run.fingerprint}: no run recorded its settings, so its "
                          "model cannot be rebuilt; use --window to start from a stored window")
    values = json.loads(run.parameters)
    known = {k: v for k, v in values.items() if k in RunSettings.model_fields}
    return RunSettings.model_validate(known)


def rebuild_backend(run: EmbeddedRun) -> tuple[Any, Any]:
    """(settings, backend) of the run's model, refused unless it is exactly the run's model."""

    settings = run_settings(run)
    try:
        info = describe_backend(settings.model, **settings.model_options)
    except BackendError as exc:
        raise ConfigError(f"cannot rebuild the model of fingerprint {run.fingerprint} "
                          f"({run.model_id}): {exc}") from None
    if info.model_id != run.model_id:
        raise ConfigError(f"the weights the run used have changed: the embeddings are from "
                          f"{run.model_id}, the run's model options now give {info.model_id}")
    fingerprint = config_fingerprint(settings, info.model_id, info.settings)
    if fingerprint != run.fingerprint:
        raise ConfigError(f"the run's model settings have changed since it wrote its embeddings "
                          f"(fingerprint {run.fingerprint}, now {fingerprint}): its vectors and a "
                          "new query's would not be comparable")
    try:
        backend = load_backend(settings.model, **settings.model_options)
    except BackendError as exc:
        raise ConfigError(f"cannot load the model of fingerprint {run.fingerprint}: {exc}") from None
    if backend.embedding_dim != run.dim:
        raise ConfigError(f"{run.model_id} now makes {backend.embedding_dim}-d embeddings, the "
                          f"catalog holds {run.dim}-d ones")
    return settings, backend


def span_windows(start_s: float, end_s: float, window_s: float) -> list[WindowSpec]:
    """Windows of the run's length covering [start_s, end_s); the last one may be short."""
    specs, offset, index = [], start_s, 0
    while offset < end_s - 1e-9:
        duration = min(window_s, end_s - offset)
        specs.append(WindowSpec(index, offset, duration, duration < window_s))
        offset += window_s
        index += 1
    return specs


def clip_query(backend: Any, window_s: float, clip: str, start_s: float | None,
               end_s: float | None) -> tuple[np.ndarray, str]:
    """The query vector of a clip's span: the mean of its windows' unit embeddings."""

    fs, path = fsspec.core.url_to_fs(clip)
    try:
        header = read_header(fs, path, uri=clip)
    except InputError as exc:
        raise ConfigError(f"--clip {clip}: {exc}") from None
    except FileNotFoundError:
        raise ConfigError(f"--clip {clip}: no such file") from None
    start = 0.0 if start_s is None else float(start_s)
    end = min(start + window_s, header.duration_s) if end_s is None else float(end_s)
    if not (0 <= start < end <= header.duration_s + 1e-6) or not math.isfinite(end):
        raise ConfigError(f"--clip {clip}: span {start:g}-{end:g} s is not inside the clip "
                          f"(0-{header.duration_s:g} s)")
    specs = span_windows(start, min(end, header.duration_s), window_s)
    rate = backend.sample_rate_hz
    audio, valid = [], []
    try:
        for w in iter_windows(fs, path, header, specs, window_s, rate, "mean", uri=clip,
                              resampler=backend.resampler):
            if w.status != "ok":
                continue
            n = min(w.valid_samples, round(specs[w.index].duration_s * rate))  # only the span
            samples = w.samples.copy()
            samples[n:] = 0.0
            audio.append(samples)
            valid.append(n)
    except InputError as exc:
        raise ConfigError(f"--clip {clip}: {exc}") from None
    if not audio:
        raise ConfigError(f"--clip {clip}: no audio to embed between {start:g} and {end:g} s")
    vectors = np.asarray(backend.embed(np.stack(audio), np.asarray(valid, np.int64)), np.float32)
    query = normalise_rows(vectors).mean(axis=0)  # (D,)
    return query, f"{clip} {start:g}-{end:g} s ({len(audio)} window{'s' * (len(audio) > 1)})"


# ------------------------------------------------------------------------------- the search


def text_query(backend: Any, run: EmbeddedRun, text: str) -> tuple[np.ndarray, str]:
    """The query vector of words: the run's model's own text embedding (CLAP only)."""
    if not text.strip():
        raise ConfigError("--text: expected words describing the sound")
    if not hasattr(backend, "embed_text"):
        raise ConfigError(f"--text needs embeddings of a model with a text tower (CLAP); "
                          f"fingerprint {run.fingerprint} holds {run.model_id}'s")
    vector = np.asarray(backend.embed_text([text]), np.float32)[0]  # (D,)
    return vector, f"the text {text!r}"


def similar(results: str, *, clip: str | None = None, start_s: float | None = None,
            end_s: float | None = None, window: str | None = None, text: str | None = None,
            top: int = DEFAULT_TOP, config_fingerprint: str | None = None,
            deployments: Sequence[str] | None = None) -> SimilarResult:
    """The `top` windows most similar to a clip's span, a stored window or words, best first."""
    if sum(q is not None for q in (clip, window, text)) != 1:
        raise ConfigError("similar: give one of --clip FILE, --window RECORDING_ID:INDEX or "
                          "--text WORDS")
    if top < 1:
        raise ConfigError(f"--top {top}: expected at least 1")
    with CatalogReader(results) as reader:
        run = choose_run(embedded_runs(reader), config_fingerprint, results)
        table = embedding_vectors(reader, config_fingerprint=run.fingerprint,
                                  deployments=deployments)
        keys = list(zip(table.column("recording_id").to_pylist(), table.column("channel").to_pylist(),
                        table.column("window_index").to_pylist()))
        matrix = normalise_rows(vector_matrix(table, run.dim), in_place=True)  # (N, D)
        del table
        exclude: list[int] = []
        if window is not None:
            query, described, channel = window_query(reader, run, window)
            recording_id, _, index = window.rpartition(":")
            exclude = [i for i, k in enumerate(keys) if k == (recording_id, channel, int(index))]
        elif text is not None:
            _, backend = rebuild_backend(run)
            query, described = text_query(backend, run, text)
        else:
            settings, backend = rebuild_backend(run)
            query, described = clip_query(backend, settings.window_s, clip, start_s, end_s)
        gate = privacy.withheld(reader, config_fingerprint=run.fingerprint,
                                deployments=deployments)  # never return a marked window
        marked = privacy.marked_positions(keys, gate)
        rows, cosines = top_matches(matrix, query, top, sorted(set(exclude) | set(marked)))
        hit_keys = [f"{keys[i][0]}|{keys[i][1]}|{keys[i][2]}" for i in rows]
        where = {r.key: dataclasses.asdict(r) for r in similar_hits(
            reader, config_fingerprint=run.fingerprint, keys=hit_keys)}
    hits = []
    for rank, (key, cosine) in enumerate(zip(hit_keys, cosines.tolist()), start=1):
        row = where.get(key)
        if row is None:  # an embedding without its window row would be a broken commit
            raise ConfigError(f"embedding {key} has no window row under {run.fingerprint}")
        hits.append({"rank": rank, "cosine": float(cosine), **{k: v for k, v in row.items() if k != "key"}})
    log.info("similar: %s against %d windows of %s", described, len(keys), run.fingerprint)
    return SimilarResult(run, described, hits, gate.note(len(marked), "windows"))


def write_hits_raven(result: SimilarResult, out_dir: Path) -> list[Path]:
    """The hits as Raven selection tables (one per recording), for review: the label is the top
    detection at the window when there is one, else "similar"; Confidence is the cosine."""

    rows = [{
        "object_key": h["object_key"], "offset_s": h["offset_s"], "end_offset_s": h["end_offset_s"],
        "channel": h["channel"], "rank": h["rank"], "sample_rate_hz": h["sample_rate_hz"],
        "label": h["top_label"] or "similar", "scientific_name": h["top_scientific_name"],
        "score": round(h["cosine"], 6), "uri": h["uri"],
    } for h in result.hits]
    return write_raven(rows, out_dir)
