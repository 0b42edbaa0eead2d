-- purpose: analysed audio (effort) per site and local day (the site_day_effort view)
-- grain: one row per site and local date with at least one planned window
-- inputs: the site_day_effort view (windows, deployments), the qc_choice view
-- Hours analysed count windows with status ok only: empty windows (no audio) and failed ones are
-- not effort. Windows whose recording has no known start time have no local date and are left out.
-- With qc = 'exclude' (the default) windows whose quality verdict is silent, dropout or clipped
-- are not effort either (windows_qc_failed counts them; docs/effort.md, "Quality per window").
-- band_low_hz / band_high_hz: the frequency band every analysed window of the day covered, so
-- hours of a bird model over bat recordings say they heard nothing above 24 kHz
-- (docs/bat-analyses.md, "Band-aware effort"); windows_band_unknown: analysed before the band
-- was recorded (schema version 11).
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: qc varchar = 'exclude' -- exclude: windows that failed quality (silent, dropout, clipped) are not effort; include: they are
with final as (
    select
        e.site_id,
        e.local_date,
        e.windows,
        e.windows_ok,
        e.windows_empty,
        e.windows_failed,
        e.windows_qc_failed,
        e.windows_qc_unmeasured,
        case when c.qc = 'exclude' then e.effort_hours_qc_passed else e.effort_hours end
            as hours_analysed,
        c.qc,
        e.band_low_hz,
        e.band_high_hz,
        e.windows_band_unknown,
        e.first_local,
        e.last_local
    from site_day_effort as e
    cross join qc_choice as c
    where e.config_fingerprint = getvariable('config_fingerprint')
)

select * from final order by site_id, local_date
