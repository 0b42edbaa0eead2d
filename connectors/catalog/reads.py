"""Every read that `flows/` does on the catalog, as a typed function: named arguments in, typed
rows (small frozen dataclasses) out, through the locked-down reader. Callers never name a `.sql`
file or build a parameter list; the statements and their parameter order stay here.

Bulk reads whose consumers work on columns (the embedding vectors of a similarity search) return
an Arrow table with the columns their docstring names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Sequence, TypeVar

import pyarrow as pa

from connectors.catalog.reader import CatalogReader
from connectors.catalog.sql_files import sql_text
from connectors.errors import ConfigError
from connectors.tables import CLASSIFIERS, RUNS, THRESHOLDS, ClassifierRow, RunRow, ThresholdRow

R = TypeVar("R")

def _rows(cls: type[R], table: pa.Table) -> list[R]:
    """`table`'s rows as `cls` instances; TypeError when the columns are not exactly its fields
    (a statement and its row type that drifted apart)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if sorted(table.column_names) != sorted(names):
        raise TypeError(f"{cls.__name__}: the statement returns {table.column_names}, "
                        f"the row type has {names}")
    return [cls(**r) for r in table.to_pylist()]


def _query(reader: CatalogReader, name: str, params: Any = None) -> pa.Table:
    return reader.query(sql_text(name), params)


# ------------------------------------------------------------------------------- runs, thresholds


def latest_run_parameters(reader: CatalogReader, config_fingerprint: str) -> str | None:
    """The settings (JSON) of the fingerprint's latest run; None when it has no run."""
    rows = _query(reader, "reads/latest_run_parameters",
                  {"config_fingerprint": config_fingerprint}).to_pylist()
    return rows[0]["parameters"] if rows else None


def runs(reader: CatalogReader) -> list[RunRow]:
    """Every run, newest first."""
    return RUNS.from_arrow(_query(reader, "reads/runs_newest_first"))


def thresholds(reader: CatalogReader) -> list[ThresholdRow]:
    """Every calibrated (or not calibrated) species, by label and fingerprint."""
    return THRESHOLDS.from_arrow(_query(reader, "reads/review/thresholds"))


def detection_count(reader: CatalogReader) -> int:
    """Detections this reader sees (its thresholds and species filters applied)."""
    return int(_query(reader, "reads/detection_count").column("n")[0].as_py())


# ------------------------------------------------------------------------------- reviews


@dataclass(frozen=True)
class LatestReview:
    """The verdict that counts (the newest) for one reviewed detection, with where it lies."""

    review_id: str
    reviewed_at: datetime
    reviewer: str
    recording_id: str
    config_fingerprint: str
    channel: int
    window_index: int
    deployment_id: str
    label: str
    scientific_name: str | None
    score: float
    verdict: str
    corrected_label: str | None
    via: str
    uri: str | None  # None: the recording changed since (its verdicts stay)
    duration_s: float | None
    sample_rate_hz: int | None
    offset_s: float | None
    window_s: float | None


def latest_reviews(reader: CatalogReader, *, config_fingerprint: str | None = None
                   ) -> list[LatestReview]:
    """The newest verdict of every reviewed detection (of one fingerprint, or of all)."""
    return _rows(LatestReview, _query(reader, "reads/review/latest_reviews",
                                      {"config_fingerprint": config_fingerprint}))


@dataclass(frozen=True)
class QueuedWindow:
    """A window offered to a reviewer: where it is, what was said of it, and the audio behind it
    (the fields every review queue shares)."""

    recording_id: str
    config_fingerprint: str
    channel: int
    window_index: int
    deployment_id: str
    site_id: str | None
    label: str
    scientific_name: str | None
    score: float
    rank: int
    offset_s: float
    window_s: float
    start_utc: datetime | None
    start_local: datetime | None
    tz_name: str | None
    object_key: str
    uri: str
    duration_s: float | None
    sample_rate_hz: int | None
    model_id: str


@dataclass(frozen=True)
class Candidate(QueuedWindow):
    """A detection nobody has reviewed yet, at its place in the stratified review queue."""

    score_bin: int
    queue_position: int


