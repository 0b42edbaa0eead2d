-- purpose: analysed audio (effort) per site and local day, from the windows table
-- grain: one row per site and local date with at least one planned window
-- inputs: windows, deployments
-- Hours analysed count windows with status ok only: empty windows (no audio) and failed ones are
-- not effort. Windows whose recording has no known start time have no local date and are left out.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the catalog's only one)
with planned as (
    select
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(w.start_local as date) as local_date,
        w.*
    from windows as w
    left join deployments as d on d.deployment_id = w.deployment_id
    where w.config_fingerprint = getvariable('config_fingerprint')
        and w.start_local is not null
),

final as (
    select
        site_id,
        local_date,
        count(*) as windows,
        count(*) filter (where status = 'ok') as windows_ok,
        count(*) filter (where status = 'empty') as windows_empty,
        count(*) filter (where status = 'failed') as windows_failed,
        coalesce(sum(duration_s) filter (where status = 'ok'), 0) / 3600.0 as hours_analysed,
        min(start_local) as first_local,
        max(start_local) as last_local
    from planned
    group by site_id, local_date
)

select * from final order by site_id, local_date
