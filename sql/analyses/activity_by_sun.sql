-- purpose: activity in solar time: detections per species by minutes from sunrise (or sunset), with the effort in each bin
-- grain: one row per site, species and bin of minutes from the sun event in which the species was detected
-- inputs: the detections view (threshold, species filters, solar columns), window_light, windows, deployments, the qc_failed_windows view
-- bin_start_min = the bin's first minute from the local day's sunrise (relative_to = 'sunrise')
-- or sunset ('sunset'), negative before it; a dawn chorus at 05:10 in May and 07:40 in November
-- falls in the same bins. rate_per_hour = detections / effort_hours, effort_hours the audio
-- analysed at that site in that bin over all days (bins never recorded are absent, not zero).
-- Deployments without coordinates, and polar days, have no sunrise: their windows are left out.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: relative_to varchar = 'sunrise' -- sunrise or sunset
-- param: bin_minutes integer = 10 -- width of a bin, minutes
-- param: species varchar = null -- only this species (scientific or common name, any case)
-- param: qc varchar = 'exclude' -- exclude: windows that failed quality (silent, dropout, clipped) are neither effort nor detections; include: they are both
with qc_failed as (
    select recording_id, channel, window_index
    from qc_failed_windows
    where config_fingerprint = getvariable('config_fingerprint')
),

heard as (
    select
        coalesce(site_id, deployment_id) as site_id,
        cast(floor(case when getvariable('relative_to') = 'sunset' then minutes_from_sunset
                        else minutes_from_sunrise end / getvariable('bin_minutes'))
             * getvariable('bin_minutes') as integer) as bin_start_min,
        *
    from detections
    anti join qc_failed as f using (recording_id, channel, window_index)
    where config_fingerprint = getvariable('config_fingerprint')
        and (getvariable('species') is null
            or lower(scientific_name) = lower(getvariable('species'))
            or lower(label) = lower(getvariable('species')))
),

effort as (
    select
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(floor(case when getvariable('relative_to') = 'sunset' then l.minutes_from_sunset
                        else l.minutes_from_sunrise end / getvariable('bin_minutes'))
             * getvariable('bin_minutes') as integer) as bin_start_min,
        coalesce(sum(w.duration_s) filter (where w.status = 'ok'), 0) / 3600.0 as effort_hours
    from windows as w
    inner join window_light as l
        on l.recording_id = w.recording_id
        and l.config_fingerprint = w.config_fingerprint
        and l.channel = w.channel
        and l.window_index = w.window_index
    left join deployments as d on d.deployment_id = w.deployment_id
    where w.config_fingerprint = getvariable('config_fingerprint')
        and not exists (
            select 1 from qc_failed as f
            where f.recording_id = w.recording_id
                and f.channel = w.channel
                and f.window_index = w.window_index
        )
    group by all
),

per_bin as (
    select
        site_id,
        scientific_name,
        label,
        bin_start_min,
        count(distinct (recording_id, channel, window_index)) as detections
    from heard
    where bin_start_min is not null
    group by site_id, scientific_name, label, bin_start_min
),

final as (
    select
        h.*,
        e.effort_hours,
        h.detections / nullif(e.effort_hours, 0) as rate_per_hour
    from per_bin as h
    left join effort as e using (site_id, bin_start_min)
)

select * from final order by site_id, label, bin_start_min
