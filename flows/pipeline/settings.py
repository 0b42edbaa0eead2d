"""The one typed settings object every flow takes, and the config fingerprint derived from it."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from connectors.location import ResultsLocation, masked_url
from flows.outputs.redact import mask_secrets
from naturelm_core.backend import BACKENDS, TASKS, BackendError, backend_class, check_options

#: Options that may hold credentials: masked whenever settings are written as JSON (the runs
#: table, Prefect's flow-run parameters, reports), kept as given in memory. A deployment run
#: therefore takes its credentials from the worker's environment (AWS_* variables, an instance
#: role), never from its parameters.
Options = Annotated[dict[str, Any], PlainSerializer(mask_secrets, when_used="json")]
#: A catalog URL may carry a password (better: PGPASSWORD or ~/.pgpass); JSON never shows it.
CatalogUrl = Annotated[str | None, PlainSerializer(lambda v: v and masked_url(v), when_used="json")]

#: Resampler identity, part of the fingerprint: changing it changes every window's samples.
RESAMPLER = "soxr-HQ"
#: Audio per work unit when `windows_per_unit` is not given: a crash loses at most this much, and
#: a run commits (and writes to the catalog) once per unit, whatever the window length.
UNIT_AUDIO_S = 300.0
#: The window of a run whose model takes any length (declares no native window).
DEFAULT_WINDOW_S = 10.0
#: Shortest and longest window (and hop) a run may ask for. The floor is a millisecond: at least
#: 16 samples at the lowest rate any backend takes (16 kHz), so a window always holds samples;
#: the ceiling bounds one window's samples in memory (an hour at 48 kHz is 690 MB of float32).
MIN_WINDOW_S = 0.001
MAX_WINDOW_S = 3600.0
#: Ceilings of the counts and amounts a run reserves: far above any real run, low enough that a
#: typo (an extra zero, 1e308) is refused before anything is planned or reserved.
MAX_BATCH_SIZE = 4096
MAX_ACTORS = 1024
MAX_CPUS = 1024.0
MAX_GPUS = 64.0
MAX_WINDOWS_PER_UNIT = 1_000_000
MAX_WAIT_S = 7 * 24 * 3600.0


def _known_tasks(tasks: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"tasks {list(tasks)}: expected a non-empty subset of {list(TASKS)}")
    return tasks


def _known_model(model: str) -> str:
    if model not in BACKENDS:
        raise ValueError(f"model {model!r}: expected one of {sorted(BACKENDS)}")
    return model


# Checked the same way wherever a model and its tasks are named (a run, a cascade stage).
TaskList = Annotated[tuple[str, ...], AfterValidator(_known_tasks)]
ModelName = Annotated[str, AfterValidator(_known_model)]


class CascadeStage(BaseModel):
    """A later stage of a cascade: another model answers only the windows the stage before it
    passed, optionally over that stage's top-k species as its candidate list.

    Runs as a second pass over the previous stage's committed rows (`flows.pipeline.cascade`), on the
    same windows, under its own fingerprint.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model: ModelName = Field(description="Model backend of this stage: " + ", ".join(sorted(BACKENDS)))
    model_options: Options = Field(default_factory=dict, description="Keyword options of its backend")
    tasks: TaskList = Field(("classify",), description="Tasks this stage asks")
    pass_task: Literal["detect", "classify"] = Field(
        "detect", description="The previous stage's task whose score decides which windows go on")
    pass_threshold: float = Field(
        0.5, ge=0, le=1, description="A window goes on when that task's best score reaches this")
    candidates_top_k: int | None = Field(
        None, gt=0, le=MAX_BATCH_SIZE,
        description="classify over the previous stage's top-k classify labels of "
                    "the window (constrained classification); None: the model's own")

    @model_validator(mode="after")
    def _options_fit_the_model(self) -> "CascadeStage":
        _check_model_options(self.model, self.model_options)
        return self

    @model_validator(mode="after")
    def _candidates_need_classify(self) -> "CascadeStage":
        if self.candidates_top_k is not None and "classify" not in self.tasks:
            raise ValueError("candidates_top_k is a candidate list for classify, which this "
                             f"stage does not ask (tasks {list(self.tasks)})")
        return self


def _check_model_options(model: str, options: dict[str, Any]) -> None:
    """Model options the backend cannot take are refused here, before anything runs."""
    try:
        check_options(model, options)
    except BackendError as exc:
        raise ValueError(str(exc)) from None


