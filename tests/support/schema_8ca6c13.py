"""The catalog schema as main left it at 8ca6c13 (before the house restructuring): its five
migrations and three views, statement for statement, so a test can build a catalog exactly as
that code wrote it and open it with today's code. Frozen text: never edit it to follow the
current `sql/` files (that would hide a catalog the current code cannot open)."""

from __future__ import annotations

#: The commit these statements are from.
COMMIT = "8ca6c13"

MIGRATIONS: tuple[str, ...] = (
    # sql/migrations/0001_initial.sql
    """\
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
""",
    # sql/migrations/0002_trust.sql
    """\
-- purpose: version 2 — the recorder clock's zone kept apart from the site's zone; run lifecycle
-- (which machine and process drove a run, and when a later run found it dead); a recording's
-- status that says only whether the file is readable.
alter table deployments add column clock_timezone varchar;
alter table runs add column host varchar;
alter table runs add column pid bigint;
alter table runs add column interrupted_at timestamptz;
-- Version 1 marked a readable recording failed when one of its windows failed, and then never
-- planned its other windows again. The windows keep their own failures; the recording is readable.
update recordings set status = 'ok', error = null where status = 'failed' and duration_s is not null;
""",
    # sql/migrations/0003_species_filters.sql
    """\
-- purpose: version 3 — species filters per deployment: include/exclude lists (deployments.csv
-- columns species_include, species_exclude) and BirdNET's location-and-season meta-model answers
-- per deployment, BirdNET week and species; its threshold is a setting (BirdNET's 0.03).
alter table deployments add column species_include varchar[];
alter table deployments add column species_exclude varchar[];

create table if not exists species_occurrence (
    deployment_id varchar not null,
    week smallint not null,          -- BirdNET week 1-48 of the windows' local date
    scientific_name varchar not null,
    label varchar not null,
    occurrence double not null,      -- the meta-model's probability
    latitude double not null,        -- the coordinates it was asked about
    longitude double not null,
    model_id varchar not null,
    run_id varchar not null
);

alter table species_occurrence set partitioned by (deployment_id);

insert into settings values ('location_filter_threshold', '0.03');
""",
    # sql/migrations/0004_embeddings.sql
    """\
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
""",
    # sql/migrations/0005_reviews.sql
    """\
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
""",
)