def review_candidates(reader: CatalogReader, *, min_score: float, score_bins: int,
                      deployment_id: str | None = None, label: str | None = None,
                      config_fingerprint: str | None = None, limit: int | None = None,
                      per_species: int | None = None, labels: list[str] | None = None
                      ) -> list[Candidate]:
    """The review queue: unreviewed detections scoring at least `min_score`, per fingerprint and
    species one from each of `score_bins` equal-width bins in turn; at most `limit` rows in all
    and `per_species` per fingerprint and species (None: no limit). `labels`, a target list:
    only those, in that order (None: every species, most detections first)."""
    return _rows(Candidate, _query(reader, "reads/review/candidates", {
        "min_score": min_score, "score_bins": score_bins, "deployment_id": deployment_id,
        "label": label, "config_fingerprint": config_fingerprint, "max_rows": limit,
        "per_species": per_species, "labels": labels}))


@dataclass(frozen=True)
class ReviewProgress:
    """Verdicts so far and detections pending, for one fingerprint and species."""

    config_fingerprint: str
    label: str
    reviewed: int
    correct: int
    wrong: int
    unsure: int
    other: int
    pending: int


def review_progress(reader: CatalogReader, *, min_score: float, deployment_id: str | None = None,
                    label: str | None = None, config_fingerprint: str | None = None,
                    labels: list[str] | None = None) -> list[ReviewProgress]:
    return _rows(ReviewProgress, _query(reader, "reads/review/progress", {
        "min_score": min_score, "deployment_id": deployment_id, "label": label,
        "config_fingerprint": config_fingerprint, "labels": labels}))


@dataclass(frozen=True)
class ReviewOption:
    """One choice of the review page's filters: kind deployment, label, fingerprint (detail:
    its model id) or corrected_label."""

    kind: str
    value: str
    detail: str | None


def review_options(reader: CatalogReader) -> list[ReviewOption]:
    return _rows(ReviewOption, _query(reader, "reads/review/options"))


@dataclass(frozen=True)
class WindowSource:
    """One analysed window and the recording version it was read from."""

    recording_id: str
    config_fingerprint: str
    channel: int
    window_index: int
    offset_s: float
    window_s: float
    band_low_hz: float | None  # the band the model analysed; None before schema version 11
    band_high_hz: float | None
    uri: str
    size_bytes: int | None
    etag: str | None
    mtime: datetime | None
    duration_s: float | None
    sample_rate_hz: int | None
    channels: int | None


def window_source(reader: CatalogReader, *, recording_id: str, config_fingerprint: str,
                  channel: int, window_index: int) -> WindowSource | None:
    found = _rows(WindowSource, _query(reader, "reads/review/window", {
        "recording_id": recording_id, "config_fingerprint": config_fingerprint,
        "channel": channel, "window_index": window_index}))
    return found[0] if found else None


@dataclass(frozen=True)
class Detection:
    """The best score of one label in one window (the detection a verdict is about)."""

    recording_id: str
    config_fingerprint: str
    channel: int
    window_index: int
    deployment_id: str
    label: str
    score: float


def detection(reader: CatalogReader, *, recording_id: str, config_fingerprint: str, channel: int,
              window_index: int, label: str) -> Detection | None:
    found = _rows(Detection, _query(reader, "reads/review/detection", {
        "recording_id": recording_id, "config_fingerprint": config_fingerprint,
        "channel": channel, "window_index": window_index, "label": label}))
    return found[0] if found else None


@dataclass(frozen=True)
class SelectionQuery:
    """One row of an imported Raven selection table, as the catalog is asked about it."""

    selection: int
    begin_path: str  # the recording's uri
    raven_channel: int  # 1 = the mean of all channels, or channel 1
    file_offset_s: float
    label: str
    config_fingerprint: str | None  # None: any


@dataclass(frozen=True)
class SelectionMatch:
    """A detection a selection-table row names (several when several fingerprints match)."""

    selection: int
    recording_id: str
    config_fingerprint: str
    channel: int
    window_index: int
    deployment_id: str
    label: str
    score: float


