-- purpose: first and last detection of each species at each site (arrival and departure dates),
--   the first one also in solar time (minutes from that day's sunrise, and its light class)
-- grain: one row per site and species
-- inputs: the detections view (threshold, species filters)
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
with heard as (
    select coalesce(site_id, deployment_id) as site_id, *
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
),

final as (
    select
        site_id,
        scientific_name,
        label,
        min(start_utc) as first_utc,
        min(start_local) as first_local,
        arg_min_null(minutes_from_sunrise, start_utc) as first_minutes_from_sunrise,
        arg_min_null(light_class, start_utc) as first_light_class,
        max(start_utc) as last_utc,
        max(start_local) as last_local,
        count(distinct (recording_id, channel, window_index)) as detections,
        count(distinct cast(start_local - interval 12 hour as date)) as nights_detected
    from heard
    group by site_id, scientific_name, label
)

select * from final order by site_id, first_utc, label
