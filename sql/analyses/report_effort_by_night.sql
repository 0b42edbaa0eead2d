-- purpose: effort per deployment and night, with what failed: the report's effort table
-- grain: one row per deployment and night (windows without a local time: night null)
-- inputs: windows, deployments, the detections view (threshold, species filters), the qc_failed_windows view
-- night = the local date of (local time - 12 h), as in species_by_night. With qc = 'exclude' (the
-- default) ok windows whose quality verdict is silent, dropout or clipped are not minutes analysed
-- and their detections are not counted; windows_qc_failed says how many (docs/effort.md).
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: qc varchar = 'exclude' -- exclude: windows that failed quality (silent, dropout, clipped) are neither effort nor detections; include: they are both
with qc_failed as (
    select recording_id, channel, window_index
    from qc_failed_windows
    where config_fingerprint = getvariable('config_fingerprint')
),

planned as (
    select
        w.deployment_id,
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(w.start_local - interval 12 hour as date) as night_date,
        w.*
    from windows as w
    left join deployments as d on d.deployment_id = w.deployment_id
    where w.config_fingerprint = getvariable('config_fingerprint')
),

heard as (
    select
        deployment_id,
        cast(start_local - interval 12 hour as date) as night_date,
        count(distinct (recording_id, channel, window_index)) as detections,
        count(distinct (label, scientific_name)) as species
    from detections
    anti join qc_failed as f using (recording_id, channel, window_index)
    where config_fingerprint = getvariable('config_fingerprint')
    group by all
),

final as (
    select
        p.deployment_id,
        p.site_id,
        p.night_date,
        count(distinct p.recording_id) as recordings,
        round(coalesce(sum(p.duration_s) filter (
            where p.status = 'ok' and (c.qc = 'include' or coalesce(p.qc, 'ok') = 'ok')), 0) / 60.0, 2)
            as minutes_analysed,
        count(*) filter (where p.status = 'ok') as windows_ok,
        count(*) filter (where p.status = 'empty') as windows_empty,
        count(*) filter (where p.status = 'failed') as windows_failed,
        count(*) filter (where p.status = 'ok' and p.qc <> 'ok') as windows_qc_failed,
        coalesce(any_value(h.detections), 0) as detections,
        coalesce(any_value(h.species), 0) as species
    from planned as p
    cross join qc_choice as c
    left join heard as h
        on h.deployment_id = p.deployment_id and h.night_date is not distinct from p.night_date
    group by p.deployment_id, p.site_id, p.night_date
)

select * from final order by deployment_id, night_date
