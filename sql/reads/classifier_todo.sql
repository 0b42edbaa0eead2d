-- purpose: what a classifier has still to score: per recording, the embedded windows of its
-- embedding fingerprint that have no window row under the classifier's fingerprint yet (the
-- resume journal of `dawnchorus learn`'s apply, as `windows` is the pipeline's)
-- grain: one row per recording with windows to score
-- parameters: $1 embedding fingerprint, $2 classifier fingerprint
-- inputs: embeddings, windows
with done as (
    select recording_id, channel, window_index
    from windows
    where config_fingerprint = $2
),

final as (
    select e.recording_id, count(*) as windows
    from embeddings as e
    anti join done as d
        on d.recording_id = e.recording_id
        and d.channel = e.channel
        and d.window_index = e.window_index
    where e.config_fingerprint = $1
    group by e.recording_id
)

select * from final
order by recording_id
