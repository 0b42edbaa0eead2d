-- purpose: analysed audio per site and local date, for occupancy histories and exports
-- grain: one row per site and local date with at least one planned window
-- inputs: windows, window_light, deployments
-- parameters: $config_fingerprint; $deployments (list or NULL); $date_from, $date_to (or NULL);
-- $light_classes (list of window_light classes, or NULL for all windows); $qc ('exclude': ok
-- windows whose quality verdict is silent, dropout or clipped are not effort; 'include': they are)
with planned as (
    select
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(w.start_local as date) as local_date,
        cast(w.start_local - interval 12 hour as date) as night_date,
        w.status,
        w.duration_s,
        w.status = 'ok' and w.qc <> 'ok' as qc_failed
    from windows as w
    left join deployments as d on d.deployment_id = w.deployment_id
    left join window_light as l
        on l.recording_id = w.recording_id
        and l.config_fingerprint = w.config_fingerprint
        and l.channel = w.channel
        and l.window_index = w.window_index
    where w.config_fingerprint = $config_fingerprint
        and ($light_classes is null or list_contains($light_classes, l.light_class))
        and w.start_local is not null
        and ($deployments is null or list_contains($deployments, w.deployment_id))
        and ($date_from is null or cast(w.start_local as date) >= $date_from)
        and ($date_to is null or cast(w.start_local as date) <= $date_to)
),

final as (
    select
        site_id,
        local_date,
        night_date,
        coalesce(sum(duration_s) filter (
            where status = 'ok' and ($qc = 'include' or not coalesce(qc_failed, false))), 0)
            / 3600.0 as hours_analysed,
        count(*) filter (where qc_failed) as windows_qc_failed
    from planned
    group by site_id, local_date, night_date
)

select * from final order by site_id, local_date, night_date