def match_selections(reader: CatalogReader, selections: Sequence[SelectionQuery]
                     ) -> list[SelectionMatch]:
    """The detections the rows of a Raven selection table name, by selection number."""
    return _rows(SelectionMatch, _query(reader, "reads/review/match_selections", {
        "selections": [s.selection for s in selections],
        "begin_paths": [s.begin_path for s in selections],
        "raven_channels": [s.raven_channel for s in selections],
        "file_offsets_s": [s.file_offset_s for s in selections],
        "labels": [s.label for s in selections],
        "fingerprints": [s.config_fingerprint for s in selections]}))


# ------------------------------------------------------------------------------- similarity


@dataclass(frozen=True)
class EmbeddedFingerprint:
    """A fingerprint with embeddings: its model(s), vector width and its latest run's settings.

    `dim` is the width of one stored vector: the commit refuses a unit whose vectors differ in
    width, and every read of vectors checks each one against `dim` (`vector_matrix`), so the
    width is not measured over the whole table (that reads every vector: 3 s per million)."""

    config_fingerprint: str
    model_id: str
    model_ids: int
    vectors: int
    parameters: str | None
    dim: int


def embedded_fingerprints(reader: CatalogReader) -> list[EmbeddedFingerprint]:
    out = []
    for row in _query(reader, "reads/similar/embedded_fingerprints").to_pylist():
        (width,) = _query(reader, "reads/similar/vector_width",
                          {"config_fingerprint": row["config_fingerprint"]}).to_pylist()
        out.append(EmbeddedFingerprint(**row, dim=int(width["dim"])))
    return out


def window_vectors(reader: CatalogReader, *, config_fingerprint: str, recording_id: str,
                   window_index: int) -> pa.Table:
    """The stored vectors of one window, by channel: columns channel, vector."""
    return _query(reader, "reads/similar/window_vector", {
        "config_fingerprint": config_fingerprint, "recording_id": recording_id,
        "window_index": window_index})


def embedding_vectors(reader: CatalogReader, *, config_fingerprint: str,
                      deployments: Sequence[str] | None = None) -> pa.Table:
    """Every vector of a fingerprint (of some deployments): columns recording_id, channel,
    window_index, vector (Arrow: a season holds millions)."""
    return _query(reader, "reads/similar/vectors", {
        "config_fingerprint": config_fingerprint,
        "deployments": list(deployments) if deployments else None})


@dataclass(frozen=True)
class SimilarHit:
    """A window a similarity search found, with where it is and what was detected in it."""

    key: str  # recording_id|channel|window_index
    deployment_id: str
    site_id: str
    recording_id: str
    uri: str
    object_key: str
    sample_rate_hz: int | None
    channel: int
    window_index: int
    offset_s: float
    end_offset_s: float
    start_utc: datetime | None
    start_local: datetime | None
    detections: str | None
    top_label: str | None
    top_scientific_name: str | None


def similar_hits(reader: CatalogReader, *, config_fingerprint: str, keys: Sequence[str]
                 ) -> list[SimilarHit]:
    """The windows `keys` (recording_id|channel|window_index) name, under one fingerprint."""
    return _rows(SimilarHit, _query(reader, "reads/similar/hits", {
        "config_fingerprint": config_fingerprint, "keys": list(keys)}))


# ------------------------------------------------------------------------------- exports


def export_detections(reader: CatalogReader, *, config_fingerprint: str,
                      deployments: Sequence[str] | None = None,
                      species: Sequence[str] | None = None, date_from: date | None = None,
                      date_to: date | None = None, light_classes: Sequence[str] | None = None,
                      qc: str = "include") -> list[dict[str, Any]]:
    """The detections an export writes (the `detections` view's columns), of some deployments,
    species (scientific or common names, any case), local dates and light classes; with
    qc="exclude", not those of windows that failed quality (`docs/effort.md`)."""
    return _query(reader, "reads/exports/detections", {
        "config_fingerprint": config_fingerprint,
        "deployments": list(deployments) if deployments else None,
        "species": [s.lower() for s in species] if species else None,
        "date_from": date_from, "date_to": date_to,
        "light_classes": list(light_classes) if light_classes else None,
        "qc": _qc_choice(qc)}).to_pylist()


