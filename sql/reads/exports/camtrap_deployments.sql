-- purpose: deployments for a Camtrap DP package, with the period their recordings cover
-- grain: one row per deployment with recordings
-- inputs: deployments, recordings
-- parameters: $deployments (list or NULL)
with covered as (
    select
        deployment_id,
        min(start_utc) as first_start_utc,
        max(start_utc + to_microseconds(cast(duration_s * 1e6 as bigint))) as last_end_utc,
        bool_or(start_utc is null) as some_start_unknown
    from recordings
    where status = 'ok'
    group by deployment_id
),

final as (
    select
        d.*,
        coalesce(d.start_utc, c.first_start_utc) as period_start_utc,
        coalesce(d.end_utc, c.last_end_utc) as period_end_utc,
        c.some_start_unknown
    from deployments as d
    inner join covered as c using (deployment_id)
    where $deployments is null or list_contains($deployments, d.deployment_id)
)

select * from final order by deployment_id
