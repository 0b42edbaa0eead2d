-- purpose: detection rate per hour of effort, per site, local day and species
-- grain: one row per site, local date with effort, and species detected at that site
-- inputs: the detections view (threshold, species filters), the site_day_effort view, the qc_failed_windows view
-- rate = detections / effort_hours. A day with effort and no detection of a species has rate 0;
-- a day without effort has no row (unknown, not zero). With qc = 'exclude' (the default) windows
-- whose quality verdict is silent, dropout or clipped count neither as effort nor as detections
-- (docs/effort.md, "Quality per window"); a day left with no effort has rate null.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: qc varchar = 'exclude' -- exclude: windows that failed quality (silent, dropout, clipped) are neither effort nor detections; include: they are both
with effort as (
    select
        e.site_id,
        e.local_date,
        case when c.qc = 'exclude' then e.effort_hours_qc_passed else e.effort_hours end
            as effort_hours
    from site_day_effort as e
    cross join qc_choice as c
    where e.config_fingerprint = getvariable('config_fingerprint')
),

qc_failed as (
    select recording_id, channel, window_index
    from qc_failed_windows
    where config_fingerprint = getvariable('config_fingerprint')
),

heard as (
    select
        coalesce(site_id, deployment_id) as site_id,
        cast(start_local as date) as local_date,
        scientific_name,
        label,
        count(distinct (recording_id, channel, window_index)) as detections
    from detections
    anti join qc_failed as f using (recording_id, channel, window_index)
    where config_fingerprint = getvariable('config_fingerprint')
        and start_local is not null
    group by all
),

site_species as (
    select distinct site_id, scientific_name, label from heard
),

final as (
    select
        e.site_id,
        e.local_date,
        s.scientific_name,
        s.label,
        coalesce(h.detections, 0) as detections,
        e.effort_hours,
        coalesce(h.detections, 0) / nullif(e.effort_hours, 0) as detections_per_hour
    from effort as e
    inner join site_species as s on s.site_id = e.site_id
    left join heard as h
        on h.site_id = e.site_id
        and h.local_date = e.local_date
        and h.scientific_name is not distinct from s.scientific_name
        and h.label is not distinct from s.label
)

select * from final order by site_id, local_date, label
