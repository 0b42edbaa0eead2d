-- purpose: every detection with its file's key below the source root and its window's span
--   (what `dawnchorus demo` compares with the labels it placed)
-- grain: one row per detection (window, channel and species)
-- inputs: the detections view (threshold, species filters), recordings
-- param: config_fingerprint varchar = null -- results of this fingerprint (default: the only one, else the pinned one, else the newest)
-- param: threshold double = null -- detection threshold (default: the catalog's detection_threshold)
with final as (
    select
        r.object_key,
        d.deployment_id,
        d.channel,
        d.offset_s,
        d.end_offset_s,
        d.start_local,
        d.label,
        d.scientific_name,
        d.score
    from detections as d
    inner join recordings as r on r.recording_id = d.recording_id
    where d.config_fingerprint = getvariable('config_fingerprint')
)

select * from final order by object_key, channel, offset_s, score desc
