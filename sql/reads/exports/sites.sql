-- purpose: the sites of the chosen deployments, with their coordinates (occupancy site covariates)
-- grain: one row per site
-- inputs: deployments
-- parameters: $deployments (list or NULL)
with final as (
    select
        coalesce(site_id, deployment_id) as site_id,
        avg(latitude) as latitude,
        avg(longitude) as longitude,
        string_agg(deployment_id, ';' order by deployment_id) as deployments
    from deployments
    where $deployments is null or list_contains($deployments, deployment_id)
    group by all
)

select * from final order by site_id
