-- purpose: the run report's table: top-1 detections per deployment and species for one run
-- grain: one row per deployment and species; parameters: $1 = run_id
-- inputs: the detections view (catalog threshold applies)
with final as (
    select
        deployment_id,
        label,
        scientific_name,
        count(*) as windows,
        round(max(score), 3) as max_score,
        min(start_utc) as first_utc,
        max(start_utc) as last_utc
    from detections
    where rank = 1 and run_id = $1
    group by deployment_id, label, scientific_name
    order by deployment_id, windows desc, label
)

select * from final
