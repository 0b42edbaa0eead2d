-- purpose: the embedding of one window already in the catalog (`similar --window REC:INDEX`)
-- grain: one row per channel of that window
-- inputs: embeddings
-- parameters: $config_fingerprint, $recording_id, $window_index
select channel, vector
from embeddings
where config_fingerprint = $config_fingerprint
    and recording_id = $recording_id
    and window_index = $window_index
order by channel
