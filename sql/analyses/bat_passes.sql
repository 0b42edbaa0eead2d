-- purpose: bat passes and the nightly activity index per site, night and species, with the
-- night's effort and the band it covered (docs/bat-analyses.md)
-- grain: one row per site, night and species with a located call; and one row per site and
-- night analysed without any (label null, passes 0), so "no bats" shows, with its band
-- inputs: the detections view (threshold, species filters; answers with a located call:
-- call_start_s not null), windows, deployments, the qc_failed_windows view
-- night = the local date of (local time - 12 h), as species_by_night: 23:30 on day D and 01:30 on
-- day D+1 are both night D.
-- A pass: the calls of one species on one recorder and channel whose silences (a call's start
-- minus the latest end of the calls before it) are at most gap_s seconds (default 1 s), across
-- window and file boundaries; counted once, on the night of its first call. Overlapping calls
-- (one call seen by two overlapping windows) join one pass.
-- calls: call rows (with a hop shorter than the window, a call seen by two windows counts twice;
-- passes and activity_minutes do not). activity_minutes: the activity index of Miller (2001),
-- the number of one-minute blocks of local clock time that night holding at least one call of
-- the species at the site.
-- effort_hours: audio analysed that night (ok windows; with qc = 'exclude', not those whose
-- quality verdict is silent, dropout or clipped); band_low_hz / band_high_hz: the band every
-- analysed window of the night covered. A night whose band stops below the calls' frequencies
-- heard no bats because none could be heard (docs/bat-analyses.md, "Band-aware effort").
-- windows_qc_failed / calls_qc_left_out: what qc = 'exclude' left out that night (analysed windows
-- whose quality failed, and the calls of every species in them), so a hidden call is a number.
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold on the call's class probability (default: the catalog's detection_threshold)
-- param: gap_s double = 1.0 -- longest silence in seconds between two calls of one pass
-- param: qc varchar = 'exclude' -- exclude: windows that failed quality (silent, dropout, clipped) are neither effort nor calls; include: they are both
with qc_failed as (
    select recording_id, channel, window_index
    from qc_failed_windows
    where config_fingerprint = getvariable('config_fingerprint')
),

calls as (
    select
        coalesce(site_id, deployment_id) as site_id,
        deployment_id,
        channel,
        scientific_name,
        label,
        call_start_local,
        epoch_us(call_start_utc) as start_us,
        epoch_us(call_start_utc) + cast((call_end_s - call_start_s) * 1e6 as bigint) as end_us
    from detections
    anti join qc_failed using (recording_id, channel, window_index)
    where config_fingerprint = getvariable('config_fingerprint')
        and call_start_s is not null
        and call_start_utc is not null
),

-- Calls in windows that failed quality, per site and night (0 rows with qc = 'include').
qc_calls as (
    select
        coalesce(site_id, deployment_id) as site_id,
        cast(call_start_local - interval 12 hour as date) as night_date,
        count(*) as calls_qc_left_out
    from detections
    semi join qc_failed using (recording_id, channel, window_index)
    where config_fingerprint = getvariable('config_fingerprint')
        and call_start_s is not null
        and call_start_utc is not null
    group by all
),

-- The silence before each call: its start minus the latest end of the calls before it.
silences as (
    select
        *,
        (start_us - max(end_us) over (
            partition by deployment_id, channel, scientific_name, label
            order by start_us, end_us
            rows between unbounded preceding and 1 preceding)) / 1e6 as silence_s
    from calls
),

numbered as (
    select
        *,
        sum(case when silence_s is null or silence_s > getvariable('gap_s') then 1 else 0 end)
            over (partition by deployment_id, channel, scientific_name, label
                  order by start_us, end_us
                  rows between unbounded preceding and current row) as pass_number
    from silences
),

passes as (
    select
        site_id,
        scientific_name,
        label,
        cast(min(call_start_local) - interval 12 hour as date) as night_date
    from numbered
    group by site_id, deployment_id, channel, scientific_name, label, pass_number
),

per_species as (
    select
        site_id,
        cast(call_start_local - interval 12 hour as date) as night_date,
        scientific_name,
        label,
        count(*) as calls,
        count(distinct date_trunc('minute', call_start_local)) as activity_minutes,
        min(call_start_local) as first_call_local,
        max(call_start_local) as last_call_local
    from calls
    group by all
),

pass_counts as (
    select site_id, night_date, scientific_name, label, count(*) as passes
    from passes
    group by all
),

effort as (
    select
        coalesce(d.site_id, w.deployment_id) as site_id,
        cast(w.start_local - interval 12 hour as date) as night_date,
        coalesce(sum(w.duration_s) filter (where w.status = 'ok' and f.recording_id is null), 0)
            / 3600.0 as effort_hours,
        count(*) filter (where w.status = 'ok' and f.recording_id is not null)
            as windows_qc_failed,
        max(w.band_low_hz) filter (where w.status = 'ok' and f.recording_id is null)
            as band_low_hz,
        min(w.band_high_hz) filter (where w.status = 'ok' and f.recording_id is null)
            as band_high_hz
    from windows as w
    left join deployments as d on d.deployment_id = w.deployment_id
    left join qc_failed as f
        on f.recording_id = w.recording_id
        and f.channel = w.channel
        and f.window_index = w.window_index
    where w.config_fingerprint = getvariable('config_fingerprint')
        and w.start_local is not null
    group by all
),

heard as (
    select
        s.site_id,
        s.night_date,
        s.scientific_name,
        s.label,
        coalesce(p.passes, 0) as passes,
        s.calls,
        s.activity_minutes,
        s.first_call_local,
        s.last_call_local
    from per_species as s
    left join pass_counts as p
        on p.site_id = s.site_id
        and p.night_date = s.night_date
        and p.scientific_name is not distinct from s.scientific_name
        and p.label is not distinct from s.label
),

-- Nights analysed without a call of any species: one row, so an absence is a row with effort.
silent_nights as (
    select
        e.site_id,
        e.night_date,
        cast(null as varchar) as scientific_name,
        cast(null as varchar) as label,
        0 as passes,
        0 as calls,
        0 as activity_minutes,
        cast(null as timestamp) as first_call_local,
        cast(null as timestamp) as last_call_local
    from effort as e
    anti join heard as h using (site_id, night_date)
),

final as (
    select
        n.site_id,
        n.night_date,
        n.scientific_name,
        n.label,
        n.passes,
        n.calls,
        n.activity_minutes,
        e.effort_hours,
        n.passes / nullif(e.effort_hours, 0) as passes_per_hour,
        e.band_low_hz,
        e.band_high_hz,
        getvariable('gap_s') as gap_s,
        e.windows_qc_failed,
        coalesce(q.calls_qc_left_out, 0) as calls_qc_left_out,
        n.first_call_local,
        n.last_call_local
    from (select * from heard union all select * from silent_nights) as n
    left join effort as e using (site_id, night_date)
    left join qc_calls as q using (site_id, night_date)
)

select * from final order by site_id, night_date, passes desc, label
