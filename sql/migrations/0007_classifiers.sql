-- purpose: version 7 — classifiers learned from examples on stored embeddings (`dawnchorus
-- learn`): one row per version; their predictions are ordinary `predictions` rows under their own
-- model_id and config_fingerprint. Frozen history: never edit; add a migration instead.
create table if not exists classifiers (
    classifier_id varchar not null,      -- name@version
    name varchar not null,
    version integer not null,
    label varchar not null,
    model_id varchar not null,           -- classifier:NAME@sha256:DIGEST (its predictions' model_id)
    config_fingerprint varchar not null, -- its predictions' fingerprint
    digest varchar not null,
    embedding_fingerprint varchar not null,
    embedding_model_id varchar not null,
    weights double[] not null,           -- on the unit-length stored vector
    bias double not null,
    scheme varchar not null,             -- JSON
    examples varchar not null,           -- JSON list of labelled windows
    n_positive integer not null,
    n_negative integer not null,
    n_weak_negative integer not null,
    cv_folds integer,
    cv_precision double,
    cv_recall double,
    cv_roc_auc double,
    metrics varchar not null,            -- JSON
    created_at timestamptz not null,
    created_by varchar not null
);
