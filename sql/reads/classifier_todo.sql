-- purpose: what a classifier has still to score: per recording, the embedded windows of its
-- embedding fingerprint that have no window row under the classifier's fingerprint yet (the
-- resume journal of `dawnchorus learn`'s apply, as `windows` is the pipeline's)
-- grain: one row per recording with windows to score, with its deployment and the first and last
-- UTC date of those windows (the partitions that hold them; null dates: no start time), in
-- partition order so that a batch of recordings reads few partitions
-- parameters: $1 embedding fingerprint, $2 classifier fingerprint
-- inputs: embeddings, windows
with done as (
    select recording_id, channel, window_index
    from windows
    where config_fingerprint = $2
),

final as (
    select
        e.recording_id,
        count(*) as windows,
        any_value(e.deployment_id) as deployment_id,
        min(e.date) as first_date,
        max(e.date) as last_date,
        count(*) filter (where e.date is null) as undated
    from embeddings as e
    anti join done as d
        on d.recording_id = e.recording_id
        and d.channel = e.channel
        and d.window_index = e.window_index
    where e.config_fingerprint = $1
    group by e.recording_id
)

select * from final
order by deployment_id, first_date nulls last, recording_id
