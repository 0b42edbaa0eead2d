-- purpose: the windows of one fingerprint that have embeddings, with where they lie in their
-- recording: what Raven selections and verdicts are mapped onto (`dawnchorus learn`)
-- grain: one row per window and channel with an embedding
-- parameters: $config_fingerprint
-- inputs: embeddings, windows, recordings
with final as (
    select
        e.recording_id,
        e.channel,
        e.window_index,
        e.deployment_id,
        w.offset_s,
        w.window_s,
        r.uri,
        r.object_key
    from embeddings as e
    inner join windows as w
        on w.config_fingerprint = e.config_fingerprint
        and w.recording_id = e.recording_id
        and w.channel = e.channel
        and w.window_index = e.window_index
    inner join recordings as r on r.recording_id = e.recording_id
    where e.config_fingerprint = $config_fingerprint
)

select * from final
order by recording_id, channel, window_index
