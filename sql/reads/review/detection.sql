-- purpose: one detection (a window's classify answer for one label), to record a verdict on it
-- grain: one row per window key and label (none when the catalog has no such answer)
-- parameters: $recording_id, $config_fingerprint, $channel, $window_index, $label
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
        and recording_id = $recording_id
        and config_fingerprint = $config_fingerprint
        and channel = $channel
        and window_index = $window_index
        and label = $label
    group by all
)

select * from final
