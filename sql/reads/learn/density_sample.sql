-- purpose: the windows of a density sample as detections of the label, for a review table
-- grain: one row per sample window with a prediction of the label (a window the model gave no
--   score for the label cannot be judged through a review table)
-- parameters: $config_fingerprint, $label, $keys: list of 'recording_id|channel|window_index'
-- inputs: predictions, windows, recordings
with wanted as (
    select unnest($keys) as key
),

final as (
    select
        p.recording_id,
        p.config_fingerprint,
        p.channel,
        p.window_index,
        p.deployment_id,
        p.label,
        max(p.scientific_name) as scientific_name,
        max(p.score) as score,
        r.uri,
        r.duration_s,
        r.sample_rate_hz,
        w.offset_s,
        w.window_s
    from predictions as p
    inner join wanted as k
        on k.key = p.recording_id || '|' || p.channel || '|' || p.window_index
    inner join windows as w
        on w.config_fingerprint = p.config_fingerprint
        and w.recording_id = p.recording_id
        and w.channel = p.channel
        and w.window_index = p.window_index
    inner join recordings as r on r.recording_id = p.recording_id
    where p.config_fingerprint = $config_fingerprint
        and p.task = 'classify'
        and lower(p.label) = lower($label)
    group by all
)

select * from final