def export_effort(reader: CatalogReader, *, config_fingerprint: str,
                  deployments: Sequence[str] | None = None, date_from: date | None = None,
                  date_to: date | None = None, light_classes: Sequence[str] | None = None,
                  qc: str = "exclude") -> list[dict[str, Any]]:
    """Recording effort per deployment and local day (occupancy exports), of windows in these
    light classes (None: all); with qc="exclude" windows that failed quality are not effort
    (`windows_qc_failed` counts them)."""
    return _query(reader, "reads/exports/effort", {
        "config_fingerprint": config_fingerprint,
        "deployments": list(deployments) if deployments else None,
        "date_from": date_from, "date_to": date_to,
        "light_classes": list(light_classes) if light_classes else None,
        "qc": _qc_choice(qc)}).to_pylist()


#: What an effort read does with windows whose quality verdict is not ok (docs/effort.md).
QC_CHOICES = ("exclude", "include")


def _qc_choice(qc: str) -> str:
    if qc not in QC_CHOICES:
        raise ConfigError(f"qc {qc!r}: expected one of {', '.join(QC_CHOICES)}")
    return qc


def export_sites(reader: CatalogReader, *, deployments: Sequence[str] | None = None
                 ) -> list[dict[str, Any]]:
    """Sites and their covariates (occupancy exports)."""
    return _query(reader, "reads/exports/sites", {
        "deployments": list(deployments) if deployments else None}).to_pylist()


def camtrap_deployments(reader: CatalogReader, *, deployments: Sequence[str] | None = None
                        ) -> list[dict[str, Any]]:
    """Deployments as Camtrap DP describes them."""
    return _query(reader, "reads/exports/camtrap_deployments", {
        "deployments": list(deployments) if deployments else None}).to_pylist()


def camtrap_media(reader: CatalogReader, *, deployments: Sequence[str] | None = None
                  ) -> list[dict[str, Any]]:
    """Recordings as Camtrap DP media."""
    return _query(reader, "reads/exports/camtrap_media", {
        "deployments": list(deployments) if deployments else None}).to_pylist()


# ------------------------------------------------------------------------------- learn, density


def learn_embedded_windows(reader: CatalogReader, *, config_fingerprint: str) -> pa.Table:
    """The windows of `config_fingerprint` that have embeddings, with where they lie in their
    recording (recording_id, channel, window_index, deployment_id, offset_s, ...): what Raven
    selections and verdicts are mapped onto. A table: a season holds a million of them."""
    return _query(reader, "reads/learn/embedded_windows", {"config_fingerprint": config_fingerprint})


def learn_vectors(reader: CatalogReader, *, config_fingerprint: str, keys: Sequence[str]) -> pa.Table:
    """Columns `key` ('recording_id|channel|window_index') and `vector`: the stored vectors of
    the windows asked for (a classifier's training set)."""
    return _query(reader, "reads/learn/vectors",
                  {"config_fingerprint": config_fingerprint, "keys": list(keys)})


def label_fingerprints(reader: CatalogReader, *, label: str) -> list[str]:
    """The fingerprints with classify answers of `label` (compared lower-case)."""
    table = _query(reader, "reads/learn/label_fingerprints", {"label": label})
    return table.column("config_fingerprint").to_pylist()


def density_windows(reader: CatalogReader, *, config_fingerprint: str, label: str) -> list[dict[str, Any]]:
    """Every analysed window of the fingerprint with its score for `label` (0 where the model gave
    it none) and the verdict that counts on it: call density's input."""
    return _query(reader, "reads/learn/density_windows",
                  {"config_fingerprint": config_fingerprint, "label": label}).to_pylist()