class RunSettings(BaseModel):
    """What to analyse, with which model, and where results go.

    Every number is finite (NaN and infinities are refused) and within its field's range.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    source: str = Field(
        min_length=1, description="Source root: a local folder, file:// or s3://bucket/prefix"
    )
    results: str = Field(
        min_length=1,
        description="Results root: a local folder, or s3://bucket/prefix for the Parquet data files",
    )
    catalog: CatalogUrl = Field(
        None, description="Catalog: a SQLite file (default: <results>/catalog.sqlite) or "
                          "postgresql://user@host:port/db (a team's; several runs write at once)",
    )
    model: ModelName = Field("birdnet", description="Model backend: " + ", ".join(sorted(BACKENDS)))
    model_options: Options = Field(
        default_factory=dict, description="Keyword options of the backend (weights paths, top_k...)"
    )
    tasks: TaskList = Field(TASKS, description="Tasks asked of every window")
    window_s: float | None = Field(
        None, ge=MIN_WINDOW_S, le=MAX_WINDOW_S,
        description="Window length, seconds (default: the model's native window, BirdNET 3 s, "
                    "NatureLM 10 s)",
    )
    hop_s: float | None = Field(None, ge=MIN_WINDOW_S, le=MAX_WINDOW_S,
                                description="Hop between window starts (default: window_s)")
    tail: Literal["pad", "drop", "shift"] = Field(
        "pad", description="Last partial window: pad and flag it, drop it, or shift it back"
    )
    channel_policy: Literal["mean", "each"] = Field(
        "mean", description="Mean to mono (channel 0), or each channel on its own (1..N)"
    )
    windows_per_unit: int | None = Field(
        None, gt=0, le=MAX_WINDOWS_PER_UNIT,
        description="Work-unit size: a crash loses at most this many windows (default: 5 minutes "
                    "of windows)",
    )
    batch_size: int = Field(16, gt=0, le=MAX_BATCH_SIZE, description="Windows per model call")
    model_actors: int = Field(1, gt=0, le=MAX_ACTORS,
                              description="Model replicas (one per GPU in production)")
    decode_cpus: float = Field(1.0, gt=0, le=MAX_CPUS, description="Logical CPUs reserved per decode task")
    actor_cpus: float = Field(1.0, ge=0, le=MAX_CPUS, description="Logical CPUs reserved per model actor")
    actor_gpus: float = Field(0.0, ge=0, le=MAX_GPUS, description="GPUs per model actor")
    decode_workers: int | None = Field(
        None, gt=0, le=MAX_BATCH_SIZE, description="Most decode tasks at once when decoding runs in tasks "
                                "(decode_placement; default: as many as the CPUs allow)"
    )
    decode_placement: Literal["auto", "tasks", "actor"] = Field(
        "auto",
        description="Where windows are decoded: 'tasks' (Ray tasks of their own, over every CPU: "
                    "for GPU actors), 'actor' (inside each model actor, overlapped with "
                    "inference: no audio through the object store), 'auto' (actor when the "
                    "model actor has no GPU)",
    )
    commit_interval_s: float = Field(
        15.0, ge=0, le=MAX_WAIT_S,
        description="Finished units wait at most this long to commit together (0: each at once)",
    )
    deployments: tuple[str, ...] | None = Field(
        None, description="Only these deployment ids (backfills); None = all"
    )
    retry_failed: bool = Field(False, description="Plan windows that failed before again")
    embeddings: bool = Field(
        False, description="Also write one audio embedding per analysed window to the embeddings "
                           "table (models that have them: BirdNET, CLAP, NatureLM)"
    )
    storage_options: Options = Field(
        default_factory=dict,
        description="s3fs options for every s3:// place of the run, source and results "
                    "(client_kwargs.endpoint_url, ...); credentials belong in AWS_* variables",
    )
    lease_wait_s: float = Field(
        0.0, ge=0, le=MAX_WAIT_S, description="Seconds to wait for a live run holding this catalog (SQLite) or "
                               "these deployments (Postgres) before giving up; 0 = at once",
    )
    cascade: tuple[CascadeStage, ...] = Field(
        (), description="Later stages: each answers only the windows the stage before it passed "
                        "(JSON list of {model, model_options, tasks, pass_task, pass_threshold, "
                        "candidates_top_k})"
    )
    speech_gate: bool = Field(
        True, description="Privacy gate (docs/privacy.md): withhold the audio of windows marked as "
                          "human speech from the review page, report clips, Camtrap DP media and "
                          "similar; --no-speech-gate serves it (studies that need it). Windows "
                          "are marked either way; not part of the fingerprint"
    )

    @model_validator(mode="after")
    def _hop_fits(self) -> "RunSettings":
        if self.hop_s is not None and self.window_s is not None and self.hop_s > self.window_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed window_s ({self.window_s})")
        return self

    @model_validator(mode="after")
    def _options_fit_the_model(self) -> "RunSettings":
        _check_model_options(self.model, self.model_options)
        return self

    @model_validator(mode="after")
    def _deployment_ids(self) -> "RunSettings":
        if self.deployments is not None and not all(d.strip() and "/" not in d for d in self.deployments):
            raise ValueError(f"deployments {list(self.deployments)}: each a deployment folder's "
                             "name (not empty, no '/')")
        return self

    @property
    def location(self) -> ResultsLocation:
        """Where the catalog is and where its data files go (ConfigError if they cannot be)."""
        return ResultsLocation.resolve(self.results, self.catalog, self.storage_options)

    @property
    def effective_hop_s(self) -> float:
        if self.window_s is None:
            raise ValueError("window_s is not resolved yet: call resolve_settings first")
        return self.hop_s if self.hop_s is not None else self.window_s

    def public_json(self) -> str:
        """These settings as JSON with every credential masked: what a run stores and shows."""
        return self.model_dump_json()


def declared_native_window(model: str) -> float | None:
    """The native window a backend's class declares (None: any length, or a window that depends
    on its options, such as CLAP's family, which only `describe` tells)."""
    declared = backend_class(model).native_window_s
    return float(declared) if isinstance(declared, (int, float)) else None


