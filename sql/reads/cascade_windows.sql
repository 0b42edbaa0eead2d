-- purpose: the windows a cascade stage answers: those the previous stage analysed and passed
-- (its best score for the pass task reaches the threshold), not yet committed under the stage's
-- own fingerprint, each with the previous stage's top-k classify labels as candidates
-- grain: one row per window and channel
-- inputs: windows, predictions
-- parameters: $upstream, $pass_task, $threshold, $fingerprint, $top_k, $retry_failed
with passed as (
    select recording_id, channel, window_index
    from predictions
    where config_fingerprint = $upstream and task = $pass_task
    group by recording_id, channel, window_index
    having max(score) >= $threshold
),

proposed as (
    select
        recording_id,
        channel,
        window_index,
        list(label order by rank) filter (where label is not null) as candidates
    from predictions
    where config_fingerprint = $upstream and task = 'classify' and rank <= $top_k
    group by recording_id, channel, window_index
),

final as (
    select
        w.recording_id,
        w.channel,
        w.window_index,
        w.offset_s,
        w.duration_s,
        w.padded,
        coalesce(c.candidates, []) as candidates
    from windows as w
    inner join passed as p
        on p.recording_id = w.recording_id
        and p.channel = w.channel
        and p.window_index = w.window_index
    left join proposed as c
        on c.recording_id = w.recording_id
        and c.channel = w.channel
        and c.window_index = w.window_index
    where w.config_fingerprint = $upstream
        and w.status = 'ok'
        and not exists (
            select 1
            from windows as done
            where done.config_fingerprint = $fingerprint
                and done.recording_id = w.recording_id
                and done.channel = w.channel
                and done.window_index = w.window_index
                and (done.status <> 'failed' or not $retry_failed)
        )
)

select * from final order by recording_id, channel, window_index
