-- purpose: one detection (a window's classify answer for one label), to record a verdict on it
-- grain: one row per window key and label (none when the catalog has no such answer)
-- parameters: $1 recording_id, $2 config_fingerprint, $3 channel, $4 window_index, $5 label
-- inputs: predictions
with final as (
    select
        recording_id,
        config_fingerprint,
        channel,
        window_index,
        deployment_id,
        label,
        max(score) as score
    from predictions
    where task = 'classify'
        and recording_id = $1
        and config_fingerprint = $2
        and channel = $3
        and window_index = $4
        and label = $5
    group by all
)

select * from final
