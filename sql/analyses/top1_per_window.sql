-- purpose: the model's best classify answer for every analysed window (no threshold)
-- grain: one row per recording, fingerprint, channel and window
-- inputs: predictions, windows, recordings
with top1 as (
    select *
    from predictions
    where task = 'classify' and rank = 1
),

final as (
    select
        r.object_key,
        t.channel,
        t.offset_s,
        w.window_s,
        t.label,
        t.scientific_name,
        t.score,
        t.config_fingerprint
    from top1 as t
    inner join windows as w
        on w.recording_id = t.recording_id
        and w.config_fingerprint = t.config_fingerprint
        and w.channel = t.channel
        and w.window_index = t.window_index
    inner join recordings as r on r.recording_id = t.recording_id
)

select * from final
