-- purpose: the embedding of one window already in the catalog (`similar --window REC:INDEX`)
-- grain: one row per channel of that window (its vector in `vector` or `vector_f16`)
-- inputs: embeddings
-- parameters: $config_fingerprint, $recording_id, $window_index
select channel, vector, vector_f16
from embeddings
where config_fingerprint = $config_fingerprint
    and recording_id = $recording_id
    and window_index = $window_index
order by channel
