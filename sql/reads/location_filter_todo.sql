-- purpose: the (deployment, BirdNET week) pairs the location filter has not asked the meta-model
-- about yet, or asked about other coordinates than the deployment's now
-- grain: one row per deployment with coordinates and BirdNET week of its windows' local dates
with weeks as (
    select distinct
        deployment_id,
        cast((month(start_local) - 1) * 4 + least(4, (day(start_local) - 1) // 7 + 1) as smallint) as week
    from windows
    where start_local is not null
),

asked as (
    select deployment_id, week, any_value(latitude) as latitude, any_value(longitude) as longitude
    from species_occurrence
    group by deployment_id, week
),

final as (
    select w.deployment_id, w.week, d.latitude, d.longitude
    from weeks as w
    inner join deployments as d on d.deployment_id = w.deployment_id
    left join asked as a on a.deployment_id = w.deployment_id and a.week = w.week
    where d.latitude is not null and d.longitude is not null
        and (a.deployment_id is null or a.latitude <> d.latitude or a.longitude <> d.longitude)
)

select * from final order by deployment_id, week
