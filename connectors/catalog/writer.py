"""The catalog open for writing: typed methods that take and return the row dataclasses of
`connectors.tables`; every write is one transaction, run again when another writer's commit
conflicted with it."""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Sequence, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.catalog.connection import (
    _another_writer,
    _attach,
    _first_line,
    _is_write_conflict,
    _Transaction,
    connect_duckdb,
    full_place,
    retry_while_busy,
)
from connectors.catalog.locks import schema_lock
from connectors.catalog.maintenance import DEFAULT_DELETE_GRACE, MaintenanceReport, maintain
from connectors.catalog.schema import _schema_version, put_setting, setting, upgrade
from connectors.catalog.sql_files import sql_statements, sql_text
from connectors.catalog.guard import refuse_lost_catalog
from connectors.catalog.vectors import FLOAT16, check_embedding_table, stored_embeddings
from connectors.errors import ConfigError, DiskFull, disk_full
from connectors.location import DATA_DIR, ResultsLocation
from connectors.tables import (
    CLASSIFIERS,
    DEPLOYMENTS,
    EMBEDDINGS,
    PREDICTIONS,
    RECORDINGS,
    REVIEWS,
    RUNS,
    SETTING_CHANGES,
    SETTINGS,
    SOLAR_DAYS,
    SOLAR_SAMPLES,
    SPECIES_OCCURRENCE,
    SPEECH_MARKS,
    THRESHOLDS,
    WINDOWS,
    ClassifierRow,
    DeploymentRow,
    EmbeddingRow,
    PredictionRow,
    RecordingRow,
    ReviewRow,
    RunRow,
    SettingChangeRow,
    SettingRow,
    SolarDayRow,
    SolarSampleRow,
    SpeciesOccurrenceRow,
    SpeechMarkRow,
    ThresholdRow,
    WindowRow,
)


log = logging.getLogger("connectors.catalog")
T = TypeVar("T")

#: A write that conflicts with another writer's is run again this many times (see the docstring).
CONFLICT_RETRIES = 20


@dataclass(frozen=True)
class CascadeWindow:
    """A window a cascade stage answers, and the previous stage's proposals for it."""

    recording_id: str
    channel: int
    window_index: int
    offset_s: float
    duration_s: float
    padded: bool
    candidates: tuple[str, ...]  # the previous stage's top-k classify labels, best first


def check_embeddings(rows: Sequence[EmbeddingRow]) -> None:
    """Refuse embeddings that are empty, not finite, or of two lengths under one fingerprint; a
    row holds its vector in `vector` (float32, as a model gives it) or `vector_f16`, not both."""
    widths: dict[str, int] = {}
    for e in rows:
        where = f"recording {e.recording_id} window {e.window_index} channel {e.channel}"
        if (e.vector is None) == (e.vector_f16 is None):
            raise ValueError(f"refusing to commit the embedding of {where}: expected a vector "
                             "in one of vector and vector_f16")
        if e.vector is not None:
            vector = np.asarray(e.vector, dtype=np.float32)
        elif len(e.vector_f16) % 2:
            raise ValueError(f"refusing to commit the embedding of {where}: vector_f16 holds "
                             f"{len(e.vector_f16)} bytes, not a whole number of float16 values")
        else:
            vector = np.frombuffer(e.vector_f16, FLOAT16)
        if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
            raise ValueError(f"refusing to commit the embedding of {where}: expected a non-empty "
                             f"finite vector, got shape {vector.shape}")
        width = widths.setdefault(e.config_fingerprint, vector.size)
        if vector.size != width:
            raise ValueError(f"refusing to commit the embedding of {where}: {vector.size} values, "
                             f"but {width} for other windows of fingerprint {e.config_fingerprint}")


# -------------------------------------------------------------------------------- the writer


