-- purpose: the resume journal: windows already committed under one config fingerprint
-- grain: one row per recording and channel
-- parameters: $config_fingerprint = config_fingerprint, $retry_failed = retry_failed (failed windows count as not done)
select recording_id, channel, list(window_index order by window_index) as window_indexes
from windows
where config_fingerprint = $config_fingerprint and not ($retry_failed and status = 'failed')
group by recording_id, channel
