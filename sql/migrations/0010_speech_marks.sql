-- purpose: version 10 — the privacy gate for human speech (docs/privacy.md): one row per window
-- checked for speech (Silero VAD on every model; BirdNET's Human vocal class as well), committed
-- with the window in the same transaction. Windows analysed before this version have no row: the
-- `window_speech` view says "not checked" for them. Frozen history: never edit; add a migration.
create table if not exists speech_marks (
    run_id varchar not null,
    config_fingerprint varchar not null,
    recording_id varchar not null,
    deployment_id varchar not null,
    channel smallint not null,
    window_index integer not null,
    offset_s double not null,
    window_s double not null,
    date date,
    speech boolean not null,
    speech_s double not null,
    detector_max_prob double not null,
    model_speech_score double,
    detector varchar not null
);
alter table speech_marks set partitioned by (deployment_id, date);