#: In file-name order, as that code applied and hashed them.
VIEWS: tuple[str, ...] = (
    # sql/views/detections.sql
    """\
-- purpose: the view ecologists query for detections
-- inputs: predictions, windows, recordings, deployments, settings, species_occurrence, thresholds
-- detections: one row per classify answer whose score passes its species' threshold: the
-- calibrated one (`dawnchorus calibrate`, table thresholds) where the species has one under the
-- answer's fingerprint, else the catalog's detection threshold (settings key
-- 'detection_threshold'; `dawnchorus query --threshold` chooses one for every species at query
-- time); with absolute and local times and the deployment's site, minus the species the
-- deployment's species filters hide (predictions themselves are never deleted). Columns threshold
-- and threshold_source say which threshold each row passed.
create or replace view detections as
with threshold as (
    select cast(value as double) as min_score
    from settings
    where key = 'detection_threshold'
),

-- Calibrated per-species thresholds. A reader given its own threshold names itself in settings
-- key 'detection_threshold_source' ('query'): then its threshold applies to every species.
threshold_source as (
    select coalesce(max(value), 'default') as name
    from settings
    where key = 'detection_threshold_source'
),

calibrated as (
    select c.config_fingerprint, c.label, c.threshold as min_score
    from thresholds as c
    cross join threshold_source as s
    where c.threshold is not null and s.name <> 'query'
),

-- Species filters. Location and season: species BirdNET's meta-model gives less than
-- 'location_filter_threshold' at the deployment in the BirdNET week (4 per month, 1-48) of the
-- window's local date (table species_occurrence). Lists: the deployment's species_include /
-- species_exclude, matched on the lower-cased scientific or common name (in `final` below).
unlikely_here_and_now as (
    select o.deployment_id, o.week, o.scientific_name
    from species_occurrence as o
    inner join settings as s
        on s.key = 'location_filter_threshold' and o.occurrence < cast(s.value as double)
),

-- One window length per fingerprint (window_s is part of what a fingerprint hashes): the end of
-- a detection's window without joining every prediction to its window row.
window_length as (
    select config_fingerprint, max(window_s) as window_s
    from windows
    group by config_fingerprint
),

final as (
    select
        p.deployment_id,
        d.site_id,
        d.latitude,
        d.longitude,
        p.recording_id,
        r.uri,
        p.channel,
        p.window_index,
        p.offset_s,
        p.offset_s + w.window_s as end_offset_s,
        p.start_utc,
        p.start_local,
        r.tz_name,
        p.label,
        p.scientific_name,
        p.score,
        p.rank,
        p.model_id,
        p.config_fingerprint,
        p.run_id,
        coalesce(c.min_score, t.min_score) as threshold,
        case when c.min_score is not null then 'calibrated' else ts.name end as threshold_source
    from predictions as p
    -- thresholds (see calibrated)
    left join calibrated as c
        on c.config_fingerprint = p.config_fingerprint
        and c.label = p.label
    inner join threshold as t on p.score >= coalesce(c.min_score, t.min_score)
    cross join threshold_source as ts
    inner join window_length as w on w.config_fingerprint = p.config_fingerprint
    inner join recordings as r on r.recording_id = p.recording_id
    left join deployments as d on d.deployment_id = p.deployment_id
    -- species filters (see unlikely_here_and_now)
    left join unlikely_here_and_now as u
        on u.deployment_id = p.deployment_id
        and u.scientific_name = p.scientific_name
        and u.week = (month(p.start_local) - 1) * 4 + least(4, (day(p.start_local) - 1) // 7 + 1)
    where p.task = 'classify'
        and u.deployment_id is null
        and not coalesce(list_contains(d.species_exclude, lower(p.scientific_name))
                         or list_contains(d.species_exclude, lower(p.label)), false)
        and (d.species_include is null
             or coalesce(list_contains(d.species_include, lower(p.scientific_name))
                         or list_contains(d.species_include, lower(p.label)), false))
)

select * from final;
""",
    # sql/views/effort.sql
    """\
-- purpose: analysed audio per deployment and day
-- inputs: windows
-- effort: one row per deployment, UTC date and fingerprint: how much audio was analysed, failed or
-- empty. Lets an analysis tell "not analysed" from "nothing heard".
create or replace view effort as
with final as (
    select
        deployment_id,
        date,
        config_fingerprint,
        count(*) as windows,
        count(*) filter (where status = 'ok') as windows_ok,
        count(*) filter (where status = 'empty') as windows_empty,
        count(*) filter (where status = 'failed') as windows_failed,
        sum(duration_s) filter (where status = 'ok') as seconds_analysed
    from windows
    group by deployment_id, date, config_fingerprint
)

select * from final;
""",
    # sql/views/species_filter.sql
    """\
-- purpose: the species filters' decision per deployment, BirdNET week and species
-- inputs: species_occurrence, deployments, settings
-- species_filter: one row per deployment, BirdNET week (1-48, four per month, of the windows'
-- local dates) and BirdNET species: the meta-model's occurrence probability, the threshold, and
-- whether the species is kept in detections and exports (and why not). Include/exclude lists
-- also hide species BirdNET does not know; those have no row here.
create or replace view species_filter as
with threshold as (
    select cast(value as double) as min_occurrence
    from settings
    where key = 'location_filter_threshold'
),

final as (
    select
        o.deployment_id,
        o.week,
        o.scientific_name,
        o.label,
        o.occurrence,
        t.min_occurrence as threshold,
        case
            when coalesce(list_contains(d.species_exclude, lower(o.scientific_name))
                          or list_contains(d.species_exclude, lower(o.label)), false)
                then 'excluded by the deployment'
            when d.species_include is not null
                and not coalesce(list_contains(d.species_include, lower(o.scientific_name))
                                 or list_contains(d.species_include, lower(o.label)), false)
                then 'not in the deployment''s include list'
            when o.occurrence < t.min_occurrence then 'unlikely at this place and week'
        end as hidden_because,
        hidden_because is null as kept,
        o.model_id,
        o.run_id
    from species_occurrence as o
    cross join threshold as t
    left join deployments as d on d.deployment_id = o.deployment_id
)

select * from final;
""",
)
