-- purpose: which species were heard at which local hour, per deployment (the demo's summary)
-- grain: one row per deployment, local date, local hour and species
-- inputs: the detections view (its threshold applies), top-1 answers only
with top1 as (
    select *
    from detections
    where rank = 1
),

final as (
    select
        deployment_id,
        cast(start_local as date) as local_date,
        hour(start_local) as local_hour,
        label,
        scientific_name,
        count(*) as windows,
        round(max(score), 3) as max_score
    from top1
    group by all
    order by deployment_id, local_date, local_hour, windows desc, label
)

select * from final
