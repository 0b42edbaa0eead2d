-- purpose: the model's best classify answer for every analysed window (no threshold, no filter)
-- grain: one row per recording, channel and window
-- inputs: predictions, windows, recordings
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the catalog's only one)
with top1 as (
    select *
    from predictions
    where task = 'classify' and rank = 1 and config_fingerprint = getvariable('config_fingerprint')
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

select * from final order by object_key, channel, offset_s
