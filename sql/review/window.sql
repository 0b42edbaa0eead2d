-- purpose: one analysed window and where its audio is, for the review page's audio and spectrogram
-- grain: one row per window key (none when the window is not in the catalog)
-- parameters: $1 recording_id, $2 config_fingerprint, $3 channel, $4 window_index
-- inputs: windows, recordings
with final as (
    select
        w.recording_id,
        w.config_fingerprint,
        w.channel,
        w.window_index,
        w.offset_s,
        w.window_s,
        r.uri,
        r.size_bytes,
        r.etag,
        r.mtime,
        r.duration_s,
        r.sample_rate_hz,
        r.channels
    from windows as w
    inner join recordings as r on r.recording_id = w.recording_id
    where w.recording_id = $1
        and w.config_fingerprint = $2
        and w.channel = $3
        and w.window_index = $4
)

select * from final
