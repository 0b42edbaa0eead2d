-- purpose: version 1 of the catalog, as the first release created it (tables, partitioning,
-- default settings). Frozen history: never edit; add a migration instead.


create table if not exists deployments (
    deployment_id varchar not null,
    site_id varchar,
    latitude double,
    longitude double,
    recorder varchar,
    timezone varchar,
    start_utc timestamptz,
    end_utc timestamptz,
    extra varchar,            -- JSON object of any further deployments.csv columns
    updated_run_id varchar
);

create table if not exists recordings (
    recording_id varchar not null,   -- hash of uri + size + etag/mtime: a changed file is a new recording
    deployment_id varchar not null,
    uri varchar not null,
    object_key varchar not null,     -- path below the source root
    size_bytes bigint,
    etag varchar,
    mtime timestamptz,
    duration_s double,
    frames bigint,
    sample_rate_hz integer,
    channels integer,
    format varchar,
    subtype varchar,
    start_utc timestamptz,
    tz_name varchar,
    time_source varchar,             -- filename | audiomoth_comment | guano | unknown
    tz_source varchar,               -- filename | audiomoth_comment | guano | deployment | assumed_utc | unknown
    status varchar not null,         -- ok | failed | skipped
    error varchar,
    run_id varchar not null,         -- the run that discovered it
    discovered_at timestamptz
);

create table if not exists windows (
    run_id varchar not null,
    config_fingerprint varchar not null,
    recording_id varchar not null,
    deployment_id varchar not null,
    channel smallint not null,       -- 0 = mean of all channels; 1..N = that channel (Raven numbering)
    window_index integer not null,
    offset_s double not null,        -- from the start of the file
    window_s double not null,        -- nominal window length
    duration_s double not null,      -- seconds of real audio in the window
    start_utc timestamptz,
    start_local timestamp,           -- wall-clock time in the recording's tz_name
    date date,                       -- UTC date of start_utc (partition key)
    status varchar not null,         -- ok | empty | failed
    padded boolean not null,
    error varchar
);

create table if not exists predictions (
    run_id varchar not null,
    model_id varchar not null,
    config_fingerprint varchar not null,
    recording_id varchar not null,
    deployment_id varchar not null,
    channel smallint not null,
    window_index integer not null,
    offset_s double not null,
    start_utc timestamptz,
    start_local timestamp,
    date date,
    task varchar not null,           -- detect | classify
    prompt_id varchar not null,
    rank integer not null,           -- 1 = the model's best answer for this window and task
    answer_text varchar,
    label varchar,
    scientific_name varchar,
    score double not null            -- probability in [0, 1]
);

create table if not exists runs (
    run_id varchar not null,
    flow varchar not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status varchar not null,         -- running | completed | failed
    parameters varchar,              -- JSON of the run settings
    config_fingerprint varchar,
    model_id varchar,
    code_version varchar,
    counts varchar                   -- JSON: recordings new/changed/failed, units, windows, predictions
);

create table if not exists settings (
    key varchar not null,
    value varchar not null
);

alter table windows set partitioned by (deployment_id, date);
alter table predictions set partitioned by (deployment_id, date);

insert into settings values ('detection_threshold', '0.5');
