-- purpose: quality per deployment and night: how much analysed audio was silent (a dead
-- microphone), had dropouts (card errors) or was clipped (wind, rain on the microphone)
-- grain: one row per deployment and night with an analysed window (windows without a local time:
-- night null)
-- inputs: windows, deployments
-- Counts ok windows only (empty and failed ones were not analysed; effort_by_day counts them).
-- night = the local date of (local time - 12 h), as in species_by_night. windows_not_measured:
-- analysed before quality was measured (schema version 9), so their quality is unknown; they
-- count as effort whatever qc says. Thresholds: docs/effort.md, "Quality per window".
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
with analysed as (
    select
        w.deployment_id,
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(w.start_local - interval 12 hour as date) as night_date,
        w.duration_s,
        w.qc,
        w.rms_dbfs,
        w.clipped_fraction,
        w.zero_run_s
    from windows as w
    left join deployments as d on d.deployment_id = w.deployment_id
    where w.config_fingerprint = getvariable('config_fingerprint')
        and w.status = 'ok'
),

final as (
    select
        deployment_id,
        site_id,
        night_date,
        count(*) as windows_analysed,
        count(*) filter (where qc = 'ok') as windows_qc_ok,
        count(*) filter (where qc = 'silent') as windows_silent,
        count(*) filter (where qc = 'dropout') as windows_dropout,
        count(*) filter (where qc = 'clipped') as windows_clipped,
        count(*) filter (where qc is null) as windows_not_measured,
        round(coalesce(sum(duration_s) filter (where qc <> 'ok'), 0) / 60.0, 2)
            as minutes_qc_failed,
        round(median(rms_dbfs), 1) as median_rms_dbfs,
        round(min(rms_dbfs), 1) as min_rms_dbfs,
        round(max(clipped_fraction), 4) as max_clipped_fraction,
        round(max(zero_run_s), 3) as longest_zero_run_s
    from analysed
    group by deployment_id, site_id, night_date
)

select * from final order by deployment_id, night_date
