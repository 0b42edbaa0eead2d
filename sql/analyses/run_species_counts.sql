-- purpose: the run report's table: detections per deployment and species among this run's windows
-- grain: one row per deployment and species
-- inputs: the detections view (threshold, species filters)
-- param: run_id varchar -- the run (required)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
with final as (
    select
        deployment_id,
        label,
        scientific_name,
        count(distinct (recording_id, channel, window_index)) as detections,
        round(max(score), 3) as max_score,
        min(start_utc) as first_utc,
        max(start_utc) as last_utc
    from detections
    where run_id = getvariable('run_id')
    group by deployment_id, label, scientific_name
)

select * from final order by deployment_id, detections desc, label
