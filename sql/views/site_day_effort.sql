-- purpose: analysed audio (effort) per fingerprint, site and local day: the one definition of
-- effort that the analyses read (daily_richness, detection_rate, species_accumulation,
-- effort_by_day)
-- inputs: windows, deployments
-- site_day_effort: one row per config_fingerprint, site (the deployment's site_id, else its
-- deployment_id) and local date with at least one planned window. Hours count windows with
-- status ok only: empty windows (no audio) and failed ones are not effort. Windows whose
-- recording has no known start time have no local date and are left out.
-- Quality per window (docs/effort.md): windows_qc_failed counts ok windows whose verdict is
-- silent, dropout or clipped; effort_hours_qc_passed leaves them out (windows not measured,
-- analysed before schema version 9, still count); windows_qc_unmeasured counts those.
-- Band (docs/bat-analyses.md, "Band-aware effort"): band_low_hz / band_high_hz are the band
-- every ok window of the day covered (the highest low edge, the lowest top: a day mixing 48 and
-- 384 kHz recordings under a bat model says the narrower); windows_band_unknown counts ok windows
-- analysed before schema version 11, which recorded no band.
create or replace view site_day_effort as
with planned as (
    select
        w.config_fingerprint,
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(w.start_local as date) as local_date,
        w.start_local,
        w.status,
        w.duration_s,
        w.qc,
        w.band_low_hz,
        w.band_high_hz
    from windows as w
    left join deployments as d on d.deployment_id = w.deployment_id
    where w.start_local is not null
),

final as (
    select
        config_fingerprint,
        site_id,
        local_date,
        count(*) as windows,
        count(*) filter (where status = 'ok') as windows_ok,
        count(*) filter (where status = 'empty') as windows_empty,
        count(*) filter (where status = 'failed') as windows_failed,
        coalesce(sum(duration_s) filter (where status = 'ok'), 0) / 3600.0 as effort_hours,
        count(*) filter (where status = 'ok' and qc <> 'ok') as windows_qc_failed,
        count(*) filter (where status = 'ok' and qc is null) as windows_qc_unmeasured,
        coalesce(sum(duration_s) filter (where status = 'ok' and coalesce(qc, 'ok') = 'ok'), 0)
            / 3600.0 as effort_hours_qc_passed,
        min(start_local) as first_local,
        max(start_local) as last_local,
        max(band_low_hz) filter (where status = 'ok') as band_low_hz,
        min(band_high_hz) filter (where status = 'ok') as band_high_hz,
        count(*) filter (where status = 'ok' and band_high_hz is null) as windows_band_unknown
    from planned
    group by config_fingerprint, site_id, local_date
)

select * from final;
