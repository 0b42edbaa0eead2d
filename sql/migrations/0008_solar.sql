-- purpose: version 8 — the sun at each deployment (docs/time.md, "Solar time"): its events per
-- local day and its elevation every 15 minutes, computed with astral from the deployment's
-- coordinates for the days and times its windows cover (`flows.pipeline.solar`, after every run,
-- so a catalog written before this version gains them at its next run). Frozen history: never
-- edit; add a migration instead.
create table if not exists solar_days (
    deployment_id varchar not null,
    local_date date not null,
    tz_name varchar not null,
    latitude double not null,
    longitude double not null,
    sunrise_utc timestamptz,
    sunset_utc timestamptz,
    noon_utc timestamptz,
    civil_dawn_utc timestamptz,
    civil_dusk_utc timestamptz,
    nautical_dawn_utc timestamptz,
    nautical_dusk_utc timestamptz,
    astronomical_dawn_utc timestamptz,
    astronomical_dusk_utc timestamptz,
    polar varchar,
    computed_by varchar not null
);
create table if not exists solar_samples (
    deployment_id varchar not null,
    slot bigint not null,
    elevation_deg double not null,
    latitude double not null,
    longitude double not null
);
