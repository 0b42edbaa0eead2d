-- purpose: which species were heard at which local hour, per deployment and local date
-- grain: one row per deployment, local date, local hour and species
-- inputs: the detections view (threshold, species filters)
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
with heard as (
    select *
    from detections
    where config_fingerprint = getvariable('config_fingerprint')
),

final as (
    select
        deployment_id,
        cast(start_local as date) as local_date,
        hour(start_local) as local_hour,
        label,
        scientific_name,
        count(distinct (recording_id, channel, window_index)) as detections,
        round(max(score), 3) as max_score
    from heard
    group by all
)

select * from final order by deployment_id, local_date, local_hour, detections desc, label
