-- purpose: which species were heard at each site on each night, with that night's effort
-- grain: one row per site, night and species
-- inputs: the detections view (threshold, species filters), windows, window_light, deployments
-- night = the local date of (local time - 12 h): 23:30 on day D and 01:30 on day D+1 are both
-- night D. detections = windows in which the species was detected (any answer rank).
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: light_class varchar = null -- only windows in this light: day, civil_twilight, nautical_twilight, astronomical_twilight, night, polar_day, polar_night (null: all)
with heard as (
    select
        coalesce(site_id, deployment_id) as site_id,
        cast(start_local - interval 12 hour as date) as night_date,
        *
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
        and start_local is not null
        and (getvariable('light_class') is null or light_class = getvariable('light_class'))
),

effort as (
    select
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(w.start_local - interval 12 hour as date) as night_date,
        coalesce(sum(w.duration_s) filter (where w.status = 'ok'), 0) / 3600.0 as effort_hours
    from windows as w
    left join deployments as d on d.deployment_id = w.deployment_id
    left join window_light as l
        on l.recording_id = w.recording_id
        and l.config_fingerprint = w.config_fingerprint
        and l.channel = w.channel
        and l.window_index = w.window_index
    where w.config_fingerprint = getvariable('config_fingerprint')
        and w.start_local is not null
        and (getvariable('light_class') is null or l.light_class = getvariable('light_class'))
    group by all
),

per_species as (
    select
        site_id,
        night_date,
        scientific_name,
        label,
        count(distinct (recording_id, channel, window_index)) as detections,
        round(max(score), 3) as max_score,
        min(start_local) as first_local,
        max(start_local) as last_local
    from heard
    group by site_id, night_date, scientific_name, label
),

final as (
    select s.*, e.effort_hours
    from per_species as s
    left join effort as e using (site_id, night_date)
)

select * from final order by site_id, night_date, detections desc, label