def resolve_settings(settings: RunSettings, native_window_s: float | None) -> RunSettings:
    """These settings with every model-dependent default filled in, once, before fingerprinting.

    `window_s` defaults to the backend's native window (`BackendInfo.native_window_s`: no model
    work on overlap or padding the run did not ask for; DEFAULT_WINDOW_S for a model that takes
    any length); `windows_per_unit` to `UNIT_AUDIO_S` of windows. A resolved run stores and
    fingerprints the numbers it used, so changing a default later never mixes results.
    """
    window_s = settings.window_s or native_window_s or DEFAULT_WINDOW_S
    hop_s = settings.hop_s if settings.hop_s is not None else window_s
    per_unit = settings.windows_per_unit or max(1, round(UNIT_AUDIO_S / hop_s))
    # Validated again: a hop given with no window is checked against the native window here.
    return RunSettings.model_validate(
        {**settings.model_dump(), "window_s": window_s, "windows_per_unit": per_unit}
    )


def config_fingerprint(settings: RunSettings, model_id: str, model_settings: dict[str, Any]) -> str:
    """Hash of everything that changes answers; results of two fingerprints never mix.

    Takes resolved settings (`resolve_settings`): the window is a number, never "the default".
    Embeddings are not answers: `--embeddings` adds vectors to the same analysis (its windows
    without a vector are analysed again for them, `flows.pipeline.plan`), under the same
    fingerprint. What shapes a vector (the model and its options) is already in the hash.
    """
    if settings.window_s is None:
        raise ValueError("config_fingerprint needs resolved settings (window_s is None)")
    answer_changing = {
        "model_id": model_id,
        "model_settings": model_settings,
        "tasks": sorted(settings.tasks),
        "window_s": settings.window_s,
        "hop_s": settings.effective_hop_s,
        "tail": settings.tail,
        "channel_policy": settings.channel_policy,
        "resampler": RESAMPLER,
    }
    canonical = json.dumps(answer_changing, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def cascade_fingerprint(settings: RunSettings, stage: CascadeStage, upstream: str, model_id: str,
                        model_settings: dict[str, Any]) -> str:
    """The fingerprint of a cascade stage: its model and tasks, the stage it follows (that
    stage's fingerprint), the rule that passes windows on and where its candidates come from."""
    answer_changing = {
        "upstream": upstream,
        "model_id": model_id,
        "model_settings": model_settings,
        "tasks": sorted(stage.tasks),
        "pass": {"task": stage.pass_task, "threshold": stage.pass_threshold},
        "candidates_top_k": stage.candidates_top_k,
        "window_s": settings.window_s,
        "hop_s": settings.effective_hop_s,
        "tail": settings.tail,
        "channel_policy": settings.channel_policy,
        "resampler": RESAMPLER,
    }
    canonical = json.dumps(answer_changing, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
