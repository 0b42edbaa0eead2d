-- purpose: every detection with its absolute (UTC) and local time, local day, hour and night
-- grain: one row per detection: recording, channel, window and answer rank
-- inputs: the detections view (threshold, species filters)
-- night = the local date of (local time - 12 h): a detection at 01:30 belongs to the night that
-- began the evening before. Local time is the wall clock of the recording's zone (tz_name).
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
-- param: species varchar = null -- only this species (scientific or common name, any case)
with picked as (
    select *
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
        and (getvariable('species') is null
            or lower(scientific_name) = lower(getvariable('species'))
            or lower(label) = lower(getvariable('species')))
),

final as (
    select
        deployment_id,
        coalesce(site_id, deployment_id) as site_id,
        recording_id,
        uri,
        channel,
        window_index,
        offset_s,
        end_offset_s,
        start_utc,
        start_local,
        tz_name,
        cast(start_local as date) as local_date,
        hour(start_local) as local_hour,
        cast(start_local - interval 12 hour as date) as night_date,
        label,
        scientific_name,
        score,
        rank,
        model_id,
        run_id
    from picked
)

select * from final order by site_id, start_utc, channel, rank
