-- purpose: analysed audio (effort) per site and local day (the site_day_effort view)
-- grain: one row per site and local date with at least one planned window
-- inputs: the site_day_effort view (windows, deployments)
-- Hours analysed count windows with status ok only: empty windows (no audio) and failed ones are
-- not effort. Windows whose recording has no known start time have no local date and are left out.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
with final as (
    select
        site_id,
        local_date,
        windows,
        windows_ok,
        windows_empty,
        windows_failed,
        effort_hours as hours_analysed,
        first_local,
        last_local
    from site_day_effort
    where config_fingerprint = getvariable('config_fingerprint')
)

select * from final order by site_id, local_date
