-- purpose: every embedding of one fingerprint, the matrix `dawnchorus similar` scans
-- grain: one row per window and channel
-- inputs: embeddings
-- parameters: $config_fingerprint; $deployments (a list, or NULL for all)
select recording_id, channel, window_index, vector
from embeddings
where config_fingerprint = $config_fingerprint
    and ($deployments is null or list_contains($deployments, deployment_id))
