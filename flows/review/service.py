"""What the review page does, without the web: the queue, progress, one window's audio, verdicts.

Every read goes through the locked-down `CatalogReader`; every verdict is one transaction through
`Catalog.add_review` (no run lock: a run may be committing at the same time). Audio is read only
for windows the catalog holds, from the uri the catalog recorded: a request names a window key,
never a path.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from connectors.catalog import Catalog, CatalogReader, reads
from connectors.catalog.locks import ResultsBusy
from connectors.clips import Span, check_unchanged, open_recording, read_span
from connectors.errors import ConfigError
from connectors.tables import ReviewRow
from flows.outputs.learn import learn
from flows.outputs.privacy import HOW_TO_SERVE, check_span, overlaps, speech_marks_of
from flows.review.defaults import MAX_MARK_WINDOWS
from naturelm_core.labels import birdnet_labels, split_birdnet_label

log = logging.getLogger(__name__)

#: Seconds of context on each side of a window, in its spectrogram and playback.
CONTEXT_S = 1.0
MAX_LABEL_CHARS = 200
MAX_REVIEWER_CHARS = 100
#: A mark's answer -> the verdict stored (so `learn` reads it as it reads any verdict).
MARKS = {"positive": "correct", "negative": "wrong", "unsure": "unsure"}
_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")


class BadRequest(ValueError):
    """A request that can never succeed as sent; the message says why (HTTP 400)."""


class NotInCatalog(LookupError):
    """The window or detection a request names is not in the catalog (HTTP 404)."""


class Busy(RuntimeError):
    """The request cannot be done now: a run holds the catalog; the message says whose (HTTP 409)."""


@dataclass(frozen=True)
class WindowKey:
    """One analysed window: `recording.fingerprint.channel.window` in URLs and pages."""

    recording_id: str
    config_fingerprint: str
    channel: int
    window_index: int

    def __str__(self) -> str:
        return f"{self.recording_id}.{self.config_fingerprint}.{self.channel}.{self.window_index}"

    @classmethod
    def parse(cls, text: str) -> "WindowKey":
        parts = text.split(".") if isinstance(text, str) else []
        if (len(parts) != 4 or not _ID.fullmatch(parts[0]) or not _ID.fullmatch(parts[1])
                or not parts[2].isdigit() or not parts[3].isdigit()
                or len(parts[2]) > 5 or len(parts[3]) > 9):
            raise BadRequest(f"window key {text[:80]!r}: expected recording.fingerprint.channel.window")
        return cls(parts[0], parts[1], int(parts[2]), int(parts[3]))

    @property
    def fields(self) -> dict[str, Any]:
        """The key as the catalog's typed reads take it (named arguments)."""
        return {"recording_id": self.recording_id, "config_fingerprint": self.config_fingerprint,
                "channel": self.channel, "window_index": self.window_index}


@dataclass(frozen=True)
class Filters:
    """The queue's filters; None = any."""

    deployment: str | None = None
    label: str | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        for name in ("deployment", "label", "fingerprint"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > MAX_LABEL_CHARS):
                raise BadRequest(f"filter {name}: expected text of at most {MAX_LABEL_CHARS} characters")


@dataclass(frozen=True)
class ReviewSettings:
    results: str
    reviewer: str
    min_score: float = 0.1
    """The lowest score the queue offers (calibration needs low scores too)."""
    score_bins: int = 10
    """Equal-width score bins over [min_score, 1] the queue samples from in turn."""
    goal: int = 30
    """Verdicts per species the page counts towards (calibrate's --min-reviews)."""
    storage_options: dict[str, Any] = field(default_factory=dict)
    location_threshold: float | None = None
    """The location filter's threshold for the queue (None: the catalog's; 0 shows every species)."""
    species: tuple[str, ...] = ()
    """A target list: only these labels are offered, in this order (empty: every species, most
    detections first)."""
    retrain_every: int | None = None
    """Retrain a classifier (train, store, apply, as the Retrain button) when a verdict brings
    the verdicts on its label since its newest version to this many; None: only the button."""

    def __post_init__(self) -> None:
        if self.retrain_every is not None and not 1 <= self.retrain_every <= 10_000:
            raise ValueError(f"retrain_every {self.retrain_every}: expected 1 to 10000")
        if not 0.0 <= self.min_score < 1.0:
            raise ValueError(f"min_score {self.min_score}: expected a score in [0, 1)")
        if not 1 <= self.score_bins <= 100:
            raise ValueError(f"score_bins {self.score_bins}: expected 1..100")


