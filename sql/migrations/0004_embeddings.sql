-- purpose: version 4 — audio embeddings: one vector per analysed window when a run asks for them
-- (`dawnchorus run --embeddings`), committed with the window's effort row and predictions.
-- DuckLake keeps FLOAT[] lists, not fixed-size FLOAT[N] arrays: the writer checks the length.
create table if not exists embeddings (
    run_id varchar not null,
    model_id varchar not null,
    config_fingerprint varchar not null,
    recording_id varchar not null,
    deployment_id varchar not null,
    channel smallint not null,
    window_index integer not null,
    offset_s double not null,
    start_utc timestamptz,
    date date,
    vector float[] not null
);

alter table embeddings set partitioned by (deployment_id, date);