def density_sample(reader: CatalogReader, *, config_fingerprint: str, label: str,
                   keys: Sequence[str]) -> list[dict[str, Any]]:
    """The sample windows (keys 'recording_id|channel|window_index') as detections of `label`,
    for a review table."""
    return _query(reader, "reads/learn/density_sample",
                  {"config_fingerprint": config_fingerprint, "label": label, "keys": list(keys)}).to_pylist()


# ------------------------------------------------------------------------------- privacy gate


def current_setting(reader: CatalogReader, *, key: str) -> str | None:
    """One catalog setting as the catalog holds it now (None when unset), not as it was when
    this reader opened."""
    rows = _query(reader, "reads/privacy/gate", {"key": key}).to_pylist()
    return rows[0]["value"] if rows else None


@dataclass(frozen=True)
class SpeechWindow:
    """A window the privacy gate marked as human speech (`docs/privacy.md`)."""

    recording_id: str
    deployment_id: str
    config_fingerprint: str
    channel: int
    window_index: int
    offset_s: float
    window_s: float
    speech_s: float
    model_speech_score: float | None


def speech_windows(reader: CatalogReader, *, config_fingerprint: str | None = None,
                   recording_ids: Sequence[str] | None = None,
                   deployments: Sequence[str] | None = None) -> list[SpeechWindow]:
    """The marked windows of a fingerprint (None: any), some recordings and deployments."""
    return _rows(SpeechWindow, _query(reader, "reads/privacy/speech_windows", {
        "config_fingerprint": config_fingerprint,
        "recording_ids": list(recording_ids) if recording_ids is not None else None,
        "deployments": list(deployments) if deployments else None}))


@dataclass(frozen=True)
class SpeechCount:
    """Windows of one deployment and fingerprint checked for speech, marked, and not checked."""

    deployment_id: str
    config_fingerprint: str
    windows: int
    windows_checked: int
    windows_marked: int
    windows_not_checked: int


def speech_counts(reader: CatalogReader, *, config_fingerprint: str | None = None,
                  run_id: str | None = None) -> list[SpeechCount]:
    return _rows(SpeechCount, _query(reader, "reads/privacy/speech_counts", {
        "config_fingerprint": config_fingerprint, "run_id": run_id}))


# ------------------------------------------------------------------------------- classifiers


def classifiers(reader: CatalogReader) -> list[ClassifierRow]:
    """Every classifier version, by name and version."""
    return CLASSIFIERS.from_arrow(_query(reader, "reads/classifiers"))


@dataclass(frozen=True)
class ClassifierStatus:
    """A classifier's newest version as the review page shows it: examples, cross-validated
    metrics (None: too few examples to cross-validate), versions, verdicts since."""

    name: str
    classifier_id: str
    version: int
    label: str
    config_fingerprint: str
    embedding_fingerprint: str
    embedding_model_id: str
    n_positive: int
    n_negative: int
    n_weak_negative: int
    cv_folds: int | None
    cv_precision: float | None
    cv_recall: float | None
    cv_roc_auc: float | None
    created_at: datetime
    created_by: str
    versions: int
    new_verdicts: int  # verdicts on its label since the newest version was trained


def classifier_status(reader: CatalogReader) -> list[ClassifierStatus]:
    """One row per classifier name (its newest version), by name."""
    return _rows(ClassifierStatus, _query(reader, "reads/learn/classifier_status"))


@dataclass(frozen=True)
class LearnCandidate(QueuedWindow):
    """A window a classifier's newest version scored and nobody has judged, at its place in the
    active-learning queue (`pick`: uncertain or top; `turn` orders the queue)."""

    pick: str
    turn: int


def learn_queue(reader: CatalogReader, *, name: str, labelled: Sequence[str] = (),
                limit: int | None = None) -> list[LearnCandidate]:
    """The active-learning queue of classifier `name` (see sql/reads/learn/queue.sql for the
    order): unjudged windows of its newest version, most uncertain and top-scoring in turn;
    `labelled` ('recording_id|channel|window_index') are examples already and left out."""
    return _rows(LearnCandidate, _query(reader, "reads/learn/queue", {
        "name": name, "labelled": list(labelled), "max_rows": limit}))