def clean_text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what}: expected a non-empty text")
    value = " ".join(value.split())
    if len(value) > limit:
        raise BadRequest(f"{what}: at most {limit} characters")
    return value


class ReviewService:
    """The review page's catalog and audio (one per server; safe to call from many threads)."""

    def __init__(self, settings: ReviewSettings):
        self.settings = settings
        self.writer = Catalog(settings.results)  # opening it upgrades an older catalog first
        self.reader = CatalogReader(settings.results, location_threshold=settings.location_threshold)
        # One fingerprint by default (the one every command reads: pinned, else the newest).
        self.default_fingerprint = (self.reader.default_fingerprint[0]
                                    if self.reader.default_fingerprint else None)
        # One DuckDB connection must not run two statements at once; reads and writes have
        # their own connection, so a verdict waiting on a busy catalog does not stall the page.
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._retrain_lock = threading.Lock()  # one retrain at a time (each writes a version)
        #: classifier name -> what the last automatic retrain did (shown on the page), and the
        #: verdict count it was triggered at, so an unchanged retrain does not repeat per verdict
        self.auto_retrains: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.reader.close()
        self.writer.close()

    # -- reads ---------------------------------------------------------------------------------
    def _rows(self, read: Callable[..., Any], **params: Any) -> list[dict[str, Any]]:
        """A typed read of `connectors.catalog.reads`, its rows as dicts (the page's JSON)."""
        with self._read_lock:
            found = read(self.reader, **params)
        return [asdict(r) for r in (found if isinstance(found, list) else [found] if found else [])]

    def queue(self, filters: Filters, limit: int = 1, per_species: int | None = None
              ) -> list[dict[str, Any]]:
        """Detections not yet reviewed, per species in stratified order (see review/candidates)."""
        s = self.settings
        rows = self._rows(reads.review_candidates, min_score=s.min_score, score_bins=s.score_bins,
                          deployment_id=filters.deployment, label=filters.label,
                          config_fingerprint=filters.fingerprint or self.default_fingerprint,
                          limit=limit, per_species=per_species, labels=list(s.species) or None)
        for row in rows:
            row["key"] = str(WindowKey(row["recording_id"], row["config_fingerprint"],
                                       row["channel"], row["window_index"]))
        self._mark_withheld(rows)
        return rows

    def _mark_withheld(self, rows: list[dict[str, Any]]) -> None:
        """Each queue row's `withheld`: why its audio is not served (privacy gate), or None."""
        with self._read_lock:
            marks = speech_marks_of(self.reader, [r["recording_id"] for r in rows])
        for row in rows:
            start = max(0.0, row["offset_s"] - CONTEXT_S)
            end = row["offset_s"] + row["window_s"] + CONTEXT_S
            hit = next((m for m in marks.get(row["recording_id"], ()) if overlaps(m, start, end)), None)
            row["withheld"] = None if hit is None else (
                f"Audio withheld: this window (or the second around it) holds human speech. "
                f"{HOW_TO_SERVE[0].upper()}{HOW_TO_SERVE[1:]}.")

    def progress(self, filters: Filters) -> list[dict[str, Any]]:
        rows = self._rows(reads.review_progress, min_score=self.settings.min_score,
                          deployment_id=filters.deployment, label=filters.label,
                          config_fingerprint=filters.fingerprint or self.default_fingerprint,
                          labels=list(self.settings.species) or None)
        for row in rows:
            row["goal"] = self.settings.goal
        return rows

    def options(self) -> dict[str, list[Any]]:
        """Filter choices and the label list "other species" completes from."""
        rows = self._rows(reads.review_options)
        by_kind: dict[str, list[Any]] = {}
        for r in rows:
            by_kind.setdefault(r["kind"], []).append(r)
        models = {r["detail"] or "" for r in by_kind.get("fingerprint", [])}
        labels = {r["value"] for r in by_kind.get("label", []) + by_kind.get("corrected_label", [])}
        if any(m.startswith("birdnet") for m in models):
            labels |= set(birdnet_common_names())
        return {
            "deployments": [r["value"] for r in by_kind.get("deployment", [])],
            "labels": [r["value"] for r in by_kind.get("label", [])],
            "fingerprints": [(r["value"], r["detail"]) for r in by_kind.get("fingerprint", [])],
            "completions": sorted(labels, key=str.casefold),
        }

    def window(self, key: WindowKey) -> dict[str, Any]:
        rows = self._rows(reads.window_source, **key.fields)
        if not rows:
            raise NotInCatalog(f"window {key} is not in the catalog")
        return rows[0]

    def clip(self, key: WindowKey) -> tuple[Span, dict[str, Any]]:
        """The window and CONTEXT_S on each side, read from the recording's source.

        InputError when the source cannot give it (missing, changed since analysis, unreadable).
        """
        w = self.window(key)
        with self._read_lock:  # the privacy gate (docs/privacy.md): SpeechWithheld, HTTP 451
            check_span(self.reader, key.recording_id, max(0.0, w["offset_s"] - CONTEXT_S),
                       w["offset_s"] + w["window_s"] + CONTEXT_S, f"window {key} +- {CONTEXT_S:g} s")
        fs, path = open_recording(w["uri"], self.settings.storage_options)
        version_tag = w["etag"] or (w["mtime"].isoformat() if w["mtime"] is not None else "")
        check_unchanged(fs, path, w["uri"], w["size_bytes"], version_tag)
        start_s = max(0.0, w["offset_s"] - CONTEXT_S)
        end_s = w["offset_s"] + w["window_s"] + CONTEXT_S
        if w["duration_s"] is not None:
            end_s = min(end_s, w["duration_s"])
        end_s = max(end_s, start_s + 1.0 / max(1, w["sample_rate_hz"] or 1))
        return read_span(fs, path, start_s, end_s, key.channel, uri=w["uri"]), w

    # -- writes --------------------------------------------------------------------------------
    def add_verdict(self, key: WindowKey, label: Any, verdict: Any, reviewer: Any,
                    corrected_label: Any = None, now: datetime | None = None) -> ReviewRow:
        """Record one verdict on one detection, in one transaction."""
        label = clean_text(label, "label", MAX_LABEL_CHARS)
        reviewer = clean_text(reviewer, "reviewer", MAX_REVIEWER_CHARS)
        if verdict not in ReviewRow.VERDICTS:
            raise BadRequest(f"verdict {str(verdict)[:40]!r}: expected one of "
                             f"{', '.join(ReviewRow.VERDICTS)}")
        if verdict == "other":
            corrected_label = clean_text(corrected_label, "corrected label", MAX_LABEL_CHARS)
            if corrected_label == label:
                raise BadRequest("corrected label: the same as the model's label (use correct)")
        elif corrected_label not in (None, ""):
            raise BadRequest(f"corrected label: only with verdict other, not {verdict}")
        else:
            corrected_label = None
        found = self._rows(reads.detection, **key.fields, label=label)
        if not found:
            raise NotInCatalog(f"no detection of {label!r} in window {key} in the catalog")
        detection = found[0]
        review = ReviewRow(
            review_id=uuid.uuid4().hex, reviewed_at=now or datetime.now(timezone.utc),
            reviewer=reviewer, recording_id=key.recording_id,
            config_fingerprint=key.config_fingerprint, channel=key.channel,
            window_index=key.window_index, deployment_id=detection["deployment_id"], label=label,
            score=float(detection["score"]), verdict=verdict, corrected_label=corrected_label,
            via="page",
        )
        with self._write_lock:
            self.writer.add_review(review)
        log.info("%s: %s %s on %s", reviewer, verdict, label, key)
        return review


    # -- marking any window as an example (docs/learn.md, "Marking windows as examples") -------
    def mark_keys(self, windows: Any) -> list[WindowKey]:
        """The window keys of a marking list (comma-separated, in the order given, each once)."""
        if not isinstance(windows, str) or not windows.strip():
            raise BadRequest("windows: expected window keys (recording.fingerprint.channel.window) "
                             "separated by commas")
        keys = list(dict.fromkeys(WindowKey.parse(k.strip()) for k in windows.split(",") if k.strip()))
        if len(keys) > MAX_MARK_WINDOWS:
            raise BadRequest(f"windows: {len(keys)} keys, at most {MAX_MARK_WINDOWS} per list")
        return keys

    def mark_list(self, label: Any, keys: list[WindowKey]) -> list[dict[str, Any]]:
        """The windows `keys` name, in their order, each with where it is, what was detected there
        and its mark: the newest verdict on `label` (any case) in that window under any
        fingerprint (None: not marked yet). NotInCatalog names a key the catalog lacks."""
        label = clean_text(label, "label", MAX_LABEL_CHARS)
        by_fingerprint: dict[str, list[WindowKey]] = {}
        for key in keys:
            by_fingerprint.setdefault(key.config_fingerprint, []).append(key)
        found: dict[WindowKey, dict[str, Any]] = {}
        for fingerprint, group in by_fingerprint.items():
            for row in self._rows(reads.similar_hits, config_fingerprint=fingerprint,
                                  keys=[f"{k.recording_id}|{k.channel}|{k.window_index}" for k in group]):
                found[WindowKey(row["recording_id"], fingerprint, row["channel"],
                                row["window_index"])] = row
        missing = [str(k) for k in keys if k not in found]
        if missing:
            raise NotInCatalog(f"window {missing[0]} is not in the catalog"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        marks = self._marks(label)
        rows = []
        for position, key in enumerate(keys, start=1):
            row = dict(found[key], key=str(key), position=position, label=label,
                       config_fingerprint=key.config_fingerprint)
            row["mark"] = marks.get((key.recording_id, key.channel, key.window_index))
            row["window_s"] = row["end_offset_s"] - row["offset_s"]
            rows.append(row)
        self._mark_withheld(rows)
        return rows

    def _marks(self, label: str) -> dict[tuple[str, int, int], str]:
        """(recording, channel, window) -> the newest verdict on `label` there, as a mark."""
        with self._read_lock:
            verdicts = reads.latest_reviews(self.reader)
        newest: dict[tuple[str, int, int], Any] = {}
        for v in verdicts:
            if v.label.casefold() != label.casefold():
                continue
            where = (v.recording_id, v.channel, v.window_index)
            if where not in newest or v.reviewed_at > newest[where].reviewed_at:
                newest[where] = v
        back = {verdict: mark for mark, verdict in MARKS.items()}
        return {where: back.get(v.verdict, v.verdict) for where, v in newest.items()}

    def add_mark(self, key: WindowKey, label: Any, mark: Any, reviewer: Any,
                 now: datetime | None = None) -> ReviewRow:
        """Record that the window holds `label` (positive), does not (negative), or that the
        reviewer cannot tell (unsure): a `reviews` row under the window's own key, verdict
        correct, wrong or unsure, so `learn` reads it as it reads a verdict. Any analysed window
        can be marked: its score is the window's detection of `label` where its model gave one,
        else 0 (no score for the label there, as `density` counts it)."""
        label = clean_text(label, "label", MAX_LABEL_CHARS)
        reviewer = clean_text(reviewer, "reviewer", MAX_REVIEWER_CHARS)
        if mark not in MARKS:
            raise BadRequest(f"mark {str(mark)[:40]!r}: expected one of {', '.join(MARKS)}")
        where = self._rows(reads.similar_hits, config_fingerprint=key.config_fingerprint,
                           keys=[f"{key.recording_id}|{key.channel}|{key.window_index}"])
        if not where:
            raise NotInCatalog(f"window {key} is not in the catalog")
        detection = self._rows(reads.detection, **key.fields, label=label)
        review = ReviewRow(
            review_id=uuid.uuid4().hex, reviewed_at=now or datetime.now(timezone.utc),
            reviewer=reviewer, recording_id=key.recording_id,
            config_fingerprint=key.config_fingerprint, channel=key.channel,
            window_index=key.window_index, deployment_id=where[0]["deployment_id"], label=label,
            score=float(detection[0]["score"]) if detection else 0.0, verdict=MARKS[mark],
            corrected_label=None, via="page",
        )
        with self._write_lock:
            self.writer.add_review(review)
        log.info("%s: marked %s %s as %s", reviewer, key, label, mark)
        return review

    # -- active learning (docs/learn.md) -------------------------------------------------------
    def classifiers(self) -> list[dict[str, Any]]:
        """Each classifier's newest version: examples, cross-validated metrics, verdicts since."""
        return self._rows(reads.classifier_status)

    def classifier(self, name: Any) -> dict[str, Any]:
        name = clean_text(name, "classifier", MAX_LABEL_CHARS)
        for c in self.classifiers():
            if c["name"] == name:
                return c
        raise NotInCatalog(f"no classifier named {name!r} in the catalog (dawnchorus learn "
                           "makes one)")

    def learn_queue(self, name: Any, limit: int = 1) -> list[dict[str, Any]]:
        """The classifier's unjudged windows, most uncertain and top-scoring in turn
        (sql/reads/learn/queue.sql); its newest version's examples are left out."""
        name = self.classifier(name)["name"]
        with self._read_lock:
            versions = [c for c in reads.classifiers(self.reader) if c.name == name]
        newest = max(versions, key=lambda c: c.version)
        labelled = [f"{e['recording_id']}|{e['channel']}|{e['window_index']}"
                    for e in json.loads(newest.examples)]
        rows = self._rows(reads.learn_queue, name=name, labelled=labelled, limit=limit)
        for row in rows:
            row["key"] = str(WindowKey(row["recording_id"], row["config_fingerprint"],
                                       row["channel"], row["window_index"]))
        return rows

    def retrain(self, name: Any, by: Any) -> dict[str, Any]:
        """Train the classifier again as `dawnchorus learn --label LABEL --name NAME` does, from
        the catalog's verdicts plus the newest version's other examples (a Raven table's), with
        as many weak negatives as that version; store the new version and apply it.

        Busy when a run (or another `learn`) holds the catalog; BadRequest when learning refuses
        (e.g. no positive example maps to a stored window)."""
        by = clean_text(by, "reviewer", MAX_REVIEWER_CHARS)
        c = self.classifier(name)
        started = time.monotonic()
        with self._retrain_lock:
            try:
                result = learn(self.settings.results, c["label"], name=c["name"],
                               config_fingerprint=c["embedding_fingerprint"], by=by,
                               weak_negatives=c["n_weak_negative"], keep_examples=True)
            except ResultsBusy as exc:
                raise Busy(f"retrain refused: {exc}") from None
            except ConfigError as exc:
                raise BadRequest(f"retrain refused: {exc}") from None
        new = result.classifier
        log.info("%s: retrained %s -> %s (%s)", by, c["classifier_id"], new.classifier_id,
                 "new version" if result.new_version else "unchanged")
        return {
            "classifier_id": new.classifier_id, "version": new.version,
            "new_version": result.new_version, "n_positive": new.n_positive,
            "n_negative": new.n_negative, "n_weak_negative": new.n_weak_negative,
            "cv_folds": new.cv_folds, "cv_precision": new.cv_precision,
            "cv_recall": new.cv_recall, "cv_roc_auc": new.cv_roc_auc,
            "applied_windows": result.applied.windows if result.applied else 0,
            "not_used": result.skipped + result.mapped.problems,
            "seconds": round(time.monotonic() - started, 2),
        }


    def retrain_if_due(self, review: ReviewRow) -> list[dict[str, Any]]:
        """With `retrain_every` N: retrain each classifier of the verdict's label (or the label
        an "other" verdict names) whose verdicts since its newest version reached N, as the
        Retrain button does; what each retrain did (or why it was refused) is kept for the page
        and returned. A refused retrain (a run holds the catalog) is tried again at the next
        verdict; one that gave the same weights waits for N more verdicts."""
        every = self.settings.retrain_every
        if every is None or review.verdict not in ("correct", "wrong", "other"):
            return []
        labels = {review.label.casefold()} | (
            {review.corrected_label.casefold()} if review.corrected_label else set())
        done = []
        for c in self.classifiers():
            if c["label"].casefold() not in labels:
                continue
            last = self.auto_retrains.get(c["name"], {})
            since = c["new_verdicts"] - (last.get("at_verdicts", 0)
                                         if last.get("from") == c["classifier_id"] else 0)
            if since < every:
                continue
            event: dict[str, Any] = {"classifier": c["name"], "from": c["classifier_id"],
                                     "after_verdicts": c["new_verdicts"], "every": every}
            try:
                event.update(self.retrain(c["name"], review.reviewer), refused=None)
                # the same weights: no new version, so wait for `every` more verdicts on this one
                event["at_verdicts"] = 0 if event["new_version"] else c["new_verdicts"]
            except (Busy, BadRequest) as exc:
                event.update(refused=str(exc), at_verdicts=0)
                log.warning("automatic retrain of %s after %d verdicts: %s", c["name"],
                            c["new_verdicts"], exc)
            self.auto_retrains[c["name"]] = event
            done.append(event)
        return done


@functools.lru_cache(maxsize=1)
def birdnet_common_names() -> tuple[str, ...]:
    """BirdNET V2.4's common names (the label column's values for BirdNET runs)."""

    try:
        return tuple(sorted({split_birdnet_label(label).common_name for label in birdnet_labels()}))
    except (FileNotFoundError, ValueError) as exc:
        log.warning("no BirdNET label list for completion: %s", exc)
        return ()
