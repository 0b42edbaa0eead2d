"""The catalog's tables, each defined once: a frozen row dataclass whose fields are the columns.

Every field carries its Arrow type and a description (`column(...)`), so the one definition gives
the Arrow schema writers build batches with, the SQL type a test checks the catalog against
(`tests/connectors/test_catalog_schema.py`), and the column list of `docs/tables.md` (checked by the same
test). The DDL history that creates and upgrades these tables lives in `sql/migrations/`; the
schema test proves that a catalog at the newest version has exactly these columns and types.

Callers build rows as dataclasses (`WindowRow(...)`) and hand them to `connectors.catalog`; no
caller spells a column name as a string or writes SQL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Generic, Iterable, Sequence, TypeVar

import pyarrow as pa

Row = TypeVar("Row")

UTC_TIME = pa.timestamp("us", tz="UTC")
WALL_TIME = pa.timestamp("us")


_REQUIRED: Any = dataclasses.MISSING


def column(arrow_type: pa.DataType, doc: str, *, nullable: bool = True,
           default: Any = _REQUIRED) -> Any:
    """A dataclass field that is a catalog column of `arrow_type`, described by `doc`.

    A `default` lets callers that predate a column leave it out (new columns at a row's end).
    """
    return dataclasses.field(default=default,
                             metadata={"arrow": arrow_type, "doc": doc, "nullable": nullable})


#: Arrow type -> the SQL type DuckDB reports for it (DuckLake keeps DuckDB's types).
_SQL_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.binary(): "BLOB",
    pa.date32(): "DATE",
    UTC_TIME: "TIMESTAMP WITH TIME ZONE",
    WALL_TIME: "TIMESTAMP",
}


def sql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return sql_type(arrow_type.value_type) + "[]"
    return _SQL_TYPES[arrow_type]


@dataclass(frozen=True)
class Column:
    name: str
    arrow_type: pa.DataType
    doc: str
    nullable: bool

    @property
    def sql_type(self) -> str:
        return sql_type(self.arrow_type)


@dataclass(frozen=True)
class Table(Generic[Row]):
    """One catalog table: its name, its row dataclass, its grain and its partitioning."""

    name: str
    row: type[Row]
    grain: str
    partitioned_by: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[Column, ...]:
        return tuple(
            Column(f.name, f.metadata["arrow"], f.metadata["doc"], f.metadata["nullable"])
            for f in dataclasses.fields(self.row)  # type: ignore[arg-type]
        )

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in self.columns])

    def to_arrow(self, rows: Iterable[Row]) -> pa.Table:
        """Rows of this table as an Arrow table with exactly the table's schema."""
        rows = list(rows)
        for r in rows:
            if not isinstance(r, self.row):
                raise TypeError(f"{self.name}: expected {self.row.__name__} rows, got {type(r).__name__}")
        data = {c.name: [getattr(r, c.name) for r in rows] for c in self.columns}
        return pa.table(data, schema=self.schema)

    def conform(self, columns: dict[str, Any]) -> pa.Table:
        """Columnar data (name -> array) as an Arrow table with exactly the table's schema: the
        nullable columns not given are null, in the table's order; a missing required column is
        a ValueError naming it. For bulk writers that build columns, not rows (the benchmarks):
        a column added by a later migration does not break them."""
        missing = [c.name for c in self.columns if c.name not in columns and not c.nullable]
        if missing:
            raise ValueError(f"{self.name}: required columns not given: {', '.join(missing)}")
        unknown = sorted(set(columns) - {c.name for c in self.columns})
        if unknown:
            raise ValueError(f"{self.name}: no such columns: {', '.join(unknown)}")
        rows = len(next(iter(columns.values()))) if columns else 0
        return pa.table({c.name: columns.get(c.name, pa.nulls(rows, c.arrow_type))
                         for c in self.columns}, schema=self.schema)

    def from_arrow(self, table: pa.Table) -> list[Row]:
        """Typed rows from an Arrow table holding (at least) this table's columns."""
        names = [c.name for c in self.columns]
        return [self.row(**{n: r[n] for n in names}) for r in table.select(names).to_pylist()]


# ------------------------------------------------------------------------------------ rows


@dataclass(frozen=True)
class DeploymentRow:
    """One field deployment: one recorder at one site for one period."""

    deployment_id: str = column(pa.string(), "the first folder under the source root", nullable=False)
    site_id: str | None = column(pa.string(), "from deployments.csv")
    latitude: float | None = column(pa.float64(), "decimal degrees, WGS 84")
    longitude: float | None = column(pa.float64(), "decimal degrees, WGS 84")
    recorder: str | None = column(pa.string(), "free text, e.g. AudioMoth 1.2")
    timezone: str | None = column(pa.string(), "IANA zone of the site: local times, nights, diel analyses")
    start_utc: datetime | None = column(UTC_TIME, "deployment start, if given")
    end_utc: datetime | None = column(UTC_TIME, "deployment end, if given")
    extra: str | None = column(pa.string(), "JSON object of any further deployments.csv columns")
    updated_run_id: str | None = column(pa.string(), "the run that last wrote this row")
    clock_timezone: str | None = column(
        pa.string(), "zone of the recorder's clock, for naive file-name and header times")
    species_include: list[str] | None = column(
        pa.list_(pa.string()), "only these species are detections here (lower-case names); "
        "NULL = every species", default=None)
    species_exclude: list[str] | None = column(
        pa.list_(pa.string()), "these species are never detections here (lower-case names)",
        default=None)


@dataclass(frozen=True)
class RecordingRow:
    """One version of one recording file (a changed file is a new recording_id)."""

    recording_id: str = column(pa.string(), "hash of uri + size + ETag/mtime", nullable=False)
    deployment_id: str = column(pa.string(), "", nullable=False)
    uri: str = column(pa.string(), "full URI: s3://... or an absolute path", nullable=False)
    object_key: str = column(pa.string(), "path below the source root", nullable=False)
    size_bytes: int | None = column(pa.int64(), "size when discovered (change detection)")
    etag: str | None = column(pa.string(), "S3 ETag when discovered (change detection)")
    mtime: datetime | None = column(UTC_TIME, "modification time when discovered")
    duration_s: float | None = column(pa.float64(), "from the header")
    frames: int | None = column(pa.int64(), "frames per channel the header declares")
    sample_rate_hz: int | None = column(pa.int32(), "native sample rate")
    channels: int | None = column(pa.int32(), "channel count")
    format: str | None = column(pa.string(), "WAV, FLAC, MP3, OGG ...")
    subtype: str | None = column(pa.string(), "PCM_16, FLOAT, VORBIS ...")
    start_utc: datetime | None = column(UTC_TIME, "recording start; NULL when nothing gives it")
    tz_name: str | None = column(pa.string(), "zone for local times (the deployment's site zone)")
    time_source: str | None = column(pa.string(), "what gave the start time")
    tz_source: str | None = column(
        pa.string(), "which rule fixed the clock's offset: filename, audiomoth_comment, guano, "
        "clock_timezone, recorder_convention, assumed_utc or unknown (docs/time.md)")
    status: str = column(pa.string(), "ok (readable) or failed (header unreadable)", nullable=False)
    error: str | None = column(pa.string(), "why it is unreadable")
    run_id: str = column(pa.string(), "the run that discovered this version", nullable=False)
    discovered_at: datetime | None = column(UTC_TIME, "when it was discovered")
    time_conflict_s: float | None = column(
        pa.float64(), "another start-time source minus the one used, seconds, when they disagree "
        "beyond the tolerance (docs/source.md); NULL otherwise", default=None)
    warnings: list[str] | None = column(
        pa.list_(pa.string()), "the source check's warnings about this file when it was "
        "registered (code: text): beyond_model_band, time_conflict, metadata_refused (its "
        "header's time or offset, refused as impossible); NULL = none", default=None)

    @property
    def version_tag(self) -> str:
        """What change detection compares besides the size (as `storage.SourceObject`)."""
        if self.etag:
            return self.etag
        return self.mtime.isoformat() if self.mtime is not None else ""


@dataclass(frozen=True)
class WindowRow:
    """One planned window of one recording and channel under one fingerprint: the effort table
    and the resume journal."""

    run_id: str = column(pa.string(), "the run that analysed it", nullable=False)
    config_fingerprint: str = column(pa.string(), "hash of everything that changes answers", nullable=False)
    recording_id: str = column(pa.string(), "", nullable=False)
    deployment_id: str = column(pa.string(), "", nullable=False)
    channel: int = column(pa.int16(), "0 = mean of all channels; 1..N = that channel", nullable=False)
    window_index: int = column(pa.int32(), "0-based position in the recording", nullable=False)
    offset_s: float = column(pa.float64(), "window start from the start of the file", nullable=False)
    window_s: float = column(pa.float64(), "nominal window length", nullable=False)
    duration_s: float = column(pa.float64(), "seconds of real audio in the window", nullable=False)
    start_utc: datetime | None = column(UTC_TIME, "recording start + offset_s")
    start_local: datetime | None = column(WALL_TIME, "start_utc as wall-clock time in tz_name")
    date: date | None = column(pa.date32(), "UTC date of start_utc (partition key)")
    status: str = column(pa.string(), "ok, empty or failed", nullable=False)
    padded: bool = column(pa.bool_(), "the window runs past the real end of the audio", nullable=False)
    error: str | None = column(pa.string(), "why it failed")
    # Quality per window (connectors/audio_qc.py, docs/effort.md): measured on the samples as
    # decoded, for windows with audio; NULL for the others and for windows analysed before
    # schema version 9.
    rms_dbfs: float | None = column(pa.float64(), "RMS level of the audio the model was given "
                                    "(dB re full scale)", default=None)
    peak_dbfs: float | None = column(pa.float64(), "largest absolute sample of any channel "
                                     "(dB re full scale)", default=None)
    clipped_fraction: float | None = column(pa.float64(), "fraction of frames at 0.999 of the "
                                            "format's full scale or beyond", default=None)
    zero_run_s: float | None = column(pa.float64(), "longest run of exact zeros inside the "
                                      "audio, seconds", default=None)
    qc: str | None = column(pa.string(), "ok, silent, dropout or clipped; NULL = not measured",
                            default=None)
    # The band the model analysed (docs/bat-analyses.md, "Band-aware effort"): the backend's
    # band_hz, its top cut to the recording's Nyquist frequency where that is lower. NULL for
    # windows analysed before schema version 11.
    band_low_hz: float | None = column(pa.float64(), "lowest frequency the model analysed in "
                                       "this window, Hz", default=None)
    band_high_hz: float | None = column(pa.float64(), "highest frequency the model analysed in "
                                        "this window (at most the recording's Nyquist), Hz",
                                        default=None)


@dataclass(frozen=True)
class PredictionRow:
    """One answer of a model to one task about one window and channel."""

    run_id: str = column(pa.string(), "", nullable=False)
    model_id: str = column(pa.string(), "model name + weights digest", nullable=False)
    config_fingerprint: str = column(pa.string(), "", nullable=False)
    recording_id: str = column(pa.string(), "", nullable=False)
    deployment_id: str = column(pa.string(), "", nullable=False)
    channel: int = column(pa.int16(), "", nullable=False)
    window_index: int = column(pa.int32(), "", nullable=False)
    offset_s: float = column(pa.float64(), "", nullable=False)
    start_utc: datetime | None = column(UTC_TIME, "")
    start_local: datetime | None = column(WALL_TIME, "")
    date: date | None = column(pa.date32(), "")
    task: str = column(pa.string(), "detect or classify", nullable=False)
    prompt_id: str = column(pa.string(), "which prompt or model head answered", nullable=False)
    rank: int = column(pa.int32(), "1 = the best answer for this window and task", nullable=False)
    answer_text: str | None = column(pa.string(), "raw answer: model text or label")
    label: str | None = column(pa.string(), "normalised: common name; animal for detect")
    scientific_name: str | None = column(pa.string(), "NULL when not a known species")
    score: float = column(pa.float64(), "probability in [0, 1], always finite", nullable=False)
    # A call the model located (event models: BatDetect2); NULL for window-level answers and for
    # rows written before schema version 11. Times are seconds from the start of the recording
    # (as offset_s), so calls of overlapping windows and of a pass share one time line.
    call_start_s: float | None = column(pa.float64(), "call start from the start of the "
                                        "recording, s", default=None)
    call_end_s: float | None = column(pa.float64(), "call end from the start of the "
                                      "recording, s", default=None)
    low_freq_hz: float | None = column(pa.float64(), "the call's lowest frequency, Hz",
                                       default=None)
    high_freq_hz: float | None = column(pa.float64(), "the call's highest frequency, Hz",
                                        default=None)
    detection_score: float | None = column(pa.float64(), "probability that there is a call at "
                                           "all, in [0, 1] (score: the class probability)",
                                           default=None)


@dataclass(frozen=True)
class EmbeddingRow:
    """One audio embedding of one analysed window and channel, under one fingerprint.

    Stored as float16 since schema version 12 (`connectors.catalog.vectors`): the writer turns a
    float32 `vector` into `vector_f16`; readers decode both kinds of row."""

    run_id: str = column(pa.string(), "", nullable=False)
    model_id: str = column(pa.string(), "the model that embedded it (name + weights digest)",
                           nullable=False)
    config_fingerprint: str = column(pa.string(), "the run's fingerprint (embedding settings "
                                     "included)", nullable=False)
    recording_id: str = column(pa.string(), "", nullable=False)
    deployment_id: str = column(pa.string(), "", nullable=False)
    channel: int = column(pa.int16(), "", nullable=False)
    window_index: int = column(pa.int32(), "", nullable=False)
    offset_s: float = column(pa.float64(), "", nullable=False)
    start_utc: datetime | None = column(UTC_TIME, "")
    date: date | None = column(pa.date32(), "UTC date of start_utc (partition key)")
    vector: Any = column(pa.list_(pa.float32()), "the embedding as float32, the model's "
                         "embedding width, finite; compare with cosine. Rows written before "
                         "schema version 12 (and a vector float16 cannot hold) keep it here; "
                         "newer rows hold NULL and `vector_f16`. A row given to the writer "
                         "with `vector` set is stored as float16")
    vector_f16: bytes | None = column(pa.binary(), "the embedding as little-endian IEEE float16 "
                                      "values, 2 bytes each (schema version 12; NULL where "
                                      "`vector` holds it); the `embedding_vectors` view shows "
                                      "either as a FLOAT[] list", default=None)


@dataclass(frozen=True)
class RunRow:
    """One flow run."""

    STATUSES: ClassVar[tuple[str, ...]] = ("running", "completed", "failed", "interrupted")

    run_id: str = column(pa.string(), "YYYYMMDDTHHMMSSZ-xxxxxxxx", nullable=False)
    flow: str = column(pa.string(), "nightly or backfill", nullable=False)
    started_at: datetime = column(UTC_TIME, "", nullable=False)
    finished_at: datetime | None = column(UTC_TIME, "")
    status: str = column(pa.string(), "running, completed, failed or interrupted", nullable=False)
    parameters: str | None = column(pa.string(), "JSON of the run settings, credentials removed")
    config_fingerprint: str | None = column(pa.string(), "")
    model_id: str | None = column(pa.string(), "")
    code_version: str | None = column(pa.string(), "dawnchorus version")
    counts: str | None = column(pa.string(), "JSON: recordings, units, windows, predictions, skipped paths")
    host: str | None = column(pa.string(), "machine the run's driver ran on")
    pid: int | None = column(pa.int64(), "process id of the run's driver")
    interrupted_at: datetime | None = column(UTC_TIME, "when a later run noticed this one had died")
    warnings: list[str] | None = column(
        pa.list_(pa.string()), "the source check's warnings, as printed in the run header "
        "(docs/source.md); NULL = none", default=None)


@dataclass(frozen=True)
class SpeciesOccurrenceRow:
    """BirdNET's meta-model answer for one species at one deployment in one BirdNET week."""

    deployment_id: str = column(pa.string(), "", nullable=False)
    week: int = column(pa.int16(), "BirdNET week 1-48 (four per month) of the windows' local date",
                       nullable=False)
    scientific_name: str = column(pa.string(), "BirdNET's name of the species", nullable=False)
    label: str = column(pa.string(), "BirdNET's common name", nullable=False)
    occurrence: float = column(pa.float64(), "probability of occurrence, in [0, 1]", nullable=False)
    latitude: float = column(pa.float64(), "the deployment's latitude the model was asked about",
                             nullable=False)
    longitude: float = column(pa.float64(), "the deployment's longitude the model was asked about",
                              nullable=False)
    model_id: str = column(pa.string(), "meta-model file + digest", nullable=False)
    run_id: str = column(pa.string(), "the run that asked the model", nullable=False)


@dataclass(frozen=True)
class SettingRow:
    """A catalog-wide setting (detection_threshold, schema_version, views_sha256)."""

    key: str = column(pa.string(), "", nullable=False)
    value: str = column(pa.string(), "", nullable=False)


@dataclass(frozen=True)
class SettingChangeRow:
    """One change of a catalog setting: who made it and when (`dawnchorus thresholds --set`)."""

    key: str = column(pa.string(), "the setting changed", nullable=False)
    value: str = column(pa.string(), "its new value", nullable=False)
    changed_by: str = column(pa.string(), "who changed it (--by, else the user name)", nullable=False)
    changed_at: datetime = column(UTC_TIME, "when", nullable=False)


@dataclass(frozen=True)
class ReviewRow:
    """One person's verdict on one detection: a window's classify answer for one label.

    Rows are only ever added: a changed mind is a newer row, and the newest row per detection
    (window key + label) is the verdict that counts.
    """

    VERDICTS: ClassVar[tuple[str, ...]] = ("correct", "wrong", "unsure", "other")
    VIAS: ClassVar[tuple[str, ...]] = ("page", "raven")

    review_id: str = column(pa.string(), "random id of this verdict", nullable=False)
    reviewed_at: datetime = column(UTC_TIME, "when the verdict was given", nullable=False)
    reviewer: str = column(pa.string(), "who gave it", nullable=False)
    recording_id: str = column(
        pa.string(), "the window: recording_id, config_fingerprint, channel and window_index, "
        "as in windows", nullable=False)
    config_fingerprint: str = column(pa.string(), "", nullable=False)
    channel: int = column(pa.int16(), "", nullable=False)
    window_index: int = column(pa.int32(), "", nullable=False)
    deployment_id: str = column(pa.string(), "", nullable=False)
    label: str = column(pa.string(), "the model's label that was reviewed", nullable=False)
    score: float = column(pa.float64(), "the model's score for that label", nullable=False)
    verdict: str = column(pa.string(), "correct, wrong, unsure or other (another species)",
                          nullable=False)
    corrected_label: str | None = column(pa.string(), "for verdict other: the species heard")
    via: str = column(pa.string(), "page (the review page) or raven (a Raven table import)",
                      nullable=False)


@dataclass(frozen=True)
class ThresholdRow:
    """One species' calibrated threshold under one fingerprint (`dawnchorus calibrate`)."""

    STATUSES: ClassVar[tuple[str, ...]] = (
        "calibrated", "too_few_reviews", "one_outcome", "separated", "not_increasing")

    config_fingerprint: str = column(pa.string(), "", nullable=False)
    label: str = column(pa.string(), "the species, as predictions.label", nullable=False)
    target_precision: float = column(pa.float64(), "the probability of being correct asked for",
                                     nullable=False)
    threshold: float | None = column(
        pa.float64(), "score at which P(correct) reaches the target; NULL: not calibrated")
    status: str = column(pa.string(), "calibrated, or why not", nullable=False)
    n_reviewed: int = column(pa.int64(), "verdicts fitted: correct, wrong and other", nullable=False)
    n_correct: int = column(pa.int64(), "of which correct", nullable=False)
    n_unsure: int = column(pa.int64(), "unsure verdicts (left out of the fit)", nullable=False)
    min_reviews: int = column(pa.int32(), "fewest verdicts calibrate would fit", nullable=False)
    intercept: float | None = column(pa.float64(), "fit: P(correct) = sigmoid(intercept + slope * logit(score))")
    slope: float | None = column(pa.float64(), "fit: change in log-odds of correct per unit logit(score)")
    slope_se: float | None = column(pa.float64(), "standard error of the slope (observed information)")
    log_likelihood: float | None = column(pa.float64(), "of the fit")
    null_log_likelihood: float | None = column(pa.float64(), "of a constant P(correct)")
    iterations: int | None = column(pa.int32(), "Newton steps to converge")
    score_min: float | None = column(pa.float64(), "lowest reviewed score")
    score_max: float | None = column(pa.float64(), "highest reviewed score")
    calibrated_at: datetime = column(UTC_TIME, "when calibrate wrote this row", nullable=False)


@dataclass(frozen=True)
class ClassifierRow:
    """One version of a classifier learned from examples on stored embeddings (`dawnchorus
    learn`): a linear model P(label) = sigmoid(weights . vector/|vector| + bias), applied like
    any model (its predictions carry `config_fingerprint` and `model_id` below)."""

    classifier_id: str = column(pa.string(), "name@version, unique", nullable=False)
    name: str = column(pa.string(), "the classifier's name (default: the label)", nullable=False)
    version: int = column(pa.int32(), "1, 2, ...: each retraining of a name adds a version",
                          nullable=False)
    label: str = column(pa.string(), "the sound it recognises, as its predictions' label",
                        nullable=False)
    model_id: str = column(pa.string(), "its predictions' model_id: classifier:NAME@sha256:DIGEST",
                           nullable=False)
    config_fingerprint: str = column(pa.string(), "its predictions' fingerprint (the embedding "
                                     "fingerprint and the weights' digest)", nullable=False)
    digest: str = column(pa.string(), "sha256 of label, embedding fingerprint, weights and bias",
                         nullable=False)
    embedding_fingerprint: str = column(pa.string(), "the fingerprint of the embeddings it reads",
                                        nullable=False)
    embedding_model_id: str = column(pa.string(), "the model that made those embeddings",
                                     nullable=False)
    weights: list[float] = column(pa.list_(pa.float64()), "one weight per embedding dimension, "
                                  "on the stored vector scaled to unit length",
                                  nullable=False)
    bias: float = column(pa.float64(), "the intercept", nullable=False)
    scheme: str = column(pa.string(), "JSON: estimator, negatives scheme, weak-negative weight "
                         "and count, class weights, regularisation", nullable=False)
    examples: str = column(pa.string(), "JSON list of the labelled windows used: recording_id, "
                           "channel, window_index, positive, source", nullable=False)
    n_positive: int = column(pa.int32(), "positive windows", nullable=False)
    n_negative: int = column(pa.int32(), "windows labelled negative (reviewed wrong, other "
                             "annotations)", nullable=False)
    n_weak_negative: int = column(pa.int32(), "unlabelled windows used as weak negatives",
                                  nullable=False)
    cv_folds: int | None = column(pa.int32(), "cross-validation folds (NULL: too few examples)")
    cv_precision: float | None = column(pa.float64(), "cross-validated precision at 0.5")
    cv_recall: float | None = column(pa.float64(), "cross-validated recall at 0.5")
    cv_roc_auc: float | None = column(pa.float64(), "cross-validated ROC AUC")
    metrics: str = column(pa.string(), "JSON of the cross-validation (counts, what was scored)",
                          nullable=False)
    created_at: datetime = column(UTC_TIME, "when it was trained", nullable=False)
    created_by: str = column(pa.string(), "who trained it", nullable=False)


@dataclass(frozen=True)
class SolarDayRow:
    """The sun's events of one local day at one deployment (astral, `flows.pipeline.solar`)."""

    deployment_id: str = column(pa.string(), "", nullable=False)
    local_date: date = column(pa.date32(), "the day, in the recordings' zone", nullable=False)
    tz_name: str = column(pa.string(), "the zone that day is local to", nullable=False)
    latitude: float = column(pa.float64(), "the deployment's latitude it was computed for", nullable=False)
    longitude: float = column(pa.float64(), "the deployment's longitude it was computed for", nullable=False)
    sunrise_utc: datetime | None = column(UTC_TIME, "upper limb at the horizon with refraction; NULL "
                                          "on a polar day or night")
    sunset_utc: datetime | None = column(UTC_TIME, "as sunrise; NULL on a polar day or night")
    noon_utc: datetime | None = column(UTC_TIME, "solar noon")
    civil_dawn_utc: datetime | None = column(UTC_TIME, "sun 6 degrees below the horizon, rising; "
                                             "NULL when it never gets that low")
    civil_dusk_utc: datetime | None = column(UTC_TIME, "sun 6 degrees below, setting")
    nautical_dawn_utc: datetime | None = column(UTC_TIME, "12 degrees below, rising")
    nautical_dusk_utc: datetime | None = column(UTC_TIME, "12 degrees below, setting")
    astronomical_dawn_utc: datetime | None = column(UTC_TIME, "18 degrees below, rising")
    astronomical_dusk_utc: datetime | None = column(UTC_TIME, "18 degrees below, setting")
    polar: str | None = column(pa.string(), "day (the sun never sets) or night (it never rises); "
                               "NULL on an ordinary day")
    computed_by: str = column(pa.string(), "the library and version", nullable=False)


@dataclass(frozen=True)
class SolarSampleRow:
    """The sun's elevation at one deployment every 15 minutes (the views interpolate)."""

    deployment_id: str = column(pa.string(), "", nullable=False)
    slot: int = column(pa.int64(), "UTC epoch seconds // 900", nullable=False)
    elevation_deg: float = column(pa.float64(), "sun elevation with refraction, degrees", nullable=False)
    latitude: float = column(pa.float64(), "the deployment's latitude it was computed for", nullable=False)
    longitude: float = column(pa.float64(), "the deployment's longitude it was computed for", nullable=False)


@dataclass(frozen=True)
class SpeechMarkRow:
    """The privacy gate's verdict on one analysed window (`docs/privacy.md`): whether it holds
    human speech. A window analysed before the gate existed has no row (not checked)."""

    run_id: str = column(pa.string(), "the run that checked it", nullable=False)
    config_fingerprint: str = column(pa.string(), "the fingerprint of the window", nullable=False)
    recording_id: str = column(pa.string(), "", nullable=False)
    deployment_id: str = column(pa.string(), "", nullable=False)
    channel: int = column(pa.int16(), "", nullable=False)
    window_index: int = column(pa.int32(), "", nullable=False)
    offset_s: float = column(pa.float64(), "window start from the start of the file", nullable=False)
    window_s: float = column(pa.float64(), "nominal window length", nullable=False)
    date: date | None = column(pa.date32(), "UTC date of the window's start (partition key)")
    speech: bool = column(pa.bool_(), "marked: the detector or the model heard human speech; its "
                          "audio is withheld while the gate is on", nullable=False)
    speech_s: float = column(pa.float64(), "seconds of speech frames the detector found",
                             nullable=False)
    detector_max_prob: float = column(pa.float64(), "the detector's highest frame probability",
                                      nullable=False)
    model_speech_score: float | None = column(
        pa.float64(), "the model's own human-voice score (BirdNET: Human vocal); NULL: the "
        "model has no such class")
    detector: str = column(pa.string(), "the detector and the rule that marked it", nullable=False)


DEPLOYMENTS = Table("deployments", DeploymentRow, "one row per deployment")
RECORDINGS = Table("recordings", RecordingRow, "one row per version of a recording file")
WINDOWS = Table("windows", WindowRow, "one row per planned window, channel and fingerprint",
                partitioned_by=("deployment_id", "date"))
PREDICTIONS = Table("predictions", PredictionRow, "one row per window, channel, task and answer",
                    partitioned_by=("deployment_id", "date"))
RUNS = Table("runs", RunRow, "one row per flow run")
SETTINGS = Table("settings", SettingRow, "one row per setting")
SETTING_CHANGES = Table("setting_changes", SettingChangeRow, "one row per change of a setting")
EMBEDDINGS = Table("embeddings", EmbeddingRow, "one row per analysed window, channel and fingerprint",
                   partitioned_by=("deployment_id", "date"))
SPECIES_OCCURRENCE = Table("species_occurrence", SpeciesOccurrenceRow,
                           "one row per deployment, BirdNET week and species",
                           partitioned_by=("deployment_id",))
REVIEWS = Table("reviews", ReviewRow, "one row per verdict given (the newest per detection counts)")
THRESHOLDS = Table("thresholds", ThresholdRow, "one row per fingerprint and species reviewed")
CLASSIFIERS = Table("classifiers", ClassifierRow, "one row per classifier version")
SOLAR_DAYS = Table("solar_days", SolarDayRow, "one row per deployment with coordinates and local day")
SOLAR_SAMPLES = Table("solar_samples", SolarSampleRow,
                      "one row per deployment with coordinates and 15 minutes of its windows")
SPEECH_MARKS = Table("speech_marks", SpeechMarkRow,
                     "one row per window, channel and fingerprint checked for human speech",
                     partitioned_by=("deployment_id", "date"))

#: Every table of the catalog, by name.
TABLES: dict[str, Table[Any]] = {
    t.name: t for t in (DEPLOYMENTS, RECORDINGS, WINDOWS, PREDICTIONS, RUNS, SETTINGS,
                        SPECIES_OCCURRENCE, EMBEDDINGS, REVIEWS, THRESHOLDS, SETTING_CHANGES,
                        CLASSIFIERS, SOLAR_DAYS, SOLAR_SAMPLES, SPEECH_MARKS)
}


def replace(row: Row, **changes: Any) -> Row:
    """A copy of a frozen row with some columns changed."""
    return dataclasses.replace(row, **changes)  # type: ignore[type-var]


def rows_of(table: Table[Row], items: Sequence[dict[str, Any]]) -> list[Row]:
    """Typed rows from plain dicts keyed by column name (e.g. rows read back from DuckDB)."""
    return [table.row(**item) for item in items]
