-- purpose: diel activity: detections per species and local hour of day, with the effort of that hour
-- grain: one row per site, species and local hour (0-23) in which the species was detected
-- inputs: the detections view (threshold, species filters), windows, window_light, deployments, the qc_failed_windows view
-- rate_per_hour = detections / effort_hours, where effort_hours is the audio analysed at that
-- site in that local hour over all days: hours never recorded are absent, not zero.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: species varchar = null -- only this species (scientific or common name, any case)
-- param: light_class varchar = null -- only windows in this light: day, civil_twilight, nautical_twilight, astronomical_twilight, night, polar_day, polar_night (null: all)
-- param: qc varchar = 'exclude' -- exclude: windows that failed quality (silent, dropout, clipped) are neither effort nor detections; include: they are both
with qc_failed as (
    select recording_id, channel, window_index
    from qc_failed_windows
    where config_fingerprint = getvariable('config_fingerprint')
),

heard as (
    select
        coalesce(site_id, deployment_id) as site_id,
        hour(start_local) as local_hour,
        *
    from detections
    anti join qc_failed as f using (recording_id, channel, window_index)
    where config_fingerprint = getvariable('config_fingerprint')
        and start_local is not null
        and (getvariable('species') is null
            or lower(scientific_name) = lower(getvariable('species'))
            or lower(label) = lower(getvariable('species')))
        and (getvariable('light_class') is null or light_class = getvariable('light_class'))
),

effort as (
    select
        coalesce(d.site_id, w.deployment_id) as site_id,
        hour(w.start_local) as local_hour,
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
        and not exists (
            select 1 from qc_failed as f
            where f.recording_id = w.recording_id
                and f.channel = w.channel
                and f.window_index = w.window_index
        )
    group by all
),

per_hour as (
    select
        site_id,
        scientific_name,
        label,
        local_hour,
        count(distinct (recording_id, channel, window_index)) as detections
    from heard
    group by site_id, scientific_name, label, local_hour
),

final as (
    select
        h.*,
        e.effort_hours,
        h.detections / nullif(e.effort_hours, 0) as rate_per_hour
    from per_hour as h
    left join effort as e using (site_id, local_hour)
)

select * from final order by site_id, label, local_hour
