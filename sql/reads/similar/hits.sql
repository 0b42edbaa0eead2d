-- purpose: where and when the most similar windows are, and what the model detected there
-- grain: one row per hit (recording, channel, window)
-- inputs: windows, recordings, deployments, the detections view (threshold, species filters)
-- parameters: $config_fingerprint; $keys: list of 'recording_id|channel|window_index'
with hit_windows as (
    select *
    from windows
    where config_fingerprint = $config_fingerprint
        and list_contains($keys, recording_id || '|' || channel || '|' || window_index)
),

detected as (
    select
        recording_id,
        channel,
        window_index,
        string_agg(label || ' ' || printf('%.2f', score), '; ' order by score desc) as detections,
        arg_max(label, score) as top_label,
        arg_max(scientific_name, score) as top_scientific_name
    from detections
    where config_fingerprint = $config_fingerprint
        and list_contains($keys, recording_id || '|' || channel || '|' || window_index)
    group by recording_id, channel, window_index
),

final as (
    select
        w.recording_id || '|' || w.channel || '|' || w.window_index as key,
        w.deployment_id,
        coalesce(d.site_id, w.deployment_id) as site_id,
        w.recording_id,
        r.uri,
        r.object_key,
        r.sample_rate_hz,
        w.channel,
        w.window_index,
        w.offset_s,
        least(w.offset_s + w.window_s, r.duration_s) as end_offset_s,
        w.start_utc,
        w.start_local,
        x.detections,
        x.top_label,
        x.top_scientific_name
    from hit_windows as w
    inner join recordings as r on r.recording_id = w.recording_id
    left join deployments as d on d.deployment_id = w.deployment_id
    left join detected as x
        on x.recording_id = w.recording_id
        and x.channel = w.channel
        and x.window_index = w.window_index
)

select * from final
