-- purpose: every embedding of one fingerprint, the matrix `dawnchorus similar` scans
-- grain: one row per window and channel; the vector in `vector` (float32, rows written before
-- schema version 12) or `vector_f16` (float16 bytes): connectors.catalog.vectors decodes both
-- inputs: embeddings
-- parameters: $config_fingerprint; $deployments (a list, or NULL for all)
select recording_id, channel, window_index, vector, vector_f16
from embeddings
where config_fingerprint = $config_fingerprint
    and ($deployments is null or list_contains($deployments, deployment_id))
