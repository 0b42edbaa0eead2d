-- purpose: everything that failed in one run, for the run report
-- grain: one row per failed recording and stage (recording = header unreadable, windows = some
-- windows failed)
-- inputs: recordings, windows
-- param: run_id varchar -- the run (required)
with failed_headers as (
    select uri, 'recording' as stage, error, 1 as windows_failed
    from recordings
    where status = 'failed' and run_id = getvariable('run_id')
),

failed_windows as (
    select r.uri, 'windows' as stage, any_value(w.error) as error, count(*) as windows_failed
    from windows as w
    inner join recordings as r on r.recording_id = w.recording_id
    where w.status = 'failed' and w.run_id = getvariable('run_id')
    group by r.uri
),

final as (
    select * from failed_headers
    union all
    select * from failed_windows
)

select * from final order by uri, stage
