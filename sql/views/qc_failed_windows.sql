-- purpose: what the analyses' `qc` parameter leaves out (docs/effort.md): the one definition the
-- effort analyses read (effort_by_day, detection_rate, report_effort_by_night, diel,
-- activity_by_sun)
-- inputs: windows, the session variable qc
-- qc_choice: one row, the session's qc: 'exclude' (also when unset) or 'include'; any other value
-- is an error, never a silent default.
-- qc_failed_windows: one row per window whose quality verdict is silent, dropout or clipped while
-- qc is 'exclude'; no rows with qc = 'include'. Windows not measured (analysed before schema
-- version 9) are never in it.
create or replace view qc_choice as
select case
    when coalesce(getvariable('qc'), 'exclude') in ('exclude', 'include')
        then coalesce(getvariable('qc'), 'exclude')
    else error('qc must be exclude or include, got ' || getvariable('qc'))
end as qc;

create or replace view qc_failed_windows as
select w.config_fingerprint, w.recording_id, w.channel, w.window_index
from windows as w
cross join qc_choice as c
where c.qc = 'exclude'
    and w.qc <> 'ok';
