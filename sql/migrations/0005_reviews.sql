-- purpose: version 5 — people's verdicts on detections (the review page, Raven imports) and the
-- per-species thresholds `dawnchorus calibrate` fits from them. Frozen history: never edit.

create table if not exists reviews (
    review_id varchar not null,
    reviewed_at timestamptz not null,
    reviewer varchar not null,
    recording_id varchar not null,       -- the window key: recording, fingerprint, channel, window
    config_fingerprint varchar not null,
    channel smallint not null,
    window_index integer not null,
    deployment_id varchar not null,
    label varchar not null,              -- the model's label that was reviewed
    score double not null,               -- the model's score for it (kept if the recording changes)
    verdict varchar not null,            -- correct | wrong | unsure | other
    corrected_label varchar,             -- for other: the species actually heard
    via varchar not null                 -- page | raven
);

create table if not exists thresholds (
    config_fingerprint varchar not null,
    label varchar not null,
    target_precision double not null,
    threshold double,                    -- NULL: not calibrated (status says why)
    status varchar not null,             -- calibrated | too_few_reviews | one_outcome | separated | not_increasing
    n_reviewed bigint not null,
    n_correct bigint not null,
    n_unsure bigint not null,
    min_reviews integer not null,
    intercept double,
    slope double,
    slope_se double,
    log_likelihood double,
    null_log_likelihood double,
    iterations integer,
    score_min double,
    score_max double,
    calibrated_at timestamptz not null
);
