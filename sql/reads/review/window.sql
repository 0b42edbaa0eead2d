-- purpose: one analysed window, the band its model analysed and where its audio is, for the
-- review page's audio and spectrogram
-- grain: one row per window key (none when the window is not in the catalog)
-- parameters: $recording_id, $config_fingerprint, $channel, $window_index
-- inputs: windows, recordings
with final as (
    select
        w.recording_id,
        w.config_fingerprint,
        w.channel,
        w.window_index,
        w.offset_s,
        w.window_s,
        w.band_low_hz,
        w.band_high_hz,
        r.uri,
        r.size_bytes,
        r.etag,
        r.mtime,
        r.duration_s,
        r.sample_rate_hz,
        r.channels
    from windows as w
    inner join recordings as r on r.recording_id = w.recording_id
    where w.recording_id = $recording_id
        and w.config_fingerprint = $config_fingerprint
        and w.channel = $channel
        and w.window_index = $window_index
)

select * from final
