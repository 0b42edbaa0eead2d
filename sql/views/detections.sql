-- purpose: the view ecologists query for detections
-- inputs: predictions, windows, recordings, deployments, settings, species_occurrence, thresholds,
-- solar_samples, solar_days
-- detections: one row per classify answer whose score passes its species' threshold: the
-- calibrated one (`dawnchorus calibrate`, table thresholds) where the species has one under the
-- answer's fingerprint, else the catalog's detection threshold (settings key
-- 'detection_threshold'; `dawnchorus query --threshold` chooses one for every species at query
-- time); with absolute and local times and the deployment's site, minus the species the
-- deployment's species filters hide (predictions themselves are never deleted). Columns threshold
-- and threshold_source say which threshold each row passed; sun_elevation_deg, light_class,
-- minutes_from_sunrise and minutes_from_sunset the light of its window (as window_light).
-- Answers of models that locate calls (BatDetect2) carry the call: call_start_s / call_end_s
-- (seconds from the start of the recording), call_start_utc / call_start_local, low_freq_hz /
-- high_freq_hz and detection_score; NULL for window-level answers (docs/bat-analyses.md).
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
        p.call_start_s,
        p.call_end_s,
        p.start_utc + to_microseconds(cast((p.call_start_s - p.offset_s) * 1e6 as bigint))
            as call_start_utc,
        p.start_local + to_microseconds(cast((p.call_start_s - p.offset_s) * 1e6 as bigint))
            as call_start_local,
        p.low_freq_hz,
        p.high_freq_hz,
        p.detection_score,
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
),

-- The light of the detection's window, as the view window_light gives it (its sun columns).
sun as (
    select
        f.*,
        epoch(f.start_utc) + (f.end_offset_s - f.offset_s) / 2 as mid_s,
        cast(f.start_local + to_microseconds(cast((f.end_offset_s - f.offset_s) * 500000 as bigint))
             as date) as local_date
    from final as f
),

lit as (
    select
        x.* exclude (mid_s, local_date),
        a.elevation_deg + (b.elevation_deg - a.elevation_deg) * (x.mid_s - a.slot * 900) / 900.0
            as sun_elevation_deg,
        s.polar,
        (x.mid_s - epoch(s.sunrise_utc)) / 60.0 as minutes_from_sunrise,
        (x.mid_s - epoch(s.sunset_utc)) / 60.0 as minutes_from_sunset
    from sun as x
    left join solar_samples as a
        on a.deployment_id = x.deployment_id
        and a.slot = cast(floor(x.mid_s) as bigint) // 900
    left join solar_samples as b
        on b.deployment_id = x.deployment_id
        and b.slot = cast(floor(x.mid_s) as bigint) // 900 + 1
    left join solar_days as s
        on s.deployment_id = x.deployment_id
        and s.local_date = x.local_date
)

select
    * exclude (polar),
    case
        when polar = 'day' then 'polar_day'
        when polar = 'night' then 'polar_night'
        when sun_elevation_deg is null then null
        when sun_elevation_deg >= -0.833 then 'day'
        when sun_elevation_deg >= -6 then 'civil_twilight'
        when sun_elevation_deg >= -12 then 'nautical_twilight'
        when sun_elevation_deg >= -18 then 'astronomical_twilight'
        else 'night'
    end as light_class
from lit;
