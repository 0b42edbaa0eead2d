-- purpose: the model's best classify answer for every analysed window (no threshold, no filter)
-- grain: one row per recording, channel and window
-- inputs: predictions, windows (each fingerprint's window length), recordings
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
with top1 as (
    select *
    from predictions
    where task = 'classify' and rank = 1 and config_fingerprint = getvariable('config_fingerprint')
),

-- window_s is part of what a fingerprint hashes: one length per fingerprint, no per-row join.
window_length as (
    select config_fingerprint, max(window_s) as window_s
    from windows
    where config_fingerprint = getvariable('config_fingerprint')
    group by config_fingerprint
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
    inner join window_length as w on w.config_fingerprint = t.config_fingerprint
    inner join recordings as r on r.recording_id = t.recording_id
)

select * from final order by object_key, channel, offset_s