class Catalog:
    """A catalog open for writing (attached as `lake`): a results folder (the embedded default)
    or a `ResultsLocation` (SQLite or Postgres catalog, local or S3 data)."""

    def __init__(self, results: str | os.PathLike | ResultsLocation, catalog: str | None = None,
                 storage_options: dict[str, Any] | None = None):
        self.location = ResultsLocation.resolve(results, catalog, storage_options)
        # Never a new catalog over an earlier one's data files (connectors.catalog.guard).
        refuse_lost_catalog(self.location)
        self.root = self.location.root  # the local results folder; None for data on S3
        self.catalog_path = self.location.catalog_path
        self.data_path = self.root / DATA_DIR if self.root else None
        folders = [p for p in (self.data_path, self.catalog_path and self.catalog_path.parent) if p]
        for folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"results folder {folder}: cannot create it: "
                                  f"{exc.strerror or exc}") from None
        self.con = retry_while_busy(self._open, f"{self.location.describe()}: open")

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.con = connect_duckdb(self.location)
        try:
            with schema_lock(self.location):
                _attach(self.con, self.location, read_only=False)
                self._upgrade()
        except BaseException:
            self.con.close()
            raise
        return self.con

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------
    def _upgrade(self) -> None:
        """Apply the migrations this catalog lacks, one transaction each; refresh the views."""
        upgrade(self.con, self.location)

    @property
    def schema_version(self) -> int:
        return _schema_version(self.con)

    # -- plumbing ------------------------------------------------------------------------------
    def _transaction(self, **tables: pa.Table) -> _Transaction:
        return _Transaction(self.con, tables)

    def _write(self, work: Callable[[duckdb.DuckDBPyConnection], T], **tables: pa.Table) -> T:
        """Run `work` in one transaction; again on the new snapshot if another writer's commit
        conflicted with it, or while another process commits to a SQLite catalog ("database is
        locked"). A failed transaction is rolled back whole, so running it again never duplicates
        a row (and every write here but an appended verdict replaces by key)."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                with self._transaction(**tables) as con:
                    return work(con)
            except (duckdb.Error, OSError) as exc:
                if disk_full(exc):
                    raise DiskFull(full_place(self.location), "a catalog transaction, rolled "
                                   "back whole") from None
                if isinstance(exc, OSError):
                    raise
                again = _is_write_conflict(exc) or _another_writer(exc)
                if not again or attempt == CONFLICT_RETRIES:
                    raise
                log.debug("catalog write met another writer (attempt %d): %s",
                          attempt + 1, _first_line(exc))
                time.sleep(min(2.0, 0.05 * 1.5 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _run_file(self, name: str, params: dict[str, Any] | None = None, **tables: pa.Table) -> None:
        def work(con: duckdb.DuckDBPyConnection) -> None:
            for statement in sql_statements(name):
                con.execute(statement, params) if params is not None else con.execute(statement)

        self._write(work, **tables)

    def _query_file(self, name: str, params: dict[str, Any] | None = None,
                    **tables: pa.Table) -> pa.Table:
        for table_name, table in tables.items():
            self.con.register(table_name, table)
        try:
            return self.con.execute(sql_text(name), params).to_arrow_table()
        finally:
            for table_name in tables:
                self.con.unregister(table_name)

    # -- settings ------------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        return setting(self.con, key)

    def set_setting(self, key: str, value: str) -> None:
        self._write(lambda con: put_setting(con, key, value))

    def change_settings(self, values: dict[str, str], changed_by: str) -> None:
        """Set these settings and record who changed them and when, in one transaction."""
        now = datetime.now(timezone.utc)
        self._run_file(
            "writes/change_setting",
            _setting=SETTINGS.to_arrow([SettingRow(k, v) for k, v in values.items()]),
            _change=SETTING_CHANGES.to_arrow([SettingChangeRow(k, v, changed_by, now)
                                              for k, v in values.items()]))

    def fingerprints(self) -> list[str]:
        """The config fingerprints the catalog holds windows of, oldest first."""
        return [r["config_fingerprint"] for r in self._query_file("reads/fingerprints").to_pylist()]

    def setting_changes(self, key: str) -> list[SettingChangeRow]:
        """Every recorded change of setting `key`, newest first."""
        return SETTING_CHANGES.from_arrow(self._query_file("reads/setting_changes", {"key": key}))

    # -- deployments and recordings ------------------------------------------------------------
    def upsert_deployments(self, rows: Sequence[DeploymentRow]) -> None:
        """Replace the rows of these deployments (by deployment_id) in one transaction."""
        if rows:
            self._run_file("writes/replace_deployments", _deployments=DEPLOYMENTS.to_arrow(rows))

    def deployments(self) -> list[DeploymentRow]:
        """Every deployment the catalog holds, by id."""
        return DEPLOYMENTS.from_arrow(self._query_file("reads/deployments"))

    def known_recordings(self) -> list[RecordingRow]:
        """Every recording version the catalog holds."""
        return RECORDINGS.from_arrow(self._query_file("reads/known_recordings"))

    def register_recordings(self, new: Sequence[RecordingRow], superseded_ids: Sequence[str]) -> None:
        """Add new recording versions and drop superseded ones with their rows, in one transaction."""
        superseded = pa.table({"recording_id": pa.array(list(superseded_ids), pa.string())})
        self._run_file("writes/replace_recordings", _superseded=superseded,
                       _new_recordings=RECORDINGS.to_arrow(new))

    def plannable_recordings(self, recording_ids: Sequence[str]) -> list[RecordingRow]:
        """The readable recordings among `recording_ids`, by uri."""
        ids = pa.table({"recording_id": pa.array(list(recording_ids), pa.string())})
        return RECORDINGS.from_arrow(self._query_file("reads/plannable_recordings", _ids=ids))

    def cascade_windows(self, upstream: str, fingerprint: str, *, pass_task: str,
                        threshold: float, top_k: int | None, retry_failed: bool = False
                        ) -> list["CascadeWindow"]:
        """The windows a cascade stage (`fingerprint`) has still to answer: analysed under
        `upstream`, passed by its `pass_task` score, with its top-k classify labels."""
        table = self._query_file("reads/cascade_windows", {
            "upstream": upstream, "fingerprint": fingerprint, "pass_task": pass_task,
            "threshold": float(threshold), "top_k": int(top_k or 0), "retry_failed": retry_failed})
        return [CascadeWindow(r["recording_id"], int(r["channel"]), int(r["window_index"]),
                              float(r["offset_s"]), float(r["duration_s"]), bool(r["padded"]),
                              tuple(r["candidates"]))
                for r in table.to_pylist()]

    # -- windows and predictions ---------------------------------------------------------------
    def committed_windows(self, config_fingerprint: str, *, retry_failed: bool = False,
                          need_embeddings: bool = False) -> dict[tuple[str, int], set[int]]:
        """(recording_id, channel) -> window indexes already committed under this fingerprint.

        With `retry_failed`, failed windows do not count as committed, so they are planned again.
        With `need_embeddings`, analysed (ok) windows without an embedding do not count either.
        """
        table = self._query_file("reads/committed_windows", {
            "config_fingerprint": config_fingerprint, "retry_failed": retry_failed,
            "need_embeddings": need_embeddings})
        return {(r["recording_id"], r["channel"]): set(r["window_indexes"]) for r in table.to_pylist()}

    def commit_unit(self, windows: Sequence[WindowRow], predictions: Sequence[PredictionRow],
                    embeddings: Sequence[EmbeddingRow] = ()) -> None:
        """One unit's effort rows, predictions and embeddings: all or nothing (see
        `commit_units`)."""
        self.commit_units([(windows, predictions, embeddings)])

    def commit_units(self, units: Sequence[tuple[Sequence[WindowRow], Sequence[PredictionRow]]
                                           | tuple[Sequence[WindowRow], Sequence[PredictionRow],
                                                   Sequence[EmbeddingRow]]
                                           | tuple[Sequence[WindowRow], Sequence[PredictionRow],
                                                   Sequence[EmbeddingRow], Sequence[SpeechMarkRow]]]
                     ) -> None:
        """Whole units' effort rows, predictions and embeddings (each unit's third item, none
        when it has two) and speech marks (a fourth item, `docs/privacy.md`) in one
        transaction: all or nothing.

        Several finished units may share a transaction (fewer commits and files); none is ever
        split across two, so a re-run after a crash plans exactly the units that are not in.
        A window committed again after failing replaces its failed row. Every score must be a
        finite probability: the inference stage fails windows whose model output is not one, so
        a bad score here is a bug, refused before it can reach a detection. Embeddings are
        refused unless they are finite and of one length per fingerprint (DuckLake stores
        lists and BLOBs of any length, so nothing else would catch a short vector); they are
        stored as float16 (`connectors.catalog.vectors.stored_embeddings`).
        """
        windows = [w for unit in units for w in unit[0]]
        predictions = [p for unit in units for p in unit[1]]
        embeddings = [e for unit in units for e in (unit[2] if len(unit) > 2 else ())]
        speech = [m for unit in units for m in (unit[3] if len(unit) > 3 else ())]  # type: ignore[misc]
        for p in predictions:
            if not (isinstance(p.score, float) and math.isfinite(p.score) and 0.0 <= p.score <= 1.0):
                raise ValueError(
                    f"refusing to commit score {p.score!r} for recording {p.recording_id} window "
                    f"{p.window_index} ({p.task}): scores must be finite probabilities"
                )
        check_embeddings(embeddings)
        self._run_file("writes/commit_unit", _unit_windows=WINDOWS.to_arrow(windows),
                       _unit_predictions=PREDICTIONS.to_arrow(predictions),
                       _unit_embeddings=stored_embeddings(EMBEDDINGS.to_arrow(embeddings)),
                       _unit_speech=SPEECH_MARKS.to_arrow(speech))

    def commit_tables(self, windows: pa.Table, predictions: pa.Table) -> None:
        """Windows and predictions already in Arrow, with exactly the tables' schemas, in one
        transaction (bulk loads of many rows, e.g. the catalog benchmark's synthetic season);
        scores are checked as `commit_units` checks them."""
        for table, name in ((windows, WINDOWS), (predictions, PREDICTIONS)):
            if not table.schema.equals(name.schema):
                raise TypeError(f"{name.name}: expected the schema of connectors.tables.{name.name}")
        scores = predictions.column("score")
        good = pc.and_(pc.is_finite(scores), pc.and_(pc.greater_equal(scores, 0.0),
                                                     pc.less_equal(scores, 1.0)))
        if predictions.num_rows and not pc.all(good).as_py():
            bad = predictions.filter(pc.invert(pc.fill_null(good, False))).slice(0, 1).to_pylist()[0]
            raise ValueError(
                f"refusing to commit score {bad['score']!r} for recording {bad['recording_id']} "
                f"window {bad['window_index']} ({bad['task']}): scores must be finite probabilities"
            )
        self._run_file("writes/commit_unit", _unit_windows=windows, _unit_predictions=predictions,
                       _unit_embeddings=EMBEDDINGS.to_arrow([]), _unit_speech=SPEECH_MARKS.to_arrow([]))

    def commit_embeddings_table(self, embeddings: pa.Table) -> None:
        """Embeddings already in Arrow (exactly the table's schema), in one transaction: bulk
        loads such as the similarity benchmark's synthetic season. Checked as `commit_unit`
        checks rows (finite, non-empty, one width per fingerprint) and stored as float16."""
        if not embeddings.schema.equals(EMBEDDINGS.schema):
            raise TypeError("embeddings: expected the schema of connectors.tables.embeddings")
        check_embedding_table(embeddings)
        self._run_file("writes/commit_unit", _unit_windows=WINDOWS.to_arrow([]),
                       _unit_predictions=PREDICTIONS.to_arrow([]),
                       _unit_embeddings=stored_embeddings(embeddings),
                       _unit_speech=SPEECH_MARKS.to_arrow([]))

    # -- maintenance ---------------------------------------------------------------------------
    def maintain(self, *, retention: timedelta | None = None, keep_for_readers: bool = True,
                 orphan_grace: timedelta = DEFAULT_DELETE_GRACE) -> MaintenanceReport:
        """Few files, no dead ones (`connectors.catalog.maintenance.maintain` says how). Call it
        holding the results folder's run lock, so that no commit is writing files meanwhile."""
        return maintain(self.con, self.location, self.data_path, retention=retention,
                        keep_for_readers=keep_for_readers, orphan_grace=orphan_grace)

    # -- species filters -----------------------------------------------------------------------
    def location_filter_todo(self) -> list[tuple[str, int, float, float]]:
        """(deployment_id, BirdNET week, latitude, longitude) pairs the meta-model has not been
        asked about yet (or was asked about other coordinates than the deployment's now)."""
        table = self._query_file("reads/location_filter_todo")
        return [(r["deployment_id"], r["week"], r["latitude"], r["longitude"])
                for r in table.to_pylist()]

    def solar_todo(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(days, slots) the sun tables lack for deployments with coordinates: days as dicts of
        deployment_id, local_date, tz_name, latitude, longitude; slots of deployment_id, slot
        (epoch seconds // 900), latitude, longitude."""
        rows = self._query_file("reads/solar_todo").to_pylist()
        days = [{k: r[k] for k in ("deployment_id", "local_date", "tz_name", "latitude", "longitude")}
                for r in rows if r["kind"] == "day"]
        slots = [{k: r[k] for k in ("deployment_id", "slot", "latitude", "longitude")}
                 for r in rows if r["kind"] == "slot"]
        return days, slots

    def put_solar(self, days: Sequence[SolarDayRow], samples: Sequence[SolarSampleRow]) -> None:
        """Sun events and elevations, replacing rows of the same deployments, days and slots, in
        one transaction."""
        if days or samples:
            self._run_file("writes/put_solar", _solar_days=SOLAR_DAYS.to_arrow(days),
                           _solar_samples=SOLAR_SAMPLES.to_arrow(samples))

    def put_species_occurrence(self, rows: Sequence[SpeciesOccurrenceRow]) -> None:
        """The meta-model's answers for some (deployment, week) pairs, replacing older ones for
        those pairs, in one transaction."""
        if rows:
            self._run_file("writes/put_species_occurrence",
                           _occurrence=SPECIES_OCCURRENCE.to_arrow(rows))

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, run: RunRow) -> None:
        self._run_file("writes/start_run", _run=RUNS.to_arrow([run]))

    def finish_run(self, run: RunRow) -> None:
        self._run_file("writes/finish_run", _run=RUNS.to_arrow([run]))

    def mark_interrupted(self, noticed_at: datetime, by_run_id: str,
                         alive: Callable[[str], bool] | None = None) -> list[str]:
        """Mark the runs still `running` that are dead as interrupted; their run ids.

        `alive(run_id)` tells a live run from a dead one (`connectors.catalog.locks`: a Postgres
        lease asks whether that run's session still holds its lease). Without it every run but
        `by_run_id` counts as dead: call it so only while holding a SQLite catalog's run lock.
        """
        running = retry_while_busy(
            lambda: [r[0] for r in self.con.execute(sql_text("reads/running_runs"),
                                                    {"except_run_id": by_run_id}).fetchall()],
            f"{self.location.describe()}: running runs")
        dead = [run_id for run_id in running if alive is None or not alive(run_id)]
        if dead:
            ids = pa.table({"run_id": pa.array(dead, pa.string())})
            self._run_file("writes/mark_interrupted", {"noticed_at": noticed_at}, _dead=ids)
        return dead

    def runs(self) -> list[RunRow]:
        return RUNS.from_arrow(self._query_file("reads/runs"))

    # -- reviews and thresholds ----------------------------------------------------------------
    def add_review(self, review: ReviewRow) -> None:
        """One verdict, in its own transaction (the review page writes each click at once).

        Needs no run lock: DuckLake's transactions let it commit while a run commits units.
        """
        self.add_reviews([review])

    def add_reviews(self, reviews: Sequence[ReviewRow]) -> None:
        """Several verdicts (a Raven table's) in one transaction: all or nothing."""
        for r in reviews:
            check_review(r)
        if reviews:
            self._run_file("writes/add_reviews", _reviews=REVIEWS.to_arrow(reviews))

    def replace_thresholds(self, rows: Sequence[ThresholdRow]) -> None:
        """Replace the thresholds of these (fingerprint, label) pairs, in one transaction."""
        for row in rows:
            if row.status not in ThresholdRow.STATUSES:
                raise ValueError(f"threshold status {row.status!r}: expected one of "
                                 f"{', '.join(ThresholdRow.STATUSES)}")
            if (row.threshold is None) != (row.status != "calibrated"):
                raise ValueError(f"threshold for {row.label!r}: a threshold goes with status "
                                 f"calibrated and only with it (got {row.threshold!r}, {row.status})")
            if row.threshold is not None and not 0.0 <= row.threshold <= 1.0:
                raise ValueError(f"threshold for {row.label!r}: {row.threshold!r} is not a score")
        if rows:
            self._run_file("writes/replace_thresholds", _thresholds=THRESHOLDS.to_arrow(rows))

    # -- classifiers learned from examples ----------------------------------------------------
    def add_classifier(self, row: ClassifierRow) -> None:
        """One classifier version, in its own transaction (versions are only ever added)."""
        check_classifier(row)
        self._run_file("writes/add_classifier", _classifier=CLASSIFIERS.to_arrow([row]))

    def classifiers(self) -> list[ClassifierRow]:
        """Every classifier version, by name and version."""
        return CLASSIFIERS.from_arrow(self._query_file("reads/classifiers"))

    def classifier_todo(self, embedding_fingerprint: str, classifier_fingerprint: str
                        ) -> list[ClassifierTodo]:
        """The recordings with embedded windows the classifier has not scored yet, in partition
        order (deployment, first date)."""
        table = self._query_file("reads/classifier_todo",
                                 [embedding_fingerprint, classifier_fingerprint])
        return [ClassifierTodo(r["recording_id"], int(r["windows"]), r["deployment_id"],
                               r["first_date"], r["last_date"], bool(r["undated"]))
                for r in table.to_pylist()]

    def classifier_batch(self, embedding_fingerprint: str, classifier_fingerprint: str,
                         recordings: Sequence[ClassifierTodo]) -> pa.Table:
        """The windows of these recordings the classifier has still to score: their effort
        columns and `vector`, by recording, channel and window. Only the partitions (deployment,
        date) that hold them are read."""
        dates = [d for r in recordings for d in (r.first_date, r.last_date) if d is not None]
        return self._query_file("reads/classifier_batch", [
            embedding_fingerprint, classifier_fingerprint, [r.recording_id for r in recordings],
            sorted({r.deployment_id for r in recordings}), min(dates, default=None),
            max(dates, default=None), any(r.undated for r in recordings)])


@dataclass(frozen=True)
class ClassifierTodo:
    """A recording a classifier has still to score: how many windows, and where they lie."""

    recording_id: str
    windows: int
    deployment_id: str
    first_date: date | None
    last_date: date | None
    undated: bool  # some of its windows have no date (a recording without a start time)


def check_review(review: ReviewRow) -> None:
    """Refuse a verdict the catalog must never hold (a bug in the caller, not user input)."""
    if review.verdict not in ReviewRow.VERDICTS:
        raise ValueError(f"verdict {review.verdict!r}: expected one of {', '.join(ReviewRow.VERDICTS)}")
    if review.via not in ReviewRow.VIAS:
        raise ValueError(f"review via {review.via!r}: expected one of {', '.join(ReviewRow.VIAS)}")
    if (review.verdict == "other") != bool(review.corrected_label):
        raise ValueError("a corrected label goes with verdict other, and only with it "
                         f"(got verdict {review.verdict!r}, corrected label {review.corrected_label!r})")
    if not review.reviewer.strip():
        raise ValueError("a verdict needs a reviewer name")
    if not (math.isfinite(review.score) and 0.0 <= review.score <= 1.0):
        raise ValueError(f"review score {review.score!r}: expected a probability")


def check_classifier(row: ClassifierRow) -> None:
    """Refuse a classifier the catalog must never hold (a bug in the caller, not user input)."""
    weights = np.asarray(row.weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0 or not np.all(np.isfinite(weights)):
        raise ValueError(f"classifier {row.classifier_id}: weights must be a non-empty finite "
                         f"vector (got shape {weights.shape})")
    if not math.isfinite(row.bias):
        raise ValueError(f"classifier {row.classifier_id}: bias {row.bias!r} is not finite")
    if row.n_positive < 1:
        raise ValueError(f"classifier {row.classifier_id}: no positive example")
    if not row.created_by.strip():
        raise ValueError(f"classifier {row.classifier_id}: created_by is empty")
