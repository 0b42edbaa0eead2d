-- purpose: everything that failed in one run, for the run report
-- grain: one row per failed recording; parameters: $1 = run_id
with failed_headers as (
    select uri, 'recording' as stage, error
    from recordings
    where status = 'failed' and run_id = $1
),

failed_windows as (
    select r.uri, 'windows' as stage, any_value(w.error) as error
    from windows as w
    inner join recordings as r on r.recording_id = w.recording_id
    where w.status = 'failed' and w.run_id = $1
    group by r.uri
),

final as (
    select * from failed_headers
    union all
    select * from failed_windows
)

select * from final order by uri
