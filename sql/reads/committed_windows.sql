-- purpose: the resume journal: windows already committed under one config fingerprint
-- grain: one row per recording and channel
-- parameters: $config_fingerprint = config_fingerprint, $retry_failed = retry_failed (failed windows count as not done), $need_embeddings = need_embeddings (analysed windows without an embedding count as not done)
select recording_id, channel, list(window_index order by window_index) as window_indexes
from windows as w
where config_fingerprint = $config_fingerprint
    and not ($retry_failed and status = 'failed')
    and not (
        $need_embeddings
        and status = 'ok'
        and not exists (
            select 1
            from embeddings as e
            where e.config_fingerprint = w.config_fingerprint
                and e.recording_id = w.recording_id
                and e.channel = w.channel
                and e.window_index = w.window_index
        )
    )
group by recording_id, channel
